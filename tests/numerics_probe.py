"""Which float results this machine gives on the portable numerics: a fingerprint of the
code paths golden runs go through, run as a script (``python tests/numerics_probe.py``)
in a process started with ``golden.PORTABLE_NUMERICS``.

Even on the portable path two machines can differ in the last bit: MKL's vector math
(torch's sin, exp, log, tanh, sqrt on CPU) gave different float32 results on two x86
machines under ``MKL_CBWR=COMPATIBLE,STRICT``, and every golden run that calls them
moved from the 7th digit on. Machines that print the same fingerprint compute the same
bits on every path probed here, so they share golden records (tests/golden.py).

Prints a JSON object: one short hash per path probed, and ``class``, the hash of them all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

UNARY = [
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "tanh",
    "exp",
    "expm1",
    "log",
    "log1p",
    "log2",
    "log10",
    "sqrt",
    "rsqrt",
    "sigmoid",
    "erf",
    "erfc",
    "erfinv",
    "lgamma",
    "digamma",
]
# inputs each function is defined on (the rest take the whole range)
DOMAIN = {"asin": "unit", "acos": "unit", "erfinv": "unit", "log1p": "positive"}
POSITIVE = {"log", "log2", "log10", "sqrt", "rsqrt", "lgamma", "digamma"}


def _digest(arrays: Iterable[Any]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.tobytes())
    return h.hexdigest()[:12]


def _torch_paths() -> dict[str, Callable[[], list[Any]]]:
    import torch

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    wide = torch.rand(40_003, generator=gen, dtype=torch.float64) * 40 - 20
    inputs = {"wide": wide, "unit": wide / 20.5, "positive": wide.abs() + 1e-3}

    def unary(dtype: torch.dtype) -> list[Any]:
        out = []
        for name in UNARY:
            kind = DOMAIN.get(name, "positive" if name in POSITIVE else "wide")
            out.append(getattr(torch, name)(inputs[kind].to(dtype)).numpy())
        return out

    def blas() -> list[Any]:
        out = []
        for m, k, n in ((1, 39, 400), (8, 16, 16), (256, 39, 400), (256, 400, 400), (10, 1, 16)):
            a = torch.randn(m, k, generator=gen)
            b = torch.randn(k, n, generator=gen)
            bias = torch.randn(n, generator=gen)
            out += [(a @ b).numpy(), torch.addmm(bias, a, b).numpy(), (b.T @ a.T).numpy()]
        x, y = torch.randn(8, 10, 16, generator=gen), torch.randn(8, 16, 16, generator=gen)
        v = torch.randn(16, generator=gen)
        out += [torch.bmm(x, y).numpy(), (y[0] @ v).numpy(), torch.dot(v, v).reshape(1).numpy()]
        return out

    def reductions() -> list[Any]:
        x = torch.randn(256, 400, generator=gen)
        return [
            torch.logsumexp(x, 1).numpy(),
            torch.softmax(x, 1).numpy(),
            x.sum(0).numpy(),
            x.mean().reshape(1).numpy(),
            x.var(1).numpy(),
            torch.nn.functional.softplus(x).numpy(),
            torch.nn.functional.layer_norm(x, (400,)).numpy(),
        ]

    return {
        "torch_float32": lambda: unary(torch.float32),
        "torch_float64": lambda: unary(torch.float64),
        "torch_blas": blas,
        "torch_reductions": reductions,
    }


def _numpy_paths() -> dict[str, Callable[[], list[Any]]]:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(-20, 20, 40_003)
    a, b = rng.standard_normal((64, 39)), rng.standard_normal((39, 64))

    def elementwise(dtype: Any) -> list[Any]:
        y = x.astype(dtype)
        return [np.sin(y), np.cos(y), np.exp(y), np.log(np.abs(y) + 1e-3), np.tanh(y), np.sum(y)]

    return {
        "numpy_float32": lambda: elementwise(np.float32),
        "numpy_float64": lambda: elementwise(np.float64),
        "numpy_blas": lambda: [a @ b, a.astype(np.float32) @ b.astype(np.float32)],
    }


def _mujoco_path() -> list[Any]:
    import mujoco
    import numpy as np

    xml = """<mujoco><worldbody><body><joint name="j" type="hinge" axis="0 1 0"/>
    <geom type="capsule" fromto="0 0 0 0 0 -1" size="0.05"/>
    <body pos="0 0 -1"><joint type="hinge" axis="0 1 0"/>
    <geom type="capsule" fromto="0 0 0 0 0 -1" size="0.05"/></body></body></worldbody>
    <actuator><motor joint="j"/></actuator></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    data.qpos[:] = (0.3, -0.2)
    states = []
    for t in range(500):
        data.ctrl[:] = np.sin(0.01 * t)
        mujoco.mj_step(model, data)
        states.append(np.concatenate([data.qpos, data.qvel]))
    return [np.stack(states)]


def fingerprint() -> dict[str, str]:
    """One hash per probed path, and ``class``: the hash of them all."""
    paths = {**_torch_paths(), **_numpy_paths(), "mujoco": _mujoco_path}
    out = {name: _digest(run()) for name, run in paths.items()}
    out["class"] = hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()[:12]
    return out


if __name__ == "__main__":
    print(json.dumps(fingerprint()))
