"""Demonstrations: collected per task into Minari datasets, read back for warm starts."""
