"""Black borders (letterbox / pillarbox): the crop box that removes them.

A row or column is border when it is dark and flat in every sample: its mean luma stays below
`dark` and its spread below `flat`. Borders are taken from the frame edges inwards only.

Shape legend: T frames, H height, W width.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropBox:
    """Content box as fractions of the frame, [x0, x1) x [y0, y1); (0, 0, 1, 1) when no border."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def border_fraction(self) -> float:
        """Share of the frame area covered by borders."""
        return 1.0 - (self.x1 - self.x0) * (self.y1 - self.y0)


def _run_length(flags: np.ndarray) -> int:
    """Number of leading True values."""
    off = np.flatnonzero(~flags)
    return int(off[0]) if len(off) else len(flags)


def detect_borders(frames: np.ndarray, dark: float = 24.0, flat: float = 10.0) -> CropBox:
    """Find black bars on any side of a clip.

    Args:
        frames: (T, H, W, 3) uint8 RGB samples.
        dark: largest mean luma (0..255) of a border line.
        flat: largest luma standard deviation along a border line.
    """
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]).astype(np.float32)  # (T, H, W)
    h, w = gray.shape[1:]
    row_dark = ((gray.mean(2) < dark) & (gray.std(2) < flat)).all(0)  # (H,)
    col_dark = ((gray.mean(1) < dark) & (gray.std(1) < flat)).all(0)  # (W,)
    if row_dark.all() or col_dark.all():
        return CropBox(0.0, 0.0, 1.0, 1.0)  # an all-black clip has no content to crop to
    top, bottom = _run_length(row_dark), _run_length(row_dark[::-1])
    left, right = _run_length(col_dark), _run_length(col_dark[::-1])
    return CropBox(left / w, top / h, 1.0 - right / w, 1.0 - bottom / h)
