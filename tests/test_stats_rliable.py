"""mtrl.stats against rliable (Agarwal et al. 2021's own library) on the same scores."""

from __future__ import annotations

import numpy as np
import pytest

from mtrl.stats import iqm, probability_of_improvement, stratified_bootstrap_ci

rliable = pytest.importorskip("rliable")
from rliable import library, metrics  # noqa: E402

REPS = 20000  # the two bootstraps draw differently; at this many reps quantiles settle


@pytest.mark.parametrize("shape", [(5, 8), (3, 10), (10, 1)])
def test_iqm_and_stratified_bootstrap_cis_agree_with_rliable(shape: tuple[int, int]) -> None:
    scores = np.random.default_rng(sum(shape)).normal(size=shape)
    assert iqm(scores) == pytest.approx(metrics.aggregate_iqm(scores), rel=1e-12)
    for name, fn in (("iqm", metrics.aggregate_iqm), ("mean", metrics.aggregate_mean)):
        _, cis = library.get_interval_estimates(
            {"x": scores}, lambda s, f=fn: np.array([f(s)]), reps=REPS
        )
        theirs = cis["x"].ravel()
        ours = np.array(stratified_bootstrap_ci(scores, name, reps=REPS))
        width = theirs[1] - theirs[0]
        np.testing.assert_allclose(ours, theirs, atol=0.05 * width)


def test_probability_of_improvement_agrees_with_rliable() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.3, 1, size=(5, 6)), rng.normal(0.0, 1, size=(4, 6))
    y[0, 0] = x[0, 0]  # a tie counts half
    assert probability_of_improvement(x, y) == pytest.approx(
        metrics.probability_of_improvement(x, y), rel=1e-12
    )
    assert probability_of_improvement(x, x) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same tasks"):
        probability_of_improvement(x, y[:, :3])
