"""Every recipe in experiments/ loads: users run them as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtrl.config import from_dict, read_toml
from mtrl.envs.rollout_run import RolloutConfig
from mtrl.recipes import load_recipe

EXPERIMENTS = sorted((Path(__file__).parent.parent / "experiments").glob("*.toml"))


def test_there_are_recipes() -> None:
    assert len(EXPERIMENTS) >= 10


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_recipe_loads(path: Path) -> None:
    data = read_toml(path)
    if "kind" in data:
        kind, _ = load_recipe(path)
        assert kind.name == data["kind"]
    else:  # `mtrl envs rollout --recipe`
        from_dict(RolloutConfig, data)


ROOT = Path(__file__).parent.parent
# the README and its guides in reading order: a later page may use an earlier one's names
PAGES = (
    ["README.md"]
    + [
        f"docs/guides/{name}.md"
        for name in ("training", "envs", "multitask", "demonstrations", "lifelong", "meta-learning")
    ]
    + ["docs/guides/scale-out.md"]
)


def _readme_blocks(lang: str) -> list[tuple[str, str]]:
    """(page, block) of every ``lang`` block of the README and guides, in order."""
    fence = "`" * 3
    out = []
    for page in PAGES:
        parts = (ROOT / page).read_text().split(f"{fence}{lang}\n")[1:]
        out += [(page, p.split(fence, 1)[0]) for p in parts]
    return out


def test_every_guide_is_read_in_order() -> None:
    assert sorted(PAGES[1:]) == sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "guides").glob("*.md")
    )


def test_readme_recipes_load() -> None:
    import tomllib

    from mtrl.recipes import parse_recipe

    blocks = _readme_blocks("toml")
    assert blocks
    for page, block in blocks:
        kind, cfg = parse_recipe(tomllib.loads(block), page)
        assert kind.name == cfg.kind


def test_readme_python_snippets_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every Python block of the README and its guides, in order, in one namespace (a
    later block may use an earlier one's names, as a reader pasting them would), from a
    fresh directory."""
    monkeypatch.chdir(tmp_path)
    blocks = _readme_blocks("python")
    assert len(blocks) >= 5
    namespace: dict[str, object] = {"__name__": "__main__"}
    for page, block in blocks:
        exec(compile(block, page, "exec"), namespace)
    out = capsys.readouterr().out
    assert "unlocked_at" in out  # the SB3 curriculum snippet's summary
    assert (tmp_path / "runs" / "nav_famo" / "summary.json").is_file()


def test_demos_table_gain_over_clone_by_hand() -> None:
    """experiments/demos_table.py --window: each seed's mean evaluation in the window
    minus its own step-0 clone; runs without a clone or evaluations there are left out."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("demos_table", "experiments/demos_table.py")
    assert spec is not None and spec.loader is not None
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)

    def run(clone: float | None, **evals: float) -> dict[int, dict[str, float]]:
        out = {int(k[1:]): {"eval_success": v} for k, v in evals.items()}
        return out | ({0: {"eval_success": clone}} if clone is not None else {})

    seed0 = run(0.5, s10=0.6, s20=0.8, s30=0.1)
    assert table.gain_over_clone(seed0, 10, 20) == pytest.approx(0.2)
    assert table.gain_over_clone(run(None, s10=0.6), 0, 20) is None
    assert table.gain_over_clone(seed0, 40, 50) is None
    text = table.window_table({"arm": [seed0, run(0.9, s10=0.8)]}, 10, 20)
    assert "+0.20, -0.10" in text and "0.05 [" in text


def test_meta_rl_table_reads_each_seeds_adaptation_by_hand(tmp_path: Path) -> None:
    """experiments/meta_rl_table.py: a learner's curve before (point 0) and after
    ``--after`` points, a mean over seeds, the env steps each run trained on."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("meta_rl_table", "experiments/meta_rl_table.py")
    assert spec is not None and spec.loader is not None
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    runs = []
    for seed, (before, after) in enumerate([(-40.0, -10.0), (-30.0, -20.0)]):
        run = tmp_path / f"s{seed}"
        run.mkdir()
        points = [
            {"steps": i, "return": v, "success": v / -100}
            for i, v in enumerate([before, after, 0.0])
        ]
        doc = {
            "metric": "return",
            "curves": {"me": points, "other": points[::-1]},
            "env_steps": {"other": 500_000},  # a baseline adapt trained, not the run
        }
        (run / "adapt.json").write_text(json.dumps(doc))
        (run / "summary.json").write_text(json.dumps({"results": {"env_steps": 2_000_000}}))
        runs.append(run)
    row = table.row("me", "me", runs, 1, 1)
    assert row["before"].startswith("-35.0 [") and row["after 1"].startswith("-15.0 [")
    assert row["per seed after"] == "-10.0, -20.0" and row["env steps (M)"] == "2.00"
    assert table.row("other", "other", runs, 1, 1)["env steps (M)"] == "0.50"
    line = table.difference("me - other", [-10.0, -20.0], [-12.0, -25.0])
    assert line.startswith("me - other: +3.5 [+2.0, +5.0]") and "per seed +2.0, +5.0" in line
    # success rates need two decimals: 0.36 and 0.43 are not both "0.4"
    assert table.row("me", "other", runs, 1, 2)["per seed after"] == "-10.00, -20.00"
    # --metric reads another quantity every point records (return beside success)
    assert table.row("me", "me", runs, 1, 2, "success")["per seed after"] == "0.10, 0.20"
    with pytest.raises(SystemExit, match="no 'length'"):
        table.points("me", runs, 1, "length")
    with pytest.raises(SystemExit, match="ends after 2 step"):
        table.points("me", runs, 3)
    line = table.difference("a - b", [0.48, 0.34], [0.57, 0.43], digits=2)
    assert line.startswith("a - b: -0.09 [-0.09, -0.09]") and "per seed -0.09, -0.09" in line


