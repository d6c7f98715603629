"""The signals of image and sound tasks as measured from the public files themselves.

The ladder's ``informed`` rung (:mod:`.ladder`) must stand where an honest solution can stand:
on what the shipped pixels and waveforms show, not on the scene attributes the generator drew
(an image's exact shape counts hide under overlaps; a call's loudness under wind and a
same-band distractor). These functions measure, from the PNG and WAV bytes a task ships, the
quantities the hidden rules read: background brightness, warm and object area, texture, thin
lines and their orientation, shape counts by fill ratio, a digit glyph located and normalised,
and each call type's peak power in its band. A careful solution can compute the same from the
files; the generator reads only which of them the rule uses.
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache

import numpy as np

from .media import PALETTE, SAMPLE_RATE, WARM


def decode_png(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 pixels of an 8-bit RGB PNG (the generator's own unfiltered encoding is read
    directly; any other PNG through Pillow)."""
    w, h, depth, colour = struct.unpack(">IIBB", data[16:26])
    if depth == 8 and colour == 2:
        chunks, pos = [], 8
        while pos < len(data):
            (length,), tag = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
            if tag == b"IDAT":
                chunks.append(data[pos + 8:pos + 8 + length])
            pos += 12 + length
        raw = np.frombuffer(zlib.decompress(b"".join(chunks)), np.uint8).reshape(h, 1 + 3 * w)
        if not raw[:, 0].any():  # filter type 0 on every row: the bytes are the pixels
            return raw[:, 1:].reshape(h, w, 3)
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _palette_masks(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels close to an object colour (any, warm): within 60 of a palette colour."""
    # Squared distances, compared with 60 squared: pixels and palette are whole numbers, so the
    # squares are exact integers and the test and the nearest colour are those of the distances.
    d2 = ((img[..., None, :] - PALETTE) ** 2).sum(axis=-1)  # (..., H, W, colours)
    near = d2.min(axis=-1) < 60 ** 2
    return near, near & (d2.argmin(axis=-1) < WARM)


def image_signals(data: bytes) -> np.ndarray:
    """Measured rule inputs of one scene, in :data:`~.synth_media.RULE_INPUTS` order: background
    brightness, warm area, object area, texture, line pixels, circles, squares, triangles, and the
    lines' orientation as cos(2 theta)."""
    from scipy import ndimage

    img = decode_png(data).astype(float)
    S = img.shape[0]
    grey = img.mean(axis=2)
    objects, warm = _palette_masks(img)
    objects = ndimage.binary_opening(objects)  # single noisy pixels are no objects
    warm &= objects
    around = ndimage.binary_dilation(objects, iterations=1)
    background = ~around if (~around).any() else np.ones_like(around)
    brightness = float(np.median(grey[background])) / 255
    smooth = ndimage.gaussian_filter(grey, 1.0)
    texture = float(np.std((smooth - ndimage.gaussian_filter(grey, 3.0))[background]))
    residual = grey - ndimage.median_filter(grey, 5)
    lines = (np.abs(residual) > 35) & background
    n_line_px = float(lines.sum()) / S
    gy, gx = np.gradient(ndimage.gaussian_filter(np.abs(residual) * background, 0.7))
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    norm = np.hypot(jxx - jyy, 2 * jxy)
    orientation = float(-(jxx - jyy) / norm) if norm > 0 and n_line_px > 0.5 else 0.0
    return np.array([brightness, warm.sum() / S ** 2, objects.sum() / S ** 2, texture, n_line_px,
                     *_shape_counts(objects), orientation])


def image_signals_many(files: list[bytes], chunk: int = 64) -> np.ndarray:
    """:func:`image_signals` of every scene (files, 9), the filters run on ``chunk`` scenes at
    once (a stack filtered along its two image axes only: the same numbers, scene by scene, for
    a fraction of the per-call overhead of hundreds of small images). Scenes of unequal size are
    measured one by one."""
    from scipy import ndimage

    images = [decode_png(data) for data in files]
    if any(im.shape != images[0].shape for im in images):
        return np.array([image_signals(data) for data in files])
    cross = ndimage.generate_binary_structure(2, 1)[None]  # 2-D connectivity, nothing across scenes
    rows = []
    for start in range(0, len(images), chunk):
        img = np.stack(images[start:start + chunk]).astype(float)
        S = img.shape[1]
        grey = img.mean(axis=3)
        objects, warm = _palette_masks(img)
        objects = ndimage.binary_opening(objects, structure=cross)
        warm &= objects
        around = ndimage.binary_dilation(objects, structure=cross, iterations=1)
        background = np.stack([~a if (~a).any() else np.ones_like(a) for a in around])
        smooth = ndimage.gaussian_filter(grey, 1.0, axes=(1, 2))
        detail = smooth - ndimage.gaussian_filter(grey, 3.0, axes=(1, 2))
        residual = grey - ndimage.median_filter(grey, size=(1, 5, 5))
        lines = (np.abs(residual) > 35) & background
        gy, gx = np.gradient(ndimage.gaussian_filter(np.abs(residual) * background, 0.7, axes=(1, 2)), axis=(1, 2))
        for i in range(len(img)):
            bg = background[i]
            n_line_px = float(lines[i].sum()) / S
            gxi, gyi = gx[i], gy[i]
            jxx, jyy, jxy = (gxi * gxi).sum(), (gyi * gyi).sum(), (gxi * gyi).sum()
            norm = np.hypot(jxx - jyy, 2 * jxy)
            orientation = float(-(jxx - jyy) / norm) if norm > 0 and n_line_px > 0.5 else 0.0
            rows.append([float(np.median(grey[i][bg])) / 255, warm[i].sum() / S ** 2, objects[i].sum() / S ** 2,
                         float(np.std(detail[i][bg])), n_line_px, *_shape_counts(objects[i]), orientation])
    return np.array(rows, dtype=float).reshape(len(images), -1)


def _shape_counts(objects: np.ndarray) -> np.ndarray:
    """Circles, squares and triangles among a scene's object regions, told apart by fill ratio."""
    from scipy import ndimage

    counts = np.zeros(3)
    labels, _ = ndimage.label(objects)
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        comp = labels[sl] == k
        area = comp.sum()
        if area < 6:
            continue
        fill = area / comp.size
        counts[0 if 0.68 <= fill < 0.9 else 1 if fill >= 0.9 else 2] += 1  # circle, square, triangle
    return counts


def glyph_thumbnail(data: bytes, size: int = 8) -> np.ndarray:
    """The dark glyph of a scene, cropped to its bounding box and averaged down to ``size`` x
    ``size`` (position and scale removed: what a digit classifier wants)."""
    from scipy import ndimage

    img = decode_png(data).astype(float)
    grey = img.mean(axis=2)
    dark = np.clip(np.median(grey) - grey, 0, None)
    mask = dark > 0.5 * (dark.max() or 1.0)  # the glyph is far darker than shapes and lines
    labels, n = ndimage.label(ndimage.binary_dilation(mask, iterations=2))
    if n > 1:  # the glyph is the largest dark region
        mask &= labels == 1 + int(np.argmax(ndimage.sum(mask, labels, range(1, n + 1))))
    ys, xs = np.nonzero(mask)
    if len(ys) < 4:
        return np.zeros(size * size)
    crop = dark[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = crop.shape
    crop = ndimage.gaussian_filter(crop, (max(0.0, h / size / 2 - 0.3), max(0.0, w / size / 2 - 0.3)))
    out = ndimage.zoom(crop, (size / h, size / w), order=1, grid_mode=True, mode="nearest")[:size, :size]
    return (out / (out.max() or 1.0)).ravel()


@lru_cache(maxsize=1)
def _digit_templates(size: int = 8) -> np.ndarray:
    """The mean glyph of each digit in scikit-learn's ``digits`` (the glyphs the scenes stamp),
    cropped and scaled as :func:`glyph_thumbnail` does, unit length (10, size * size)."""
    from scipy import ndimage

    from .media import _glyphs

    images, digits = _glyphs()
    out = []
    for d in range(10):
        mean = images[digits == d].mean(axis=0)
        ys, xs = np.nonzero(mean > 0.25 * mean.max())
        crop = mean[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        t = ndimage.zoom(crop, (size / crop.shape[0], size / crop.shape[1]), order=1, grid_mode=True,
                         mode="nearest")[:size, :size].ravel()
        t = t - t.mean()
        out.append(t / (np.linalg.norm(t) or 1.0))
    return np.array(out)


def glyph_features(data: bytes) -> np.ndarray:
    """The located glyph (8 x 8) and its correlation with each digit's mean glyph."""
    thumb = glyph_thumbnail(data)
    centred = thumb - thumb.mean()
    return np.r_[thumb, _digit_templates() @ (centred / (np.linalg.norm(centred) or 1.0))]


def decode_wav(data: bytes) -> np.ndarray:
    """The float waveform of a 16-bit mono PCM WAV (the generator's own encoding)."""
    start = data.index(b"data") + 8
    return np.frombuffer(data[start:], "<i2").astype(float) / 32768


def band_peaks(data: bytes, bands: list[tuple[float, float]]) -> np.ndarray:
    """Each band's peak log power over time in a short-time spectrum of the clip, against the
    clip's median power in that band (how loud a call in the band stands over the background)."""
    from scipy.signal import stft

    freqs, _, z = stft(decode_wav(data), fs=SAMPLE_RATE, nperseg=128)
    power = np.abs(z) ** 2
    out = []
    for lo, hi in bands:
        rows = (freqs >= lo) & (freqs <= hi)
        band = power[rows].sum(axis=0) if rows.any() else power.sum(axis=0)
        out.append(np.log((band.max() + 1e-12) / (np.median(band) + 1e-12)))
    return np.array(out)


def call_matches(data: bytes, calls: list) -> np.ndarray:
    """Each call type's best match in the clip: the peak of a matched filter (the call's own
    sweep, any phase) over the clip, against the filter's median response (log ratio). What a
    detector that learned the call's time-frequency shape finds; a same-band call of another
    shape matches it poorly."""
    wave = decode_wav(data)
    n = len(wave)
    spectrum = np.fft.fft(wave, 2 * n)
    out = []
    for m, filt in _matched_filters(tuple((c.freq, c.shape, c.seconds) for c in calls), n):
        response = np.abs(np.fft.ifft(spectrum * filt))[: n - m]
        out.append(np.log((response.max() + 1e-12) / (np.median(response) + 1e-12)))
    return np.array(out)


def call_matches_many(files: list[bytes], calls: list, chunk: int = 128) -> np.ndarray:
    """:func:`call_matches` of every clip (files, calls): the clips' transforms in batches of
    ``chunk`` (one FFT call per batch and filter instead of one per clip and filter; the same
    numbers, row by row). Clips of unequal length are measured one by one."""
    waves = [decode_wav(data) for data in files]
    n = len(waves[0]) if waves else 0
    if any(len(w) != n for w in waves):
        return np.array([call_matches(data, calls) for data in files])
    filters = _matched_filters(tuple((c.freq, c.shape, c.seconds) for c in calls), n)
    out = np.empty((len(waves), len(filters)))
    for start in range(0, len(waves), chunk):
        spectra = np.fft.fft(np.stack(waves[start:start + chunk]), 2 * n, axis=-1)
        for k, (m, filt) in enumerate(filters):
            response = np.abs(np.fft.ifft(spectra * filt, axis=-1))[:, : n - m]
            out[start:start + chunk, k] = np.log((response.max(axis=1) + 1e-12)
                                                 / (np.median(response, axis=1) + 1e-12))
    return out


@lru_cache(maxsize=4)
def _matched_filters(calls: tuple[tuple[float, str, float], ...], n: int) -> tuple[tuple[int, np.ndarray], ...]:
    """(length, conjugate spectrum) of each call's unit template for clips of ``n`` samples: the
    same for every clip of a task, so a task's hundreds of clips share one computation."""
    out = []
    for freq, shape, seconds in calls:
        m = int(seconds * SAMPLE_RATE)
        tt = np.arange(m) / SAMPLE_RATE
        f = freq * {"tone": np.ones(m), "up": np.linspace(0.75, 1.3, m), "down": np.linspace(1.3, 0.75, m),
                    "trill": 1 + 0.08 * np.sign(np.sin(2 * np.pi * 40 * tt))}[shape]
        template = np.exp(2j * np.pi * np.cumsum(f) / SAMPLE_RATE) * np.hanning(m)
        template /= np.linalg.norm(template)
        filt = np.conj(np.fft.fft(template, 2 * n))
        filt.flags.writeable = False
        out.append((m, filt))
    return tuple(out)


def band_means(data: bytes, bands: int = 32) -> np.ndarray:
    """The clip's whole-clip spectrum in ``bands`` equal bands (log mean magnitude): the standard
    view the informed rung keeps next to its call detectors."""
    spec = np.abs(np.fft.rfft(decode_wav(data)))
    return np.log1p([b.mean() for b in np.array_split(spec, bands)])
