"""Procedural generator: reproducibility, no leaks, thresholds, sanity filter, resume, CLI.

Verification runs the real reference solvers in the real ``local`` sandbox.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from sandmle.graders.metrics import get_metric

from sandmle.core.task import MedalThresholds
from sandmle.generators.calibration import positions_thresholds as derive_thresholds
from sandmle.generators.calibration import sanity_reason
from sandmle.generators.procedural import ProceduralConfig, ProceduralGenerator
from sandmle.generators.seeds import all_seeds, families, select_seeds
from sandmle.generators.synth import synthesize
from sandmle.graders.evaluator import run_evaluator
from sandmle.graders.metrics import compute_score as score

MODALITIES = {"tabular", "text", "image", "time_series"}
RELIABLE = ["lite-nomad2018-predict-transparent-conductors", "macro-forecast"]  # wide headroom: rarely rejected
SMALL = ProceduralConfig(workers=2, media_test_rows=(200, 250))  # smaller image sets: quicker, still wide headroom


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("gen")
    seeds = ["breast-cancer-binary", "wine-multiclass", "diabetes-regression", "descr-text-binary",
             "digits-image-multiclass", "co2-forecast"]
    outcomes = list(ProceduralGenerator(SMALL).generate(out, 6, seed=7, seeds=seeds))
    return out, outcomes


def test_seeds_cover_every_modality_and_the_22_lite_competitions():
    seeds = all_seeds()
    assert {s.modality for s in seeds if not s.structure_only} >= MODALITIES
    assert {s.task_type for s in seeds} >= {"binary", "multiclass", "multilabel", "regression", "multitarget",
                                            "forecasting"}
    assert len({s.mlebench_id for s in seeds if s.structure_only}) == 22
    with pytest.raises(Exception, match="unknown seed"):
        select_seeds(["no-such-seed"])
    # Every family says what it keeps and simplifies, and the seed order alternates families.
    fams = families()
    assert {s.family for s in seeds} == set(fams)
    assert all(f.keeps and f.simplifies and f.oracle for f in fams.values())
    first = [s.family for s in seeds[: len(fams)]]
    assert len(set(first)) == len(fams)


@pytest.mark.parametrize("seed", all_seeds(), ids=lambda s: s.name)
def test_synthesis_is_reproducible_and_hides_the_rule(seed):
    a = synthesize(seed, np.random.default_rng([3, 1]), 80, 40)
    b = synthesize(seed, np.random.default_rng([3, 1]), 80, 40)
    assert a.train.to_csv() == b.train.to_csv() and a.answers.to_csv() == b.answers.to_csv()
    assert a.rule == b.rule and a.files == b.files
    assert len(a.train) == 80  # the training budget exactly, every family (duplicates and series included)
    assert len(a.test) == len(a.answers) == len(a.sample_submission) == len(a.oracle)
    assert not set(a.target_columns) & set(a.test.columns)  # the test set carries no answers
    assert not set(a.train_columns) & set(a.test.columns) and set(a.train_columns) <= set(a.train.columns)
    assert a.train[a.id_column].is_unique and not set(a.train[a.id_column]) & set(a.test[a.id_column])
    # The oracle submission has the submission's shape and scores better than the sample one.
    lower = get_metric(seed.metric).lower_is_better
    oracle = score(seed.metric, a.answers, a.oracle, a.target_columns)
    sample = score(seed.metric, a.answers, a.sample_submission, a.target_columns)
    assert (oracle < sample) if lower else (oracle > sample)
    if a.files:  # one file per row, named by id, in train/ and test/
        assert {f"train/{i}" for i in a.train[a.id_column]} == {k.rsplit(".", 1)[0] for k in a.files if k.startswith("train/")}
        assert {f"test/{i}" for i in a.test[a.id_column]} == {k.rsplit(".", 1)[0] for k in a.files if k.startswith("test/")}
    c = synthesize(seed, np.random.default_rng([3, 2]), 80, 40)
    assert c.signature != a.signature


def test_thresholds_follow_mlebench_positions_and_the_sanity_filter():
    scores = {"sample": 0.5, **{f"m{i}": 0.60 + 0.02 * i for i in range(12)}}
    th, board = derive_thresholds(scores, lower=False)
    assert board[0] == pytest.approx(0.82) and len(board) == 12
    # N=12: gold = position 1, silver = 2, bronze = 4, median of the board
    assert (th.gold, th.silver, th.bronze) == (board[0], board[1], board[3])
    assert th.median == pytest.approx(np.median(board))
    assert sanity_reason(scores, th, lower=False) is None
    tied = {"sample": 0.5, **{f"m{i}": 0.7 + 0.01 * (i % 3) for i in range(12)}}
    with pytest.raises(ValueError, match="distinct"):  # ties count once: 3 distinct scores
        derive_thresholds(tied, False)
    flat = MedalThresholds(gold=0.8, silver=0.8, bronze=0.7, median=0.6)
    assert sanity_reason(scores, flat, False) == "non_monotone"
    bad_sample = dict(scores, sample=0.9)
    assert sanity_reason(bad_sample, th, False) == "median_not_better_than_sample"
    low = {k: -v for k, v in scores.items()}
    th_low, _ = derive_thresholds(low, lower=True)
    assert th_low.gold < th_low.silver < th_low.bronze < th_low.median
    with pytest.raises(ValueError):
        derive_thresholds({"sample": 1, "a": 1, "b": 2}, False)


def test_generated_tasks_are_verified_across_modalities(generated):
    out, outcomes = generated
    ok = [o for o in outcomes if o.accepted]
    assert len(ok) == 6
    assert {o.modality for o in outcomes} == MODALITIES
    assert len({o.modality for o in ok}) >= 3
    known = {"non_monotone", "median_not_better_than_sample", "no_signal", "too_few_reference_scores",
             "no_headroom", "gap_below_noise", "no_ladder"}
    assert all(o.reason in known for o in outcomes if not o.accepted)  # the sanity filter, not errors
    for o in ok:
        meta = yaml.safe_load((Path(o.path) / "task.yaml").read_text())
        th = MedalThresholds(**meta["thresholds"])
        lower = meta["lower_is_better"]
        assert th.is_monotone(lower)
        assert len(meta["leaderboard"]) >= 6
        # SandMLE's micro budget: 50-200 training rows per task, every family, series included
        # (/work/shared/seeds: "each task is paired with only 50-200 training samples").
        train = pd.read_csv(Path(o.path) / "prepared/public/train.csv")
        assert 50 <= meta["provenance"]["n_train"] == len(train) <= 200, (o.task_id, len(train))
        if o.modality == "time_series":  # 6-16 series over at least four weeks (synth_series)
            days = pd.to_datetime(train["date"])
            assert train["series"].nunique() >= 6 and (days.max() - days.min()).days + 1 >= 28
        d = meta["difficulty"]
        # Gold lies between the best reference and the oracle; the noise is below half the gaps.
        ranked = [d["oracle_score"], th.gold, d["best_reference"], th.bronze, d["median_reference"]]
        assert ranked == sorted(ranked, reverse=not lower)
        gaps = [abs(a - b) for a, b in zip([th.gold, th.silver, th.bronze], [th.silver, th.bronze, th.median])]
        assert d["metric_se"] <= 0.5 * min(gaps) + 1e-9 and d["min_threshold_gap"] == pytest.approx(min(gaps), abs=1e-6)
        assert meta["layout"]["family"] == o.family and meta["layout"]["submission"]


def test_evaluator_matches_the_host_score(generated, tmp_path):
    out, outcomes = generated
    for o in [o for o in outcomes if o.accepted]:
        root = Path(o.path)
        meta = yaml.safe_load((root / "task.yaml").read_text())
        answers = pd.read_csv(root / "prepared/private/answers.csv")
        sample = pd.read_csv(root / "prepared/public/sample_submission.csv")
        sub = sample.copy()
        for col in meta["target_columns"]:  # a better-than-sample submission: the answers themselves
            sub[col] = answers[col]
        path = tmp_path / f"{o.task_id}.csv"
        sub.to_csv(path, index=False)
        res = run_evaluator(root / "prepared/private/evaluator.py", path)
        assert res["score"] == pytest.approx(score(meta["metric"], answers, sub, meta["target_columns"]))
        assert res["gold_threshold"] == meta["thresholds"]["gold"]
        assert res["is_lower_better"] == meta["lower_is_better"]
        bad = tmp_path / "bad.csv"
        bad.write_text("id,wrong\n1,2\n")
        assert run_evaluator(root / "prepared/private/evaluator.py", bad)["score"] is None


def test_hidden_answers_and_rules_never_reach_public_files(generated):
    out, outcomes = generated
    for o in [o for o in outcomes if o.accepted]:
        root = Path(o.path)
        public = root / "prepared" / "public"
        names = {p.name for p in public.iterdir()}
        assert names - {"train", "test"} == {"description.md", "train.csv", "test.csv", "sample_submission.csv"}
        rule = json.loads((root / "prepared/private/rule.json").read_text())
        meta_text = (root / "task.yaml").read_text()
        assert "keywords" not in meta_text and "weights" not in meta_text  # only the signature
        test = pd.read_csv(public / "test.csv")
        answers = pd.read_csv(root / "prepared/private/answers.csv")
        assert not set(answers.columns[1:]) & set(test.columns)
        description = (public / "description.md").read_text()
        core = json.dumps(rule["core"], sort_keys=True)
        for path in public.rglob("*"):
            if path.is_file():
                assert core.encode() not in path.read_bytes() and "rule" not in path.name
        assert not (public / "oracle.csv").exists() and (root / "prepared/private/oracle.csv").is_file()
        assert "digit" not in pd.read_csv(public / "train.csv").columns  # the seed's own label
        assert all(str(w) not in description for w in rule["core"].get("weights", []))
        if "keywords" in rule["core"]:  # text: the hidden keywords never appear in the description
            words = set(description.lower().replace("`", " ").split())
            assert not words & {w for kw in rule["core"]["keywords"] for w in kw}


def test_same_seed_gives_byte_identical_files_and_resume_keeps_tasks(tmp_path):
    cfg = ProceduralConfig(workers=1, test_rows=(200, 300))
    a, b = tmp_path / "a", tmp_path / "b"
    out_a = list(ProceduralGenerator(cfg).generate(a, 2, seed=11, seeds=RELIABLE))
    list(ProceduralGenerator(cfg).generate(b, 2, seed=11, seeds=RELIABLE))
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        if rel.name == "rejections.jsonl":  # the same rejections; only their timings differ
            strip = lambda p: [{k: v for k, v in json.loads(x).items() if k != "seconds"}  # noqa: E731
                               for x in p.read_text().splitlines()]
            assert strip(a / rel) == strip(b / rel)
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    again = list(ProceduralGenerator(cfg).generate(a, 3, seed=11, seeds=RELIABLE))
    resumed = [o for o in again if o.resumed]
    assert {o.task_id for o in resumed} == {o.task_id for o in out_a if o.accepted}
    assert sum(o.accepted for o in again) == 3
    rejected = [json.loads(x) for x in (a / "rejections.jsonl").read_text().splitlines()] \
        if (a / "rejections.jsonl").exists() else []
    assert all(r["reason"] for r in rejected)


def test_near_duplicates_are_dropped(tmp_path, monkeypatch):
    """Forces two candidates to share one hidden rule by replaying the same RNG stream."""
    import sandmle.generators.procedural as proc

    real = np.random.default_rng
    monkeypatch.setattr(proc.np.random, "default_rng", lambda key: real([5, 0]))
    outs = list(ProceduralGenerator(ProceduralConfig(workers=1, max_attempts_factor=1.0, test_rows=(200, 300)))
                .generate(tmp_path, 2, seed=5, seeds=["diabetes-regression"]))
    assert [o.reason for o in outs if not o.accepted] == ["near_duplicate"]


def test_cli_generate_and_show(tmp_path):
    from sandmle.core.cli import build_cli

    main = build_cli()

    runner = CliRunner()
    res = runner.invoke(main, ["generate", "--n", "2", "--out", str(tmp_path / "ts"),
                               "--seeds", "penguins-binary,sunspots-forecast", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "generation summary" in res.output
    png = tmp_path / "mix.png"
    res = runner.invoke(main, ["tasks", "show", str(tmp_path / "ts"), "--plot", str(png)])
    assert res.exit_code == 0, res.output
    assert png.stat().st_size > 1000
    assert "family mix" in res.output and "per task" in res.output
    res = runner.invoke(main, ["tasks", "show", str(tmp_path / "ts"), "--json"])
    rows = json.loads(res.output)
    assert len(rows) == 2 and all(r["difficulty"]["oracle_score"] is not None for r in rows)
    assert all(r["files"][:3] == ["train.csv", "test.csv", "sample_submission.csv"] and r["submission"] for r in rows)
    one = Path(rows[0]["path"])
    res = runner.invoke(main, ["tasks", "show", str(one)])
    assert res.exit_code == 0 and "keeps" in res.output and "metric bootstrap SE" in res.output


def test_recipe_generate_stage_writes_the_task_set(tmp_path):
    """Calls the stage the runner calls (the full recipe also needs other helpers' components)."""
    from rich.console import Console

    from sandmle.core.plugins import get_registry
    from sandmle.core.recipe import Recipe
    from sandmle.generators.stage import run_generate_stage

    recipe = Recipe.model_validate({
        "name": "gen-only", "output_dir": str(tmp_path / "run"), "seed": 4,
        "tasks": {"name": "micro", "n": 2, "seeds": ["iris-multiclass", "fair-regression"],
                  "generator": {"name": "procedural", "args": {"workers": 1}}}})
    with open(tmp_path / "log.txt", "w") as log:
        run_generate_stage(recipe, get_registry(), Console(file=log))
    tasks = sorted((tmp_path / "run" / "tasks" / "micro").glob("*/task.yaml"))
    assert len(tasks) == 2 and all("-s4-" in p.parent.name for p in tasks)
    assert "generation summary" in (tmp_path / "log.txt").read_text()
