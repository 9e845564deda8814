"""Text and subtitle area by OCR text detection (rapidocr-onnxruntime's PP-OCR detector, offline).

Only the detection model runs (no recognition): the measure is the share of the frame covered by
text boxes, the maximum over one or two frames of the clip. The detector costs tens of
milliseconds per 480-px frame, as much as decoding a second of 720p video, so a clip gets at most
`OcrConfig.frames` of them, and the second only when the first shows text at all (it then refines
the area, as subtitle lines vary in length). Subtitles that are off screen in the frame looked at
are missed: the price of one detector run per text-free clip.

Shape legend: T frames, H height, W width.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class OcrConfig:
    """Text detection settings.

    Attributes:
        enabled: False skips text detection (text_area = 0).
        side: longer side, in pixels, of the frames the detector sees; PP-OCR finds subtitle-size
            text at 480 (PP-OCRv4 at this size: text-box IoU 0.87-0.96, no false
            boxes on textured images, ~47 ms per 640x360 frame).
        fps: rate at which frames of this size are kept while decoding, to choose from.
        frames: at most this many frames per clip.
    """

    enabled: bool = True
    side: int = 480
    fps: float = 2.0
    frames: int = 2

    def __post_init__(self) -> None:
        if self.side < 32 or self.fps <= 0 or self.frames < 1:
            raise ValueError(f"ocr settings out of range: {self}")


@functools.lru_cache(maxsize=1)
def _engine():  # noqa: ANN202 (rapidocr has no type stubs)
    import logging

    from rapidocr_onnxruntime import RapidOCR

    # With "max", rapidocr 1.4.4 only shrinks inputs over 960 px (det_limit_side_len is not used
    # below that), so the detector runs at the size of the frame it is given, rounded to a
    # multiple of 32: `OcrConfig.side` sets the cost. The default "min" would upscale.
    engine = RapidOCR(det_limit_side_len=960, det_limit_type="max", intra_op_num_threads=1, inter_op_num_threads=1)
    logging.getLogger("RapidOCR").setLevel(logging.WARNING)
    return engine


def text_boxes(frame: np.ndarray) -> list[np.ndarray]:
    """Text boxes of one RGB frame, each a (4, 2) array of corner points in pixels."""
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    result, _ = _engine()(bgr, use_det=True, use_cls=False, use_rec=False)
    if not result:
        return []
    return [np.asarray(box, np.float32).reshape(4, 2) for box in result]


def text_area(frames: np.ndarray, max_frames: int = 2) -> float:
    """Largest share of the frame covered by text boxes, over at most `max_frames` frames.

    The frames looked at are evenly spaced inside the clip (1/2 for one, 1/3 and 2/3 for two, ...);
    after the first, the rest are only looked at if it showed text.

    Args:
        frames: (T, H, W, 3) uint8 RGB (about 480 px on the longer side is enough).
        max_frames: detector runs at most.
    """
    if len(frames) == 0:
        return 0.0
    h, w = frames.shape[1:3]
    n = min(max_frames, len(frames))
    picks = np.unique(((np.arange(1, n + 1) / (n + 1)) * (len(frames) - 1)).round().astype(int))
    best = 0.0
    for k, i in enumerate(picks):
        mask = np.zeros((h, w), np.uint8)
        for box in text_boxes(frames[i]):
            cv2.fillPoly(mask, [box.round().astype(np.int32)], 1)
        best = max(best, float(mask.mean()))
        if k == 0 and best == 0.0:
            break  # no text where it was looked for first: do not pay for a second look
    return best
