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
    """Pixels close to an object colour (any, warm)."""
    d = np.linalg.norm(img[:, :, None, :] - PALETTE[None, None, :, :], axis=-1)
    near = d.min(axis=-1) < 60
    return near, near & (d.argmin(axis=-1) < WARM)


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
    counts = np.zeros(3)
    labels, _ = ndimage.label(objects)
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        comp = labels[sl] == k
        area = comp.sum()
        if area < 6:
            continue
        fill = area / comp.size
        counts[0 if 0.68 <= fill < 0.9 else 1 if fill >= 0.9 else 2] += 1  # circle, square, triangle
    return np.array([brightness, warm.sum() / S ** 2, objects.sum() / S ** 2, texture, n_line_px,
                     *counts, orientation])


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
