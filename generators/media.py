"""Drawing images and synthesising sounds from per-item attributes (offline, deterministic).

Images: RGB scenes of procedurally drawn shapes, lines and optional digit glyphs (scikit-learn's
``digits``) over backgrounds cropped from scikit-learn's sample photographs (``china.jpg``,
``flower.jpg``) or smooth gradients, then pixel noise; encoded as PNG. Sounds: short mono clips
of "calls" (tones, up/down chirps, trills; each call type has its own frequency band) over
background noise, hum and clicks; encoded as 16-bit WAV. Every random choice comes from the
caller's ``numpy.random.Generator``.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Object colours (RGB); the first three are "warm", which one image attribute counts.
PALETTE = np.array([[220, 60, 40], [240, 150, 30], [230, 210, 50], [50, 160, 70], [40, 110, 220],
                    [140, 70, 200]], dtype=float)
WARM = 3
SHAPES = ("circle", "square", "triangle")
IMAGE_ATTRIBUTES = ("n_circle", "n_square", "n_triangle", "warm_share", "object_size",
                    "background_brightness", "n_lines", "line_orientation", "texture")
CHUNK = 1000  # items whose noise is drawn in one array
SAMPLE_RATE = 4000  # Hz: calls live in 150-1900 Hz, so 4 kHz keeps clips small
CLIP_SECONDS = 0.5


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images

    return tuple(np.asarray(img, dtype=np.uint8) for img in load_sample_images().images)


@lru_cache(maxsize=1)
def _glyphs() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images / 16.0, bunch.target


@dataclass
class SceneSpec:
    """Per-task drawing settings (the per-image content comes from the attributes)."""

    size: int = 32
    noise: float = 0.04
    texture_share: float = 0.5


def sample_image_attributes(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(n, 9) attributes in :data:`IMAGE_ATTRIBUTES` order."""
    counts = rng.poisson(rng.uniform(0.6, 2.0, 3), size=(n, 3)).clip(0, 4)
    return np.column_stack([
        counts, rng.uniform(0, 1, n), rng.uniform(size * 0.12, size * 0.3, n), rng.uniform(0.15, 0.85, n),
        rng.integers(0, 4, n), rng.uniform(0, np.pi, n), (rng.random(n) < 0.5).astype(float),
    ]).astype(float)


