"""Technical quality and a classical aesthetic score, measured on a clip's analysis samples.

All measures are resolution-independent so thresholds mean the same for 256p and 4K sources:
sharpness is the Laplacian variance at a fixed analysis size (256 px on the longer side),
brightness and contrast are on a 0..1 scale, noise is the standard deviation of the Immerkaer high-pass residual (0..255 units).

Shape legend: T frames, H height, W width.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import cv2
import numpy as np

from kinema.data.frames import laplacian_variance

_ANALYSIS_SIDE = 256

# Named reference colors for `dominant_colors` (RGB); names a captioner can use directly.
COLOR_NAMES: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "white": (245, 245, 245),
    "red": (200, 30, 30),
    "orange": (240, 140, 20),
    "yellow": (235, 220, 40),
    "green": (40, 160, 50),
    "teal": (30, 140, 140),
    "blue": (30, 70, 200),
    "purple": (130, 50, 170),
    "pink": (240, 140, 180),
    "brown": (120, 75, 40),
    "beige": (215, 195, 160),
    "navy": (20, 30, 90),
    "olive": (110, 120, 40),
    "sky blue": (120, 180, 235),
}


@dataclass(frozen=True)
class Quality:
    """Technical measurements of a clip (means over its samples)."""

    sharpness: float
    brightness: float
    contrast: float
    noise: float
    underexposed: float  # fraction of pixels below 16/255
    overexposed: float  # fraction of pixels above 239/255
    colorfulness: float  # Hasler & Suesstrunk (2003) metric, 0..~150
    aesthetic: float  # classical score in [0, 1]; see `classical_aesthetic`


def _small(frame: np.ndarray) -> np.ndarray:
    """The frame at the analysis size: longer side `_ANALYSIS_SIDE` (area filter when shrinking)."""
    h, w = frame.shape[:2]
    if max(h, w) == _ANALYSIS_SIDE:
        return frame
    factor = _ANALYSIS_SIDE / max(h, w)
    size = (max(2, round(w * factor)), max(2, round(h * factor)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


def noise_sigma(gray: np.ndarray) -> float:
    """Immerkaer (1996) fast noise estimate: std of a Laplacian-difference residual, 0..255 units."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    residual = cv2.filter2D(gray.astype(np.float32), -1, kernel)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(residual).mean() / 6.0)


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colorfulness of an RGB image."""
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def classical_aesthetic(sharpness: float, contrast: float, brightness: float, colorful: float, noise: float) -> float:
    """A hand-made aesthetic score in [0, 1] from technical measures (no learned model needed).

    Rewards sharp, well-exposed, contrasty, colorful, clean frames; each term saturates so no single
    measure dominates. It ranks obvious failures (blurred, dark, washed-out, noisy) below ordinary
    footage; a learned scorer (`kinema.data.scorers`) replaces it when configured.
    """
    sharp = 1.0 - np.exp(-sharpness / 150.0)
    exposure = 1.0 - min(1.0, abs(brightness - 0.45) / 0.45)
    contrasty = min(1.0, contrast / 0.22)
    color = min(1.0, colorful / 60.0)
    clean = 1.0 - min(1.0, noise / 12.0)
    return float(0.3 * sharp + 0.2 * exposure + 0.2 * contrasty + 0.15 * color + 0.15 * clean)


def measure_quality(frames: np.ndarray) -> Quality:
    """Technical quality of a clip.

    Args:
        frames: (T, H, W, 3) uint8 RGB analysis samples (a handful is enough).
    """
    sharp, bright, contrast, noise, under, over, colorful = ([] for _ in range(7))
    for frame in frames:
        small = _small(frame)
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        sharp.append(laplacian_variance(gray))
        bright.append(gray.mean() / 255.0)
        contrast.append(gray.std() / 255.0)
        noise.append(noise_sigma(gray))
        under.append(float((gray < 16).mean()))
        over.append(float((gray > 239).mean()))
        colorful.append(colorfulness(small))
    m = {k: float(np.mean(v)) for k, v in zip(
        ("sharpness", "brightness", "contrast", "noise", "under", "over", "colorful"),
        (sharp, bright, contrast, noise, under, over, colorful),
    )}
    aesthetic = classical_aesthetic(m["sharpness"], m["contrast"], m["brightness"], m["colorful"], m["noise"])
    return Quality(m["sharpness"], m["brightness"], m["contrast"], m["noise"], m["under"], m["over"], m["colorful"], aesthetic)


def dominant_colors(frame: np.ndarray, k: int = 3) -> str:
    """The `k` dominant colors of a frame as JSON: [{"name", "hex", "fraction"}, ...], largest first.

    Pixels are clustered with k-means in RGB; each center gets the nearest name of `COLOR_NAMES`.
    """
    small = cv2.resize(frame, (64, max(2, round(frame.shape[0] * 64 / frame.shape[1]))), interpolation=cv2.INTER_AREA)
    pixels = small.reshape(-1, 3).astype(np.float32)
    k = min(k, len(pixels))
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    cv2.setRNGSeed(0)  # deterministic clustering
    _, labels, centers = cv2.kmeans(pixels, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    counts = np.bincount(labels.ravel(), minlength=k)
    names = list(COLOR_NAMES)
    refs = np.array([COLOR_NAMES[n] for n in names], np.float32)
    out = []
    for i in np.argsort(-counts):
        c = centers[i]
        name = names[int(np.argmin(((refs - c) ** 2).sum(1)))]
        out.append({"name": name, "hex": "#%02x%02x%02x" % tuple(int(round(v)) for v in c), "fraction": round(float(counts[i] / counts.sum()), 3)})
    return json.dumps(out)