def test_mixture_table_names_each_arm_from_its_runs_config() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("mixture_table", "experiments/mixture_table.py")
    assert spec is not None and spec.loader is not None
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    mix = {"name": ["pendulum", "navigation2d"]}
    heads = {"critic": {"arch": "multihead"}, "actor": {"arch": "multihead"}}
    assert table.arm_of({"env": {"name": "pendulum"}}) == "separate"
    assert table.arm_of({"env": mix, "reward_norm": "none"}) == "mixture"
    assert table.arm_of({"env": mix, "reward_norm": "return_std", "sac": heads}) == (
        "mixture, heads+norm"
    )
    assert table.arm_of({"env": mix, "sac": {"popart": {"beta": 3e-4}}}) == "mixture+popart"


def test_compare_paired_matches_seeds_by_number_by_hand(tmp_path: Path) -> None:
    """experiments/compare_paired.py: arms from separate comparisons differ seed by seed,
    on the seeds both ran (a --first-seed comparison shares only some)."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("compare_paired", "experiments/compare_paired.py")
    assert spec is not None and spec.loader is not None
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    for name, seeds, means in [
        ("a", [0, 1, 2], [-3.0, -4.0, -6.0]),
        ("b", [1, 2, 3], [-5.0, -5.5, 0.0]),
    ]:
        out = tmp_path / name
        out.mkdir()
        variant = {"label": "base", "per_seed_mean": means}
        (out / "compare.json").write_text(json.dumps({"seeds": seeds, "variants": [variant]}))
    _, a, a_seeds = table.arm(f"a={tmp_path / 'a'}")
    _, b, b_seeds = table.arm(f"b={tmp_path / 'b'}:base")
    diff = table.difference(table.seed_scores(a, a_seeds), table.seed_scores(b, b_seeds), 2)
    # seeds 1 and 2: -4 - -5 = +1, -6 - -5.5 = -0.5 (by position it would be +2, +1.5, -6)
    assert diff["gain [95% CI]"].startswith("+0.25 [") and diff["seeds better"] == "1/2"
    with pytest.raises(SystemExit, match="name one variant"):
        table.arm(f"a={tmp_path / 'a'}:other")


def test_curriculum_table_counts_unmastered_runs_at_their_steps_by_hand(tmp_path: Path) -> None:
    """experiments/curriculum_table.py: a run that never masters its target counts its
    steps; the return is the target tasks' only; arms pair on the seeds both ran."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location(
        "curriculum_table", "experiments/curriculum_table.py"
    )
    assert spec is not None and spec.loader is not None
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)

    def write(arm: str, seed: int, mastered_at: int, steps: int, returns: list[float]) -> None:
        stages = [
            {"task_id": 0, "target": False, "steps": 300, "mastered_at": 300},
            {"task_id": 1, "target": True, "steps": steps - 300, "mastered_at": mastered_at},
        ]
        per_task = [{"task_id": i, "return": r} for i, r in enumerate(returns)]
        results = {"steps": steps, "curriculum": stages, "per_task": per_task}
        run = tmp_path / arm / f"seed_{seed}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps({"seed": seed, "results": results}))

    write("a", 0, 1000, 1000, [-1.0, -10.0])
    write("a", 1, -1, 2000, [-1.0, -30.0])  # never mastered: counts its 2000 steps
    write("b", 1, 1500, 1500, [-5.0, -20.0])
    write("b", 2, 900, 900, [-5.0, -40.0])
    a, b = table.read_arm(tmp_path / "a"), table.read_arm(tmp_path / "b")
    assert a[1] == {"steps": 2000.0, "mastered": 0.0, "on_targets": 1700.0, "return": -30.0}
    row = table.arm_row("a", a)
    assert row["mastered"] == "1/2" and row["median steps to mastery [95% CI]"].startswith(
        "1,500 ["
    )
    assert row["target return [95% CI]"].startswith("-20.0 [")
    pair = table.paired_row("a - b", a, b)  # seed 1 only: 2000 - 1500, -30 - -20
    assert pair["seeds"] == "1" and pair["steps to mastery [95% CI]"] == "+500 [+500, +500]"
    assert pair["target return [95% CI]"] == "-10.0 [-10.0, -10.0]"
    with pytest.raises(SystemExit, match="no seed_"):
        table.read_arm(tmp_path / "missing")
    plain = tmp_path / "plain" / "seed_0"
    plain.mkdir(parents=True)
    (plain / "summary.json").write_text(json.dumps({"seed": 0, "results": {"steps": 5}}))
    with pytest.raises(SystemExit, match="not a curriculum run"):
        table.read_arm(tmp_path / "plain")


