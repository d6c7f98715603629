"""The generator's fast paths give the numbers of the slow paths they replace, to the bit.

Generation must stay reproducible: the same seed gives byte-identical task folders, thresholds
included, before and after a speed-up (issue 24). Each fast path is checked here against the
straightforward computation it replaced, kept in this file as the reference: the AUC bootstrap
(all resamples ranked at once instead of one ``rankdata`` call per resample and column) and the
call detectors (a task's matched filters computed once instead of once per clip).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sandmle.generators.calibration import _column_auc, bootstrap_se
from sandmle.generators.ladder import bootstrap_ses
from sandmle.generators.media import SAMPLE_RATE, CallType, render_clips
from sandmle.generators.media_signals import call_matches, decode_wav


def _loop_se(t: np.ndarray, p: np.ndarray, rows) -> float:
    """The per-resample loop the ladder and the calibrated policy ran before (the reference)."""
    values = []
    for idx in rows:
        try:
            v = _column_auc(t[idx], p[idx])
        except (ValueError, IndexError):
            continue
        if np.isfinite(v):
            values.append(v)
    return float(np.std(values, ddof=1)) if len(values) >= 5 else float("inf")


def _auc_case(rng: np.random.Generator, n: int, k: int, positive_share: float, nan: bool = False):
    truth = (rng.random((n, k)) < positive_share).astype(int)
    # Coarse probabilities: many ties, which average ranks must handle as the loop did.
    proba = np.round(np.clip(0.3 * truth + rng.random((n, k)) * 0.7, 0, 1), 2)
    if nan:
        proba[3, 0] = np.nan
    cols = [f"c{j}" for j in range(k)]
    answers = pd.DataFrame({"id": np.arange(n), **{c: truth[:, j] for j, c in enumerate(cols)}})
    order = rng.permutation(n)  # the submission's rows in another order: matched by id
    sub = pd.DataFrame({"id": np.arange(n)[order], **{c: proba[order, j] for j, c in enumerate(cols)}})
    return answers, sub, cols, truth, proba


@pytest.mark.parametrize("n,k,share,nan", [(400, 1, 0.3, False), (300, 3, 0.2, False), (250, 9, 0.4, False),
                                           (40, 2, 0.06, False), (200, 1, 0.5, True)],
                         ids=["one-column", "three-columns", "nine-columns", "rare-positives", "a-nan"])
def test_the_vectorized_auc_bootstrap_is_the_per_resample_loop_to_the_bit(n, k, share, nan):
    answers, sub, cols, truth, proba = _auc_case(np.random.default_rng([7, n, k]), n, k, share, nan)
    metric = "roc_auc" if k == 1 else "mean_column_auc"
    # The ladder's paired bootstrap: one index matrix from its seed.
    got = bootstrap_ses(metric, answers, {"s": sub, "t": answers.assign(**{c: proba[:, j] * 0.5
                                                                        for j, c in enumerate(cols)})},
                        cols, "id", resamples=300, seed=5)
    idx = np.random.default_rng(5).integers(0, n, (300, n))
    assert got["s"] == _loop_se(truth, proba, idx)
    assert got["t"] == _loop_se(truth, proba * 0.5, idx)
    # The calibrated policy's bootstrap: one draw per resample from its seed.
    rng = np.random.default_rng(2)
    rows = [rng.integers(0, n, n) for _ in range(300)]
    assert bootstrap_se(metric, answers, sub, cols, "id", 300, seed=2) == _loop_se(truth, proba, rows)
    if share < 0.1:  # some resamples hold no positive in a column: skipped, as the loop skips them
        assert any(truth[i].sum(axis=0).min() == 0 for i in idx)
    if nan:  # a NaN prediction makes its resamples' AUC NaN, which neither path counts
        assert np.isfinite(got["s"])


def test_a_submission_that_is_not_numeric_still_gets_no_se():
    answers = pd.DataFrame({"id": range(50), "y": [0, 1] * 25})
    sub = pd.DataFrame({"id": range(50), "y": ["high", "low"] * 25})
    assert bootstrap_ses("roc_auc", answers, {"s": sub}, ["y"], "id", resamples=50)["s"] == float("inf")


def _direct_call_matches(data: bytes, calls: list) -> np.ndarray:
    """The detectors as computed before the filters were shared: every filter built per clip."""
    wave = decode_wav(data)
    n = len(wave)
    spectrum = np.fft.fft(wave, 2 * n)
    out = []
    for call in calls:
        m = int(call.seconds * SAMPLE_RATE)
        tt = np.arange(m) / SAMPLE_RATE
        f = call.freq * {"tone": np.ones(m), "up": np.linspace(0.75, 1.3, m), "down": np.linspace(1.3, 0.75, m),
                         "trill": 1 + 0.08 * np.sign(np.sin(2 * np.pi * 40 * tt))}[call.shape]
        template = np.exp(2j * np.pi * np.cumsum(f) / SAMPLE_RATE) * np.hanning(m)
        template /= np.linalg.norm(template)
        response = np.abs(np.fft.ifft(spectrum * np.conj(np.fft.fft(template, 2 * n))))[: n - m]
        out.append(np.log((response.max() + 1e-12) / (np.median(response) + 1e-12)))
    return np.array(out)


def test_shared_matched_filters_give_the_per_clip_detectors_to_the_bit():
    rng = np.random.default_rng(11)
    calls = [CallType(440.0, "up", 0.1), CallType(900.0, "trill", 0.07), CallType(300.0, "tone", 0.12),
             CallType(1500.0, "down", 0.15)]
    clips = render_clips(rng, [[(calls[i % 4], 1.0)] for i in range(6)], np.full(6, 0.2), np.zeros(6))
    for task_calls in (calls, calls[::-1], calls[:2]):  # several tasks in one process share the cache
        for clip in clips:
            assert np.array_equal(call_matches(clip, task_calls), _direct_call_matches(clip, task_calls))


def test_batched_call_detectors_are_the_per_clip_detectors_row_by_row():
    from sandmle.generators.media_signals import call_matches_many

    rng = np.random.default_rng(12)
    calls = [CallType(520.0, "down", 0.09), CallType(1200.0, "up", 0.13), CallType(250.0, "trill", 0.1)]
    clips = render_clips(rng, [[(calls[i % 3], rng.uniform(0.5, 2))] for i in range(23)], np.full(23, 0.3),
                         np.full(23, 0.05))
    batched = call_matches_many(clips, calls, chunk=5)  # several batches, the last one short
    assert batched.shape == (23, 3)
    assert np.array_equal(batched, np.array([_direct_call_matches(c, calls) for c in clips]))


@pytest.mark.parametrize("size", [32, 45])
def test_stacked_scene_measurements_are_the_per_scene_measurements_to_the_bit(size):
    from sandmle.generators.media import SceneSpec, render_images, sample_image_attributes
    from sandmle.generators.media_signals import image_signals, image_signals_many

    rng = np.random.default_rng([13, size])
    scenes = render_images(rng, sample_image_attributes(rng, 37, size), SceneSpec(size=size, noise=0.05))
    stacked = image_signals_many(scenes, chunk=16)  # three stacks, the last one short
    one_by_one = np.array([image_signals(s) for s in scenes])
    assert stacked.shape == (37, 9) and np.array_equal(stacked, one_by_one)
    assert one_by_one[:, 4].max() > 0 and one_by_one[:, 5:8].sum() > 0  # lines and shapes were measured
