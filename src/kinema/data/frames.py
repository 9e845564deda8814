"""The sharpest frame near a clip's start, by variance of the Laplacian (the seed's OpenCV measure).

Shape legend: T frames, H height, W width.
"""

from __future__ import annotations

import cv2
import numpy as np


def laplacian_variance(frame: np.ndarray) -> float:
    """Variance of the Laplacian of the grayscale frame: high for sharp, low for blurred images.

    Args:
        frame: (H, W, 3) uint8 RGB or (H, W) uint8 gray.
    """
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    return float(cv2.Laplacian(gray, cv2.CV_32F).var())


def sharpest_frame(frames: np.ndarray, times: np.ndarray, window: float) -> int:
    """Index of the sharpest frame among those shown within `window` seconds of the first.

    Args:
        frames: (T, H, W, 3) uint8 RGB samples of a clip.
        times: (T,) their times in seconds.
        window: how far into the clip the start may move.

    Raises:
        ValueError: if there are no frames.
    """
    if len(frames) == 0:
        raise ValueError("sharpest_frame needs at least one frame")
    candidates = np.flatnonzero(times - times[0] <= window + 1e-9)
    scores = [laplacian_variance(frames[i]) for i in candidates]
    return int(candidates[int(np.argmax(scores))])