def test_eval_table_reads_each_seeds_eval_and_the_bar_by_hand(tmp_path: Path) -> None:
    """experiments/eval_table.py: task successes from each seed's ``mtrl eval`` file, the
    paired gain last - first per seed, and a claim's bar read on each seed with margins."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("eval_table", "experiments/eval_table.py")
    assert spec is not None and spec.loader is not None
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    runs = []
    for seed, (clone, final) in enumerate([((0.8, 1.0), (0.9, 1.0)), ((0.6, 1.0), (1.0, 0.94))]):
        run = tmp_path / f"seed_{seed}"
        run.mkdir()
        for name, values in (("eval_step_0.json", clone), ("eval.json", final)):
            rows = [{"task_id": i, "task": f"t{i}", "success": v} for i, v in enumerate(values)]
            (run / name).write_text(json.dumps({"per_task": rows[::-1]}))  # order by task id
        runs.append(run)
    cols = table.load(runs, {"clone": "eval_step_0.json", "final": "eval.json"})
    assert cols["final"][1] == {"t0": 1.0, "t1": 0.94}
    # seed means: clone 0.9, 0.8; final 0.95, 0.97 -> gains +0.05, +0.17
    assert table.paired_gain([0.9, 0.8], [0.95, 0.97]).startswith("+0.110 [")
    assert "2/2 higher (+0.050, +0.170)" in table.paired_gain([0.9, 0.8], [0.95, 0.97])
    assert table.bar_reading(cols["final"][1], 0.97, 0.9) == (
        "holds: mean 0.970 (+0.000 against 0.97); every task >= 0.9"
    )
    assert table.bar_reading(cols["final"][0], 0.97, 0.95) == (
        "does not hold: mean 0.950 (-0.020 against 0.97); under 0.95: t0 0.90"
    )
    # 41/50 and 49/50 average to 0.8999999999999999 in floats: at the bar, so it meets it
    assert table.bar_reading({"a": 0.82, "b": 0.98}, 0.9, 0.8).startswith("holds: mean 0.900")
    assert table.bar_reading({"a": 0.82, "b": 0.96}, 0.9, 0.8).startswith("does not hold")
    with pytest.raises(SystemExit, match="mtrl eval"):
        table.load(runs, {"x": "eval_step_5.json"})
    other = [{"task_id": 0, "task": "other", "success": 1.0}]
    (runs[1] / "eval.json").write_text(json.dumps({"per_task": other}))
    with pytest.raises(SystemExit, match="different tasks"):
        table.load(runs, {"clone": "eval_step_0.json", "final": "eval.json"})
