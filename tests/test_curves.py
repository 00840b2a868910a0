"""Learning curves over seeds (`mtrl compare`'s compare_curves.png): each arm's mean
evaluation against env steps and a bootstrap CI over seeds, checked by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtrl.curves import arm_bands, band_caption, curve_band, eval_curve, plot_bands
from mtrl.runs import RunDir
from mtrl.stats import bootstrap_ci


def test_eval_curve_reads_the_evaluation_rows_only() -> None:
    rows = [
        {"step": "0", "eval_success": "0.5", "critic_loss": ""},
        {"step": "2500", "eval_success": "", "critic_loss": "3.1"},  # a training log row
        {"step": "10000", "eval_success": "nan"},
        {"step": "10000", "eval_success": "0.7"},  # a later row at the same step wins
        {"step": "20000", "eval_success": "0.9"},
    ]
    assert eval_curve(rows, "eval_success") == {0.0: 0.5, 10000.0: 0.7, 20000.0: 0.9}
    assert eval_curve(rows, "eval_return") == {}


def test_band_is_the_mean_over_seeds_at_the_steps_every_seed_reached() -> None:
    a = {0.0: 0.2, 10.0: 0.6, 20.0: 1.0}
    b = {0.0: 0.4, 10.0: 0.8}  # stopped before step 20
    band = curve_band([a, b])
    assert band.runs == 2 and band.x.tolist() == [0.0, 10.0]
    assert band.mean == pytest.approx([0.3, 0.7])
    lo, hi = bootstrap_ci([0.6, 0.8])
    assert band.low[1] == pytest.approx(lo) and band.high[1] == pytest.approx(hi)
    assert band.low[1] <= 0.7 <= band.high[1] and band.high[1] - band.low[1] > 0
    one = curve_band([a])  # a single seed: no interval to draw
    assert one.mean.tolist() == one.low.tolist() == one.high.tolist() == [0.2, 0.6, 1.0]
    with pytest.raises(ValueError, match="at least one curve"):
        curve_band([])


def test_arm_bands_read_run_directories_and_plot(tmp_path: Path) -> None:
    runs = []
    for seed, values in enumerate([(0.1, 0.5), (0.3, 0.9)]):
        (tmp_path / f"s{seed}").mkdir()
        (tmp_path / f"s{seed}" / "config.toml").write_text(f"seed = {seed}\n")
        run = RunDir.open(tmp_path / f"s{seed}")
        for step, v in zip((0, 1000), values, strict=True):
            run.log_metrics({"step": step, "eval_success": v})
            run.log_metrics({"step": step + 500, "critic_loss": 1.0})
        runs.append(run.path)
    bands = arm_bands({"arm": runs, "other kind": runs[:1]}, "eval_success")
    assert set(bands) == {"arm", "other kind"}
    assert bands["arm"].x.tolist() == [0.0, 1000.0]
    assert np.allclose(bands["arm"].mean, [0.2, 0.7])
    assert arm_bands({"arm": runs}, "eval_return") == {}  # no such column: no arm
    path = plot_bands(bands, "eval_success", tmp_path / "curves.png", "title")
    assert path.stat().st_size > 1000


def test_the_caption_promises_a_band_only_where_an_arm_has_several_seeds() -> None:
    a, b = {0.0: 0.2, 10.0: 0.6}, {0.0: 0.4, 10.0: 0.8}
    single = {"x": curve_band([a]), "y": curve_band([b])}
    assert band_caption("success", single).endswith("one seed per line, no CI")
    mixed = {"x": curve_band([a, b]), "y": curve_band([b])}
    assert "mean over 1/2 seeds, bands 95% bootstrap CI over seeds" in band_caption(
        "success", mixed
    )


def test_more_than_three_arms_get_a_panel_each(tmp_path: Path) -> None:
    """Four overlaid bands hide one another: each arm gets its own panel (four across),
    with its seeds' curves kept on the band to draw beside the mean."""
    from matplotlib.image import imread

    a, b = {0.0: 0.2, 10.0: 0.6}, {0.0: 0.4, 10.0: 0.8}
    band = curve_band([a, b])
    assert band.curves == (a, b)
    three = plot_bands({k: band for k in "xyz"}, "eval_success", tmp_path / "3.png", bar=0.9)
    four = plot_bands({k: band for k in "wxyz"}, "eval_success", tmp_path / "4.png", bar=0.9)
    width3 = imread(three).shape[1]
    height4, width4, _ = imread(four).shape
    assert width4 > 1.6 * width3 and width4 > 3 * height4  # one row of four panels
