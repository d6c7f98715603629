"""The ladder's informed rung stands where an honest solution can stand: on the public files.

Image and sound tasks used to place their informed rung (and so silver and gold) on the scene
attributes the generator drew (exact shape counts, a call's loudness), which overlaps, noise and
same-band distractors hide from anyone holding only the files. Now the image rules read
quantities measured back from the shipped pixels, and the informed rung of every media task is
computed from the shipped bytes (``generators/media_signals.py``). These tests recompute it from
the public files alone and check that the measurements track what was drawn.
"""

from __future__ import annotations

import numpy as np
import pytest

from sandmle.generators.configs import NoiseConfig
from sandmle.generators.media import SceneSpec, render_images, sample_image_attributes
from sandmle.generators.media_signals import (call_matches, decode_png, glyph_features, image_signals)
from sandmle.generators.rules import HiddenRule, standardize
from sandmle.generators.seeds import select_seeds
from sandmle.generators.synth import synthesize
from sandmle.generators.synth_media import RULE_INPUTS
from sandmle.generators.media import CallType


def _public_media(c, split_ids, ext):
    return [c.files[f"{split}/{i}.{ext}"] for split, ids in split_ids for i in ids]


def test_decoding_returns_the_pixels_that_were_encoded():
    from sandmle.generators.media import encode_png

    arr = np.random.default_rng(0).integers(0, 256, (7, 5, 3)).astype(np.uint8)
    assert np.array_equal(decode_png(encode_png(arr)), arr)


def test_measured_image_signals_track_the_drawn_scene():
    rng = np.random.default_rng(5)
    attrs = sample_image_attributes(rng, 300, 40)
    images = render_images(rng, attrs, SceneSpec(size=40, noise=0.04))
    m = np.array([image_signals(b) for b in images])
    assert m.shape == (300, len(RULE_INPUTS))
    corr = lambda a, b: np.corrcoef(a, b)[0, 1]  # noqa: E731
    area = attrs[:, :3].sum(1) * attrs[:, 4] ** 2
    assert corr(m[:, 0], attrs[:, 5]) > 0.9  # background brightness
    assert corr(m[:, 2], area) > 0.7  # object area
    assert corr(m[:, 1], attrs[:, 3] * area) > 0.6  # warm area
    assert corr(m[:, 3], attrs[:, 8]) > 0.4  # photographed (textured) background or a gradient
    # Thin lines of random colours are the weakest measurement (a photographed background has edges
    # too), but images with lines still show more line pixels.
    assert m[attrs[:, 6] > 0, 4].mean() > m[attrs[:, 6] == 0, 4].mean()
    # Measured, not copied: overlaps and clutter leave the counts imperfect.
    assert 0.3 < corr(m[:, 5:8].sum(1), attrs[:, :3].sum(1)) < 0.999


@pytest.mark.parametrize("name", ["lite-aptos2019-blindness-detection", "lite-plant-pathology-2020-fgvc7"])
def test_image_rules_and_the_informed_rung_read_only_the_shipped_pixels(name):
    seed = select_seeds([name])[0]
    c = synthesize(seed, np.random.default_rng([23, 1]), 80, 120, NoiseConfig())
    files = _public_media(c, [("train", c.train["id"]), ("test", c.test["id"])], "png")
    measured = standardize(np.array([image_signals(b) for b in files]))
    core = c.rule["core"]
    rule = HiddenRule(core["relevant"], core["transforms"], np.array(core["weights"]), np.array(core["cuts"]),
                      core["interaction"])
    derived = np.vstack([c.derived_train, c.derived_test])
    assert np.allclose(rule.basis(measured), derived, atol=1e-6)


def test_digit_glyph_features_are_measured_from_the_files_and_name_the_digit():
    seed = select_seeds(["digits-image-multiclass"])[0]
    c = synthesize(seed, np.random.default_rng([23, 2]), 80, 200, NoiseConfig())
    files = _public_media(c, [("test", c.test["id"])], "png")
    assert np.allclose(np.array([glyph_features(b) for b in files]), c.derived_test)
    # The template likeness alone points at the glyph's digit group far above chance.
    groups = np.array(c.rule["core"]["digit_groups"])
    guess = groups[c.derived_test[:, 64:].argmax(1)]
    truth = c.answers["label"].map({name: k for k, name in enumerate(c.class_names)}).to_numpy()
    assert np.mean(guess == truth) > 1.5 / len(c.class_names)


def test_call_detectors_are_measured_from_the_clips_and_hear_the_labelled_calls():
    seed = select_seeds(["lite-the-icml-2013-whale-challenge-right-whale-redux"])[0]
    c = synthesize(seed, np.random.default_rng([23, 3]), 80, 300, NoiseConfig())
    core = c.rule["core"]
    calls = [CallType(**x) for x in core["calls"] + core["distractors"]]
    files = _public_media(c, [("test", c.test["id"])], "wav")
    measured = np.array([call_matches(b, calls) for b in files])
    assert np.allclose(measured, c.derived_test)
    present = c.answers[c.target_columns[0]].to_numpy() == 1
    assert measured[present, 0].mean() > measured[~present, 0].mean() + 0.5


def test_series_forecast_two_weeks_at_most_and_half_the_history():
    for name in ("co2-forecast", "sunspots-forecast", "macro-forecast"):
        seed = select_seeds([name])[0]
        for i in range(3):
            c = synthesize(seed, np.random.default_rng([24, i]), 150, 1500, NoiseConfig())
            history, horizon = c.train["date"].nunique(), c.test["date"].nunique()
            assert 7 <= horizon <= min(14, history // 2), (name, i, history, horizon)
            assert c.test["series"].nunique() >= 8 and len(c.test) >= 8 * 7
