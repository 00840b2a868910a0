"""The trust-region step of MAML-TRPO against dense references: conjugate gradient
against a linear solve, the KL's Hessian-vector product against the dense Hessian, and
the step on a small Gaussian policy against the dense natural-gradient step."""

from __future__ import annotations

import torch
from torch.distributions import Normal, kl_divergence

from mtrl.meta.trpo import conjugate_gradient, hessian_vector_product, trpo_step


def test_conjugate_gradient_matches_a_dense_solve() -> None:
    g = torch.Generator().manual_seed(0)
    m = torch.randn(8, 8, generator=g, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(8, dtype=torch.float64)  # symmetric positive definite
    b = torch.randn(8, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=8)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-10)
    few = conjugate_gradient(lambda v: a @ v, b, iters=2)  # fewer iterations: not there yet
    assert not torch.allclose(few, x, atol=1e-3)


class _Policy:
    """A linear Gaussian policy on fixed data: ``N(obs @ w, exp(log_std))``."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(1)
        kw = {"generator": g, "dtype": torch.float64}
        self.w = (0.3 * torch.randn(3, 2, **kw)).requires_grad_(True)
        self.log_std = torch.full((2,), -0.5, dtype=torch.float64, requires_grad=True)
        self.obs = torch.randn(64, 3, **kw)
        self.old = Normal(self.obs @ self.w.detach(), self.log_std.detach().exp())
        self.act = self.old.sample()
        self.adv = torch.randn(64, **kw)

    def dist(self) -> Normal:
        return Normal(self.obs @ self.w, self.log_std.exp().expand(64, 2))

    def surrogate(self) -> torch.Tensor:
        logp = self.dist().log_prob(self.act).sum(-1)
        return (torch.exp(logp - self.old.log_prob(self.act).sum(-1)) * self.adv).mean()

    def kl(self) -> torch.Tensor:
        return kl_divergence(self.old, self.dist()).sum(-1).mean()

    def flat(self) -> torch.Tensor:
        return torch.cat([self.w.detach().reshape(-1), self.log_std.detach()])


def _dense(p: _Policy) -> tuple[torch.Tensor, torch.Tensor]:
    """The KL's Hessian and the surrogate's gradient at the current parameters, densely."""

    def kl_of(flat: torch.Tensor) -> torch.Tensor:
        w, log_std = flat[:6].reshape(3, 2), flat[6:]
        new = Normal(p.obs @ w, log_std.exp().expand(64, 2))
        return kl_divergence(p.old, new).sum(-1).mean()

    hessian = torch.autograd.functional.hessian(kl_of, p.flat())
    grads = torch.autograd.grad(p.surrogate(), [p.w, p.log_std])
    return hessian, torch.cat([grads[0].reshape(-1), grads[1]])


def test_the_kl_hessian_vector_product_is_the_dense_hessians() -> None:
    p = _Policy()
    hessian, _ = _dense(p)
    v = torch.arange(8, dtype=torch.float64) / 8
    hvp = hessian_vector_product(p.kl, [p.w, p.log_std], damping=0.1)
    torch.testing.assert_close(hvp(v), hessian @ v + 0.1 * v)


def test_the_step_is_the_dense_natural_gradient_step_within_the_kl_bound() -> None:
    p = _Policy()
    hessian, grad = _dense(p)
    before = p.flat()
    res = trpo_step([p.w, p.log_std], p.surrogate, p.kl, max_kl=0.01, cg_iters=8, damping=1e-5)
    assert res.fraction > 0 and res.surrogate_after > res.surrogate_before
    assert res.kl <= 0.01 and float(p.kl().detach()) == res.kl  # the KL of the parameters kept
    fisher = hessian + 1e-5 * torch.eye(8, dtype=torch.float64)
    x = torch.linalg.solve(fisher, grad)
    full = x * torch.sqrt(2 * 0.01 / (x @ fisher @ x))  # a slow reference, densely
    torch.testing.assert_close((p.flat() - before) / res.fraction, full, rtol=1e-6, atol=1e-9)


def test_a_step_that_cannot_improve_leaves_the_parameters() -> None:
    p = _Policy()
    before = p.flat()
    params = [p.w, p.log_std]
    # every candidate outside the bound (a KL reported 1.0 too high; same curvature)
    res = trpo_step(params, p.surrogate, lambda: p.kl() + 1.0, max_kl=0.01, max_tries=3)
    assert res.fraction == 0.0 and res.tries == 3 and torch.equal(p.flat(), before)
    p.adv = torch.zeros(64, dtype=torch.float64)  # nothing to gain: no step at all
    res = trpo_step(params, p.surrogate, p.kl, max_kl=0.01)
    assert res.fraction == 0.0 and res.tries == 0 and torch.equal(p.flat(), before)
