"""Motion speed from dense optical flow (Farneback) on small frames.

Speed is the mean flow magnitude per second as a fraction of the frame diagonal, so it does not
depend on resolution or frame rate: 0.01 is barely moving, 0.3 crosses a third of the frame each
second.

Shape legend: T frames, H height, W width.
"""

from __future__ import annotations

import cv2
import numpy as np

_FLOW_WIDTH = 160


def motion_speed(frames: np.ndarray, times: np.ndarray, max_pairs: int = 4) -> float:
    """Mean optical-flow speed of a clip (fraction of the frame diagonal per second).

    Args:
        frames: (T, H, W, 3) uint8 RGB samples, T >= 2.
        times: (T,) their times in seconds.
        max_pairs: at most this many consecutive sample pairs, spread over the clip, are measured.
    """
    if len(frames) < 2:
        return 0.0
    h, w = frames.shape[1:3]
    size = (_FLOW_WIDTH, max(8, round(h * _FLOW_WIDTH / w)))
    diagonal = float(np.hypot(*size))
    picks = np.unique(np.linspace(0, len(frames) - 2, min(max_pairs, len(frames) - 1)).round().astype(int))
    speeds = []
    for i in picks:
        a = cv2.resize(cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
        b = cv2.resize(cv2.cvtColor(frames[i + 1], cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # (h, w, 2)
        dt = max(1e-3, float(times[i + 1] - times[i]))
        speeds.append(float(np.linalg.norm(flow, axis=2).mean()) / diagonal / dt)
    return float(np.mean(speeds))