def render_images(rng: np.random.Generator, attrs: np.ndarray, spec: SceneSpec,
                  glyphs: list[int | None] | None = None) -> list[bytes]:
    """PNGs drawn from attribute rows (and digit glyph indices, where given)."""
    S, n = spec.size, len(attrs)
    yy, xx = np.mgrid[0:S, 0:S] + 0.5
    out: list[bytes] = []
    for i in range(n):
        if i % CHUNK == 0:  # pixel noise for a chunk of images at once (bounded memory at full scale)
            noise = rng.normal(0, 255 * spec.noise, (min(CHUNK, n - i), S, S, 3))
        a = attrs[i]
        img = _background(rng, S, float(a[5]), bool(a[8]), yy, xx)
        theta = float(a[7])
        for _ in range(int(a[6])):  # parallel lines at the image's orientation
            cx, cy = rng.uniform(0, S, 2)
            dist = np.abs((xx - cx) * np.sin(theta) - (yy - cy) * np.cos(theta))
            img[dist < 0.6] = rng.integers(0, 255, 3)
        shapes = [kind for kind, count in zip(SHAPES, a[:3].astype(int)) for _ in range(count)]
        warm = rng.permutation(len(shapes)) < int(round(float(a[3]) * len(shapes)))
        for kind, is_warm in zip(shapes, warm):
            colour = PALETTE[rng.integers(0, WARM) if is_warm else rng.integers(WARM, len(PALETTE))]
            r = float(a[4]) * rng.uniform(0.8, 1.2) / 2
            cx, cy = rng.uniform(r, S - r, 2)
            dx, dy = xx - cx, yy - cy
            if kind == "circle":
                mask = dx * dx + dy * dy <= r * r
            elif kind == "square":
                mask = (np.abs(dx) <= r) & (np.abs(dy) <= r)
            else:  # upward triangle: inside the two slanted edges and above the base
                mask = (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
            img[mask] = np.clip(colour + rng.normal(0, 12, 3), 0, 255)
        if glyphs is not None and glyphs[i] is not None:
            img = _stamp_glyph(rng, img, int(glyphs[i]))
        out.append(encode_png(np.clip(img + noise[i % CHUNK], 0, 255).astype(np.uint8)))
    return out


def encode_png(arr: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 array (8-bit RGB, no filter; zlib level 1)."""
    h, w, _ = arr.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), arr.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def _background(rng: np.random.Generator, S: int, brightness: float, textured: bool,
                yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    if textured:
        photo = _photos()[int(rng.integers(len(_photos())))]
        crop = int(rng.integers(S, 3 * S))
        y, x = rng.integers(0, photo.shape[0] - crop), rng.integers(0, photo.shape[1] - crop)
        patch = photo[y:y + crop, x:x + crop]
        idx = (np.arange(S) * crop // S)
        base = patch[idx][:, idx].astype(float)
        base = base - base.mean() + 255 * brightness
    else:
        tint = rng.uniform(0.7, 1.3, 3)
        angle = rng.uniform(0, 6.3)
        grad = (60 / S) * ((yy - S / 2) * np.cos(angle) + (xx - S / 2) * np.sin(angle))
        base = (255 * brightness + grad)[:, :, None] * tint[None, None, :]
    return np.clip(base, 0, 255)


def _stamp_glyph(rng: np.random.Generator, arr: np.ndarray, index: int) -> np.ndarray:
    images, _ = _glyphs()
    S = arr.shape[0]
    g = max(8, int(S * rng.uniform(0.75, 0.95)))
    glyph = images[index][(np.arange(g) * 8 // g)][:, (np.arange(g) * 8 // g)]
    y, x = rng.integers(0, S - g + 1, 2)
    colour = PALETTE[rng.integers(len(PALETTE))] * 0.45  # darker than the background
    region = arr[y:y + g, x:x + g]
    arr[y:y + g, x:x + g] = region * (1 - glyph[:, :, None]) + colour[None, None, :] * glyph[:, :, None]
    return arr


def glyph_digits() -> np.ndarray:
    """The digit (0-9) of every glyph index."""
    return _glyphs()[1]


# ----------------------------------------------------------------------------- sound
SWEEPS = ("up", "down")  # the call shapes whose time reversal is another shape (each other)

@dataclass
class CallType:
    """A call type ("species"): its band, shape and length."""

    freq: float
    shape: str  # tone | up | down | trill
    seconds: float

    @classmethod
    def sample(cls, rng: np.random.Generator, band: tuple[float, float] = (180, 1800)) -> "CallType":
        return cls(float(rng.uniform(*band)), str(rng.choice(["tone", "up", "down", "trill"])),
                   float(rng.uniform(0.06, 0.16)))


def render_clips(rng: np.random.Generator, clips: list[list[tuple[CallType, float]]], noise_levels: np.ndarray,
                 hum: np.ndarray) -> list[bytes]:
    """WAV clips, each holding its (call type, amplitude) calls over background noise."""
    out: list[bytes] = []
    for start in range(0, len(clips), CHUNK):
        end = start + CHUNK
        out += _render_clip_chunk(rng, clips[start:end], noise_levels[start:end], hum[start:end])
    return out


def _render_clip_chunk(rng: np.random.Generator, clips: list[list[tuple[CallType, float]]],
                       noise_levels: np.ndarray, hum: np.ndarray) -> list[bytes]:
    n, m_all = len(clips), int(SAMPLE_RATE * CLIP_SECONDS)
    t = np.arange(m_all) / SAMPLE_RATE
    walk = np.cumsum(rng.normal(0, 1, (n, m_all)), axis=1)  # brown-ish background: low-frequency "wind"
    kernel = np.ones(64) / 64
    smooth = np.apply_along_axis(lambda w: np.convolve(w, kernel, mode="same"), 1, walk)
    wind = walk - smooth
    wind /= wind.std(axis=1, keepdims=True) + 1e-9
    waves = noise_levels[:, None] * (wind + 0.5 * rng.normal(0, 1, (n, m_all)))
    mains = rng.choice([50.0, 60.0], n)
    waves += hum[:, None] * np.sin(2 * np.pi * mains[:, None] * t[None, :])
    out = []
    for i, calls in enumerate(clips):
        wave = waves[i]
        clicks = rng.integers(0, m_all, int(rng.poisson(3)))
        wave[clicks] += rng.normal(0, 3 * noise_levels[i] + 1e-3, len(clicks))
        for call, amp in calls:
            m = int(call.seconds * SAMPLE_RATE)
            start = int(rng.integers(0, m_all - m))
            tt = np.arange(m) / SAMPLE_RATE
            f = call.freq * {"tone": np.ones(m), "up": np.linspace(0.75, 1.3, m), "down": np.linspace(1.3, 0.75, m),
                             "trill": 1 + 0.08 * np.sign(np.sin(2 * np.pi * 40 * tt))}[call.shape]
            wave[start:start + m] += amp * np.sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE) * np.hanning(m)
        out.append(encode_wav(wave))
    return out


def encode_wav(wave: np.ndarray) -> bytes:
    """16-bit mono PCM WAV bytes of a float waveform (peak-normalised to 0.9)."""
    peak = float(np.abs(wave).max()) or 1.0
    data = (wave / peak * 0.9 * 32767).astype("<i2").tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16, 1, 1,
                         SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16, b"data", len(data))
    return header + data
