"""Tasks worth learning: coherent domain names, thresholds on a ladder of reference solutions,
tier gaps above the metric's noise.

The unit tests pin the rules (``generators/domains.py``, ``generators/ladder.py``) on fixed seeds
and hand-computed cases; the set-level test reads the session's generated task set (built once,
``tests/conftest.py``), whose reference solvers ran in the real ``local`` sandbox.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from sandmle.generators.configs import ThresholdPolicy
from sandmle.generators.domains import DOMAINS, name_problems
from sandmle.generators.ladder import bootstrap_ses, informed_submission, place_on_ladder
from sandmle.generators.seeds import all_seeds, families, select_seeds
from sandmle.generators.synth import synthesize
from sandmle.graders.metrics import compute_score, get_metric

FIXED = [(seed, i) for seed in all_seeds() for i in (1, 2)]


@pytest.mark.parametrize("seed,i", FIXED, ids=lambda x: x.name if hasattr(x, "name") else str(x))
def test_every_name_of_a_task_comes_from_one_domain(seed, i):
    c = synthesize(seed, np.random.default_rng([21, i]), 60, 40)
    assert c.name_problems() == []
    base = next(d for d in DOMAINS if d["name"] == c.domain.name)
    names = set(c.class_names) - {str(k) for k in range(10)}
    if seed.modality == "audio":  # sounds that can be heard together
        assert names <= set(base["sources"]) and c.domain.label_kind == "sources"
    elif seed.task_type == "multilabel":  # things that can co-occur
        assert names <= set(base["findings"])
    else:  # one outcome per row
        assert names <= set(base["classes"])
    if seed.ordinal:
        assert c.class_names == [str(k) for k in range(len(c.class_names))]
    if "text" in c.test.columns:  # documents speak the domain's words, in sentences
        words = {w.strip(".,").lower() for doc in c.test["text"].head(20) for w in doc.split()}
        assert len(words & set(base["terms"])) >= 5
        assert all(doc.endswith(".") and doc[0].isupper() for doc in c.test["text"].head(20))


def test_the_check_rejects_names_that_contradict_each_other():
    c = synthesize(select_seeds(["lite-jigsaw-toxic-comment-classification-challenge"])[0],
                   np.random.default_rng([21, 1]), 60, 40)
    other = next(d for d in DOMAINS if d["name"] != c.domain.name)
    base = next(d for d in DOMAINS if d["name"] == c.domain.name)
    ok = dict(columns=["text"], classes=list(c.class_names), targets=list(c.target_columns), task_type="multilabel")
    assert name_problems(c.domain, **ok) == []
    # Labels from another domain (hydrophone clips labelled late/on_time).
    assert any("not co-occurring" in p for p in name_problems(c.domain, **{**ok, "classes": other["findings"][:3]}))
    # An exclusive outcome set used as co-occurring labels, and the reverse.
    assert name_problems(c.domain, **{**ok, "classes": base["classes"][:3]})
    assert name_problems(c.domain, columns=[], classes=base["findings"][:3], targets=["label"], task_type="multiclass")
    # A target from another domain ("Fabric Scan" predicting power_output), a foreign column, a clash.
    assert name_problems(c.domain, columns=[], classes=[], targets=[other["target"]], task_type="regression")
    assert name_problems(c.domain, columns=[other["features"][0]], classes=[], targets=[base["target"]],
                         task_type="regression")
    assert name_problems(c.domain, columns=[base["target"]], classes=[], targets=[base["target"]],
                         task_type="regression")
    # A story of another domain, and named grades on an ordinal task.
    foreign = dataclasses.replace(c.domain, entity=other["entity"])
    assert name_problems(foreign, **ok)
    assert name_problems(c.domain, columns=[], classes=base["classes"][:3], targets=["label"],
                         task_type="multiclass", ordinal=True)


def test_the_generator_rejects_incoherent_candidates(tmp_path, monkeypatch):
    from sandmle.generators import synth
    from sandmle.generators.procedural import ProceduralConfig, ProceduralGenerator

    real = synth.pick_domain

    def mixed(rng, *args, **kwargs):  # the old independent draw: labels of another domain
        d = real(rng, *args, **kwargs)
        other = next(x for x in DOMAINS if x["name"] != d.name)
        return dataclasses.replace(d, labels=tuple(other["classes"][:len(d.labels)]))

    monkeypatch.setattr(synth, "pick_domain", mixed)
    out = list(ProceduralGenerator(ProceduralConfig(max_attempts_factor=1.0)).generate(
        tmp_path, 1, seed=3, seeds=["wine-multiclass"]))
    assert [o.reason for o in out] == ["incoherent_names"] and "not exclusive names" in out[0].detail


# ------------------------------------------------------------------ the ladder and the noise rule
RUNGS = {"default": 0.70, "tuned": 0.80, "informed": 0.90, "oracle": 0.95}
SCORES = {"sample": 0.5, "constant": 0.5, "a": 0.65, "b": 0.70, "c": 0.80}


def test_thresholds_sit_on_the_ladder_of_reference_solutions():
    placed = place_on_ladder(ThresholdPolicy(), SCORES, RUNGS, {"tuned": 0.004, "informed": 0.005}, lower=False)
    th = placed.thresholds
    # 0 default, 1 tuned, 2 informed: median 0, bronze 0.8, silver 1.15, gold 1.4.
    assert th.median == pytest.approx(0.70) and th.bronze == pytest.approx(0.78)
    assert th.silver == pytest.approx(0.815) and th.gold == pytest.approx(0.84)
    assert RUNGS["default"] <= th.median < th.bronze < RUNGS["tuned"] < th.silver < th.gold <= RUNGS["informed"]
    f = placed.figures
    assert f["metric_se"] == 0.005 and f["gap_se"] >= 2.5 and not f["widened"]
    assert f["ladder"] == RUNGS and f["informed_gain_se"] == pytest.approx(20.0)


def test_gaps_are_widened_to_2_5_se_and_step_down_from_the_informed_rung():
    se = 0.0095  # 2.5 SE = 0.024: every gap of the default positions already holds
    th = place_on_ladder(ThresholdPolicy(), SCORES, RUNGS, {"tuned": se, "informed": se / 2}, False).thresholds
    gaps = [th.gold - th.silver, th.silver - th.bronze, th.bronze - th.median]
    assert min(gaps) >= 2.5 * se and th.gold <= RUNGS["informed"] and th.silver > RUNGS["tuned"]
    se = 0.025  # 2.5 SE = 0.0625: gold pinned on the informed rung, the rest step down below it
    placed = place_on_ladder(ThresholdPolicy(), SCORES, RUNGS, {"tuned": se, "informed": se}, False)
    th = placed.thresholds
    assert th.gold == pytest.approx(0.90) and placed.figures["widened"]
    assert min(th.gold - th.silver, th.silver - th.bronze, th.bronze - th.median) >= 2.5 * se
    # Noisier: silver would fall to the tuned rung: rejected, with the reason.
    noisy = place_on_ladder(ThresholdPolicy(), SCORES, RUNGS, {"tuned": 0.05, "informed": 0.05}, False)
    assert noisy.thresholds is None and noisy.reason == "no_ladder"
    # Just under it: gold on the informed rung, silver still above the tuned rung.
    tight = place_on_ladder(ThresholdPolicy(), SCORES, RUNGS, {"tuned": 0.038, "informed": 0.03}, False).thresholds
    assert tight.gold == pytest.approx(0.9) and RUNGS["tuned"] < tight.silver < tight.gold
    # Where stepping down pushes the median below the sample submission, the median (no medal)
    # sits halfway between the sample and bronze; the medal gaps keep their 2.5 SE.
    low = place_on_ladder(ThresholdPolicy(), {**SCORES, "sample": 0.66}, RUNGS, {"tuned": 0.038}, False)
    th = low.thresholds
    assert th.median == pytest.approx((0.66 + th.bronze) / 2) and low.figures["median_compressed"]
    assert min(th.gold - th.silver, th.silver - th.bronze) >= 2.5 * 0.038
    unknown = place_on_ladder(ThresholdPolicy(), SCORES, RUNGS, {"tuned": float("inf")}, False)
    assert unknown.reason == "gap_below_noise" and "SE" in unknown.figures["detail"]
    # Informed features that do not beat the tuned model leave no ladder.
    flat = place_on_ladder(ThresholdPolicy(), SCORES, {**RUNGS, "informed": 0.805}, {"tuned": 0.004}, False)
    assert flat.reason == "no_ladder"


def test_lower_is_better_mirrors_the_ladder():
    up = place_on_ladder(ThresholdPolicy(), SCORES, RUNGS, {"tuned": 0.012}, False).thresholds
    down = place_on_ladder(ThresholdPolicy(), {k: -v for k, v in SCORES.items()},
                           {k: -v for k, v in RUNGS.items()}, {"tuned": 0.012}, True).thresholds
    assert [down.gold, down.silver, down.bronze, down.median] == pytest.approx([-up.gold, -up.silver, -up.bronze,
                                                                                 -up.median])


def test_paired_bootstrap_matches_the_binomial_formula_and_the_generic_path():
    rng = np.random.default_rng(0)
    n = 2000
    truth = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < 0.7, truth, 1 - truth)
    answers = pd.DataFrame({"id": range(n), "y": truth.astype(str)})
    sub = pd.DataFrame({"id": range(n)[::-1], "y": pred[::-1].astype(str)})
    ses = bootstrap_ses("accuracy", answers, {"s": sub}, ["y"], "id", resamples=500)
    assert ses["s"] == pytest.approx(np.sqrt(0.7 * 0.3 / n), rel=0.12)
    # The vectorized RMSE equals the per-resample metric function on the same resamples.
    y = rng.normal(0, 1, 300)
    ans = pd.DataFrame({"id": range(300), "v": y})
    guess = pd.DataFrame({"id": range(300), "v": y + rng.normal(0, 0.5, 300)})
    fast = bootstrap_ses("rmse", ans, {"g": guess}, ["v"], "id", resamples=500, seed=4)["g"]
    idx = np.random.default_rng(4).integers(0, 300, (500, 300))
    slow = np.std([get_metric("rmse").fn(y[i], guess["v"].to_numpy()[i]) for i in idx], ddof=1)
    assert fast == pytest.approx(slow, rel=1e-9)


@pytest.mark.parametrize("name", ["breast-cancer-binary", "wine-multiclass", "lite-nomad2018-predict-transparent-conductors",
                                  "descr-text-multiclass", "lite-mlsp-2013-birds", "co2-forecast",
                                  "lite-aptos2019-blindness-detection", "lite-tabular-playground-series-may-2022",
                                  "digits-image-binary", "lite-the-icml-2013-whale-challenge-right-whale-redux"])
def test_the_informed_rung_is_a_valid_submission_that_learns_the_derived_features(name):
    seed = select_seeds([name])[0]
    c = synthesize(seed, np.random.default_rng([22, 1]), 150, 600)
    sub = informed_submission(c)
    assert list(sub.columns) == [c.id_column, *c.target_columns] and len(sub) == len(c.test)
    lower = get_metric(seed.metric).lower_is_better
    informed = compute_score(seed.metric, c.answers, sub, c.target_columns, c.id_column)
    sample = compute_score(seed.metric, c.answers, c.sample_submission, c.target_columns, c.id_column)
    assert (informed < sample) if lower else (informed > sample)
    # The derived features are public-data signals, not the answers: the informed rung trails the oracle.
    oracle = compute_score(seed.metric, c.answers, c.oracle, c.target_columns, c.id_column)
    assert (informed >= oracle - 1e-9) if lower else (informed <= oracle + 0.01)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first user builds the session's set (~3 min on idle cores)
def test_the_generated_set_has_ordered_ladders_above_the_noise(generated_task_set):
    """On the session's fixed-seed task set: every accepted task's rungs climb (default < tuned <
    informed), its thresholds sit between them, every tier gap is at least 2.5 bootstrap SEs, and
    `sandmle tasks show` prints the ladder."""
    from click.testing import CliRunner

    from sandmle.core.cli import build_cli

    out, rows, _ = generated_task_set
    assert rows, "no accepted tasks"
    for meta in rows:
        d, th, lower = meta["difficulty"], meta["thresholds"], meta["lower_is_better"]
        s = -1 if lower else 1
        lad = {k: s * v for k, v in d["ladder"].items()}
        t = {k: s * v for k, v in th.items()}
        assert lad["default"] <= lad["tuned"] < lad["informed"], meta["id"]
        assert t["median"] < t["bronze"] < lad["tuned"] < t["silver"] < t["gold"] <= lad["informed"] + 1e-6, meta["id"]
        gaps = [t["gold"] - t["silver"], t["silver"] - t["bronze"]]
        gaps += [] if d.get("median_compressed") else [t["bronze"] - t["median"]]
        assert min(gaps) >= 2.5 * d["metric_se"] * (1 - 1e-6), meta["id"]
        assert set(d["ladder_se"]) == {"tuned", "informed"} and d["policy"]["min_gap_se"] == 2.5
        # SandMLE's micro budget on every family of the set: 50-200 rows in train.csv.
        n_train = len(pd.read_csv(out / meta["id"] / "prepared/public/train.csv"))
        assert 50 <= meta["provenance"]["n_train"] == n_train <= 200, (meta["id"], n_train)
    assert {m["layout"]["family"] for m in rows} == set(families()), "a family is missing from the set"
    res = CliRunner().invoke(build_cli(), ["tasks", "show", str(out / rows[0]["id"])])
    assert res.exit_code == 0 and "ladder" in res.output and "informed" in res.output, res.output


def test_tasks_show_prints_rungs_and_thresholds_in_one_order():
    from sandmle.generators.show import ladder_text

    th = {"gold": 0.885, "silver": 0.84, "bronze": 0.78, "median": 0.70}
    line = ladder_text({"ladder": RUNGS, "lower_is_better": False}, th)
    assert line.split(" < ")[0] == "default 0.7" and line.split(" < ")[-1] == "oracle 0.95"
    names = [part.split()[0] for part in line.split(" < ")]
    assert names.index("bronze") < names.index("tuned") < names.index("silver") < names.index("gold") \
        < names.index("informed")
    down = ladder_text({"ladder": {k: -v for k, v in RUNGS.items()}, "lower_is_better": True},
                       {k: -v for k, v in th.items()})
    assert [part.split()[0] for part in down.split(" < ")] == names  # worst first either way
    assert ladder_text({}, th) is None  # tasks from before the ladder
