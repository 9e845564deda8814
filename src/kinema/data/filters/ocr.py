"""Text and subtitle area by OCR text detection (rapidocr-onnxruntime's PP-OCR detector, offline).

Only the detection model runs (no recognition): the measure is the share of the frame covered by
text boxes, the maximum over a few samples, as subtitles come and go.

Shape legend: T frames, H height, W width.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np


@functools.lru_cache(maxsize=1)
def _engine():  # noqa: ANN202 (rapidocr has no type stubs)
    import logging

    from rapidocr_onnxruntime import RapidOCR

    # "max" caps the longer side at 480 px; the default "min" would upscale the shorter side to 480.
    engine = RapidOCR(det_limit_side_len=480, det_limit_type="max", intra_op_num_threads=1, inter_op_num_threads=1)
    logging.getLogger("RapidOCR").setLevel(logging.WARNING)
    return engine


def text_boxes(frame: np.ndarray) -> list[np.ndarray]:
    """Text boxes of one RGB frame, each a (4, 2) array of corner points in pixels."""
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    result, _ = _engine()(bgr, use_det=True, use_cls=False, use_rec=False)
    if not result:
        return []
    return [np.asarray(box, np.float32).reshape(4, 2) for box in result]


def text_area(frames: np.ndarray, samples: int = 3) -> float:
    """Largest share of the frame covered by text boxes over `samples` evenly spaced frames.

    Args:
        frames: (T, H, W, 3) uint8 RGB samples (about 480 px on the longer side is enough).
    """
    if len(frames) == 0:
        return 0.0
    h, w = frames.shape[1:3]
    best = 0.0
    for i in np.unique(np.linspace(0, len(frames) - 1, min(samples, len(frames))).round().astype(int)):
        mask = np.zeros((h, w), np.uint8)
        for box in text_boxes(frames[i]):
            cv2.fillPoly(mask, [box.round().astype(np.int32)], 1)
        best = max(best, float(mask.mean()))
    return best
