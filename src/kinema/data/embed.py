"""Clip embeddings for deduplication and concept clustering.

The built-in embedding needs no model: tiny zero-mean luma thumbnails of four frames spread over
the clip (layout and motion) joined with a coarse HSV color histogram (palette), L2-normalised.
Re-encoding, rescaling and mild color shifts barely move it, which is what near-duplicate search
needs; clustering on it groups clips by look rather than by meaning. A learned image embedding
(e.g. CLIP) can replace it through `kinema.data.scorers`.

Shape legend: T frames, H height, W width, D embedding width.
"""

from __future__ import annotations

import cv2
import numpy as np

_THUMB = (8, 8)
_FRAMES = 4
_HIST_BINS = (8, 4, 4)
EMBED_DIM = _FRAMES * _THUMB[0] * _THUMB[1] + int(np.prod(_HIST_BINS))  # D = 384


def embed_clip(frames: np.ndarray) -> np.ndarray:
    """Embed a clip.

    Args:
        frames: (T, H, W, 3) uint8 RGB samples, T >= 1.

    Returns:
        (D,) float32, unit length.
    """
    if len(frames) == 0:
        raise ValueError("embed_clip needs at least one frame")
    picks = np.linspace(0, len(frames) - 1, _FRAMES).round().astype(int)
    parts = []
    for i in picks:
        gray = cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY)
        thumb = cv2.resize(gray, _THUMB, interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
        thumb -= thumb.mean()
        parts.append(thumb / (np.linalg.norm(thumb) + 1e-6) * 0.5)  # weight: layout half, palette half
    hsv = cv2.cvtColor(frames[picks[len(picks) // 2]], cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(_HIST_BINS), [0, 180, 0, 256, 0, 256]).ravel()
    hist = np.sqrt(hist / (hist.sum() + 1e-6))  # Hellinger: unit length, robust to small shifts
    parts.append(hist.astype(np.float32) * np.sqrt(_FRAMES) * 0.5)
    vec = np.concatenate(parts).astype(np.float32)
    return vec / (np.linalg.norm(vec) + 1e-12)
