"""Watermarks and logos: edges that stay put while the picture changes, especially in corners.

Edges (Canny) are computed on up to `max_frames` samples spread over the clip, at 256 px on the
longer side; a pixel's persistence is the share of samples in which
it is an edge. Overlaid logos keep their edges in place; scene content does not unless the shot is
static, so the score compares each corner's persistent-edge density to the centre's and to how
much the picture changes at all.

Shape legend: T frames, H height, W width.
"""

from __future__ import annotations

import cv2
import numpy as np

_SIDE = 256


def watermark_score(frames: np.ndarray, max_frames: int = 32) -> float:
    """How strongly a clip shows a fixed overlay in a corner (0: none, ~1: clear logo).

    Args:
        frames: (T, H, W, 3) uint8 RGB samples, T >= 3 for a meaningful answer (else 0).
        max_frames: at most this many samples, evenly spaced, are looked at.
    """
    if len(frames) < 3:
        return 0.0
    frames = frames[np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int))]
    h, w = frames.shape[1:3]
    factor = min(1.0, _SIDE / max(h, w))
    size = (max(8, round(w * factor)), max(8, round(h * factor)))

    def gray_of(f: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
        return g if factor == 1.0 else cv2.resize(g, size, interpolation=cv2.INTER_AREA)

    gray = np.stack([gray_of(f) for f in frames])  # (T, h, w)
    edges = np.stack([cv2.Canny(g, 80, 160) > 0 for g in gray])  # (T, h, w)
    persistent = edges.mean(0) >= 0.9  # (h, w)
    # Where the picture itself does not change, persistence means nothing: mask those pixels out.
    changing = gray.astype(np.float32).std(0) > 6.0  # (h, w)
    hh, ww = persistent.shape
    ch, cw = hh // 4, ww // 4
    corners = [(slice(0, ch), slice(0, cw)), (slice(0, ch), slice(ww - cw, ww)),
               (slice(hh - ch, hh), slice(0, cw)), (slice(hh - ch, hh), slice(ww - cw, ww))]
    centre = (slice(ch, hh - ch), slice(cw, ww - cw))
    moving_share = changing.mean()
    if moving_share < 0.2:
        return 0.0  # a nearly static picture: every edge persists, nothing to tell apart
    centre_density = persistent[centre][changing[centre]].mean() if changing[centre].any() else 0.0
    best = 0.0
    for sl in corners:
        # A logo's own pixels may not change, so count persistent edges anywhere in the corner,
        # but only in corners where the surrounding picture does change.
        if changing[sl].mean() < 0.1:
            continue
        density = persistent[sl].mean()
        best = max(best, density - centre_density)
    # A clear logo covers 4% of a corner with fixed edges at 320 px (the calibration size). Edges
    # are lines, so their density goes as 1 / size: scale the mark to the size measured at.
    clear_logo = 0.04 * 320 / max(gray.shape[1:])
    return float(np.clip(best / clear_logo, 0.0, 1.0))
