"""File-based and multi-output seed families end to end: generated, verified, graded by the default
grader and by the task's own ``evaluator.py`` (SandMLE's JSON contract), and solved by the scripted
``baseline`` policy in a real ``local`` sandbox session (a valid submission in each).
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sandmle.core.plugins import get_registry
from sandmle.core.task import load_task
from sandmle.generators.procedural import ProceduralConfig, ProceduralGenerator
from sandmle.graders.evaluator import run_evaluator

# One seed per family whose structure the old generator approximated away.
FAMILY_SEEDS = {
    "image-classification": "lite-aerial-cactus-identification",
    "image-regression": "lite-denoising-dirty-documents",
    "image-multilabel": "lite-plant-pathology-2020-fgvc7",
    "audio": "lite-mlsp-2013-birds",
    "text-multilabel": "lite-jigsaw-toxic-comment-classification-challenge",
    "tabular-multitarget": "lite-nomad2018-predict-transparent-conductors",
    "text-meta": "lite-random-acts-of-pizza",
    "time-series": "co2-forecast",
    "tabular-pitfalls": "lite-new-york-city-taxi-fare-prediction",
}
CONFIG = ProceduralConfig(workers=2, test_rows=(400, 600), media_test_rows=(250, 300))


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("families")
    outcomes = list(ProceduralGenerator(CONFIG).generate(out, len(FAMILY_SEEDS), seed=3,
                                                         seeds=list(FAMILY_SEEDS.values())))
    by_family = {o.family: Path(o.path) for o in outcomes if o.accepted}
    assert set(by_family) == set(FAMILY_SEEDS), [(o.task_id, o.reason, o.detail[:200]) for o in outcomes]
    return by_family


def _meta(root: Path) -> dict:
    return yaml.safe_load((root / "task.yaml").read_text())


@pytest.mark.parametrize("family", ["image-classification", "image-regression", "image-multilabel"])
def test_images_are_rgb_png_files_named_by_id(tasks, family):
    from PIL import Image

    root = tasks[family]
    public = root / "prepared/public"
    train, test = pd.read_csv(public / "train.csv"), pd.read_csv(public / "test.csv")
    assert list(test.columns) == ["id"]  # the pixels live in the files, not in the CSV
    for split, frame in (("train", train), ("test", test)):
        files = sorted(p.stem for p in (public / split).iterdir())
        assert files == sorted(frame["id"].astype(str))
    img = Image.open(next((public / "train").iterdir()))
    assert img.format == "PNG" and img.mode == "RGB" and min(img.size) >= 32
    assert _meta(root)["layout"]["folders"] == {"train/": len(train), "test/": len(test)}


def test_sounds_are_wav_files_and_labels_are_columns(tasks):
    root = tasks["audio"]
    public = root / "prepared/public"
    clip = next((public / "test").iterdir())
    with wave.open(io.BytesIO(clip.read_bytes())) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 4000)
    meta = _meta(root)
    train = pd.read_csv(public / "train.csv")
    assert len(meta["target_columns"]) >= 3 and set(meta["target_columns"]) <= set(train.columns)
    assert meta["metric"] == "mean_column_auc"


def test_multi_output_formats_keep_their_real_shape(tasks):
    jig, nomad, plant = (_meta(tasks[f]) for f in ("text-multilabel", "tabular-multitarget", "image-multilabel"))
    assert jig["metric"] == "mean_column_auc" and len(jig["target_columns"]) >= 3
    assert nomad["metric"] == "mean_column_rmsle" and len(nomad["target_columns"]) == 2
    answers = pd.read_csv(tasks["image-multilabel"] / "prepared/private/answers.csv")
    assert (answers[plant["target_columns"]].sum(axis=1) == 1).all()  # one-hot, as plant-pathology
    pizza = pd.read_csv(tasks["text-meta"] / "prepared/public/train.csv")
    assert "text" in pizza.columns and pizza.select_dtypes("number").shape[1] >= 4  # text plus metadata
    series = pd.read_csv(tasks["time-series"] / "prepared/public/test.csv")
    history = pd.read_csv(tasks["time-series"] / "prepared/public/train.csv")
    assert series["date"].min() > history["date"].max()  # the test rows are the forecast horizon
    taxi = _meta(tasks["tabular-pitfalls"])
    assert {"date", "shift", "duplicates"} <= set(taxi["layout"]["pitfalls"])


@pytest.mark.parametrize("family", sorted(FAMILY_SEEDS))
def test_grader_and_evaluator_agree_on_oracle_and_sample(tasks, family, tmp_path):
    root = tasks[family]
    task = load_task(root)
    grader = get_registry().create("graders", "default")
    oracle = root / "prepared/private/oracle.csv"
    sample = root / "prepared/public/sample_submission.csv"
    for path in (oracle, sample):
        copy = tmp_path / path.name
        copy.write_bytes(path.read_bytes())
        grade = grader.grade(task, copy)
        res = run_evaluator(task.evaluator_path, copy)
        assert grade.valid_submission and res["score"] == pytest.approx(grade.score, abs=1e-5)
        assert res["gold_threshold"] == pytest.approx(task.thresholds.gold)
        # The noiseless rule reaches gold; the sample submission reaches no medal.
        assert grade.gold_medal if path is oracle else not grade.any_medal


@pytest.mark.parametrize("family", sorted(FAMILY_SEEDS))
def test_baseline_policy_submits_a_valid_file(tasks, sandbox, family):
    from scaffolds_support import run_episode

    task = load_task(tasks[family])
    reg = get_registry()
    traj, grade = run_episode(reg.create("scaffolds", "react"), reg.create("backends", "baseline"), sandbox, task)
    assert grade.valid_submission, (grade.reason, [t.observations for t in traj.turns])
    assert np.isfinite(grade.score)
