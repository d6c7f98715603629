"""File-based families: images (classification, regression, multi-label) and sound clips.

Images: every row gets drawn scene attributes (:data:`~sandmle.generators.media.IMAGE_ATTRIBUTES`),
rendered to ``train/<id>.png`` / ``test/<id>.png``; a hidden rule over a few quantities measured
back from those pixels (:mod:`.media_signals`: brightness, warm and object area, texture, lines,
shape counts) makes the target, so every signal the rule reads is in the files. The ``sklearn_digits`` source instead stamps a real digit
glyph into each scene and labels by a hidden regrouping of the digits. Sounds: each label is a
call type ("species") with its own band and shape; a clip holds the calls of its clean labels at
random but audible loudness, unlabelled distractor calls (one close to a labelled band), wind, hum and clicks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .media import SWEEPS, CallType, SceneSpec, glyph_digits, render_clips, render_images, sample_image_attributes
from .media_signals import call_matches_many, glyph_features, image_signals_many
from .rules import HiddenRule, draw, draw_int, noisy_labels, sample_labels, standardize
from .seeds import SeedTask
from .synth import NoiseConfig, Parts
from .synth_tabular import KIND, outputs_of, targets_for


def image_parts(seed: SeedTask, rng: np.random.Generator, n_train: int, n_test: int,
                noise: NoiseConfig) -> Parts:
    """Scenes drawn from attributes; the target follows a hidden rule over what the rendered
    pixels show (:func:`~.media_signals.image_signals`), or a regrouping of the digit glyphs."""
    n = n_train + n_test
    size = draw_int(rng, seed.image_size)
    spec = SceneSpec(size=size, noise=draw(rng, (0.02, 0.07)))
    attrs = sample_image_attributes(rng, n, size)
    glyphs: list | None = None
    if seed.source == "sklearn_digits":
        K, targets, core, glyphs = _digit_targets(seed, rng, n, noise)
        attrs[:, :3] = rng.poisson(0.3, (n, 3))  # less clutter: the glyph is the subject
        attrs[:, 6] = np.minimum(attrs[:, 6], 1)
        attrs[:, 8] = 0  # plain, bright backgrounds under a darker glyph
        attrs[:, 5] = rng.uniform(0.6, 0.85, n)
        media = render_images(rng, attrs, spec, [int(g) for g in glyphs])
        # The informed rung's features, measured from the shipped pixels: the located glyph and its
        # likeness to each digit's mean glyph (what a digit recogniser reads).
        derived = np.array([glyph_features(m) for m in media])
    else:
        K, outputs = outputs_of(seed, rng)
        media = render_images(rng, attrs, spec)
        # The rule reads what the pixels show, measured from the shipped files (brightness, warm and
        # object area, texture, lines, shape counts): overlaps, noise and clutter can hide a drawn
        # attribute, so a rule over the drawn attributes would put gold beyond any honest solution.
        inputs = standardize(image_signals_many(media))
        # Two inputs colour statistics can see, often one that needs shape- or texture-aware features.
        relevant = [int(i) for i in rng.choice(VISIBLE, 2, replace=False)]
        if rng.random() < 0.6:
            relevant.append(int(rng.integers(VISIBLE, inputs.shape[1])))
        rule = HiddenRule.sample(rng, inputs.shape[1], outputs, relevant=relevant,
                                 transforms=("linear", "tanh", "step"), interaction=False)
        # One visible input reads monotonically and weighs most, so colour statistics find a signal;
        # the shape/texture input adds headroom without hiding it.
        rule.transforms[0] = str(rng.choice(["linear", "tanh"]))
        rule.weights[0] = np.sign(rule.weights[0]) * 1.3 * np.abs(rule.weights).max(axis=0)
        rule.weights[2:] *= 0.6
        targets = targets_for(seed, rng, rule.scores(inputs), noise, signal=1.5, n_classes=K)
        core = {**rule.describe(), "inputs": RULE_INPUTS}
        derived = rule.basis(inputs)  # the rule's inputs through its transforms
    return Parts(X=pd.DataFrame(index=range(n)), targets=targets, rule={"core": core, **targets.info},
                 n_train=n_train, n_outputs=K, media=media, media_ext="png",
                 media_note=f"{size}x{size} RGB PNG images", pitfalls=list(seed.pitfalls), derived=derived)


RULE_INPUTS = ["background_brightness", "warm_area", "object_area", "texture", "n_lines",
               "n_circle", "n_square", "n_triangle", "line_orientation"]
VISIBLE = 3  # the first three show in colour statistics; the rest need shape- or texture-aware features


def _digit_targets(seed: SeedTask, rng: np.random.Generator, n: int, noise: NoiseConfig):
    digits = glyph_digits()
    kind = KIND[seed.task_type]
    K = 2 if kind == "binary" else draw_int(rng, seed.n_classes)
    perm = rng.permutation(10)
    if K == 2:
        group_of = np.isin(np.arange(10), perm[: int(rng.integers(2, 5))]).astype(int)
        pos = rng.random(n) < draw(rng, seed.minority_share)
        pool = [np.flatnonzero(group_of[digits] == g) for g in (0, 1)]
        glyphs = np.where(pos, rng.choice(pool[1], n), rng.choice(pool[0], n))
    else:
        group_of = np.zeros(10, int)
        for g, members in enumerate(np.array_split(perm, K)):
            group_of[members] = g
        glyphs = rng.integers(0, len(digits), n)
    y_clean = group_of[digits[glyphs]]
    targets = noisy_labels(kind, rng, y_clean, K, draw(rng, noise.label_noise))
    return K, targets, {"digit_groups": group_of.tolist()}, glyphs


def audio_parts(seed: SeedTask, rng: np.random.Generator, n_train: int, n_test: int,
                noise: NoiseConfig) -> Parts:
    """Clips holding the calls of their clean labels; call detection or multi-label presence."""
    n = n_train + n_test
    kind = KIND[seed.task_type]
    K = 1 if kind == "binary" else draw_int(rng, seed.n_classes)
    # Each call type has a band of its own (one slot of a log-spaced 180-1800 Hz range, in random
    # order): real species differ in pitch, and a detector can then tell labelled calls apart.
    edges = np.geomspace(180, 1800, K + 1)
    species = [CallType.sample(rng, (edges[k], edges[k + 1] / 1.1)) for k in rng.permutation(K)]
    # Unlabelled "twins": a labelled call played backwards (the right-whale up-call against a
    # down-sweep in its band). A twin has its call's magnitude spectrum exactly, so no whole-clip
    # spectrum tells them apart, while a detector of the call's time-frequency shape does. A call
    # with a twin is a sweep (a tone or a trill played backwards is itself); the first species
    # always has one, the others in 60% of tasks, and a twin sounds in half the clips.
    twinned = [k == 0 or rng.random() < 0.6 for k in range(K)]
    for k, sp in enumerate(species):
        if twinned[k] and sp.shape not in SWEEPS:
            sp.shape = str(rng.choice(SWEEPS))
    distractors = [CallType(sp.freq, SWEEPS[1 - SWEEPS.index(sp.shape)], sp.seconds)
                   for k, sp in enumerate(species) if twinned[k]]
    n_twins = len(distractors)
    distractors += [CallType.sample(rng) for _ in range(draw_int(rng, (0, 2)))]
    y_clean = sample_labels(kind, rng, n, K, seed.minority_share)
    labels = y_clean.reshape(n, -1)
    levels = draw(rng, (0.15, 0.4)) * rng.uniform(0.6, 1.5, n)
    clip_calls = []
    for row in range(n):
        calls = []
        for k in range(K):
            if labels[row, k]:
                # A labelled call stands out of the noise (a detector on the file can hear it).
                calls.append((species[k], levels[row] * rng.uniform(0.5, 3.0)))
        calls += [(d, levels[row] * rng.uniform(0.3, 3.0)) for j, d in enumerate(distractors)
                  if rng.random() < (0.5 if j < n_twins else 0.35)]
        clip_calls.append(calls)
    media = render_clips(rng, clip_calls, levels, hum=levels * rng.uniform(0, 0.6, n))
    targets = noisy_labels(kind, rng, y_clean, 2 if kind == "binary" else K, draw(rng, noise.label_noise))
    core = {"calls": [vars(s) for s in species], "distractors": [vars(d) for d in distractors]}
    return Parts(X=pd.DataFrame(index=range(n)), targets=targets, rule={"core": core, **targets.info},
                 n_train=n_train, n_outputs=2 if kind == "binary" else K, media=media, media_ext="wav",
                 media_note="0.5 s mono 16-bit WAV clips at 4 kHz",
                 # each species' best match in the clip, measured from the file (wind, hum, clicks and
                 # same-band distractors included, as any detector on the file would see them)
                 derived=call_matches_many(media, species + distractors))
