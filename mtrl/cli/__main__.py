"""`python -m mtrl.cli`."""

from mtrl.cli import run

run()
