"""Shot splitting: PySceneDetect's content detector, fed downscaled frames as they are decoded.

The detector is driven frame by frame (rather than through `scenedetect.detect`, which opens and
decodes the file itself), so one PyAV decode pass feeds shot detection and the per-clip
measurements together. Shots shorter than `min_length` are reported as too short; shots longer than
`max_length` are cut into pieces of at most that length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scenedetect.common import FrameTimecode
from scenedetect.detectors import ContentDetector


@dataclass(frozen=True)
class ShotConfig:
    """Shot splitting settings.

    Attributes:
        threshold: ContentDetector threshold (PySceneDetect's default 27 on HSV deltas).
        min_length: shortest clip in seconds; shorter shots are kept as rejected rows.
        max_length: longest clip in seconds; longer shots are split evenly.

    The detector sees frames at `SamplingConfig.side` (256 px by default, PySceneDetect's own
    automatic downscale target).
    """

    threshold: float = 27.0
    min_length: float = 2.0
    max_length: float = 20.0

    def __post_init__(self) -> None:
        if self.threshold <= 0:
            raise ValueError(f"shots.threshold must be positive, got {self.threshold}")
        if not 0 < self.min_length <= self.max_length:
            raise ValueError(
                f"shots need 0 < min_length <= max_length, got min_length={self.min_length}, max_length={self.max_length}"
            )


@dataclass(frozen=True)
class Shot:
    """A shot as a half-open frame range [start, end) of the decoded stream."""

    start: int
    end: int


class ShotSplitter:
    """Streaming shot splitter: `push` decoded frames in order, get back shots as they complete.

    A shot is complete when the detector reports the cut that ends it. A shot running longer than
    `max_length + min_length + LATENCY` seconds without a cut is cut at `max_length` (the detector
    reports a cut at most half a second late, so no cut can still land inside that piece); when
    the shot finally ends, what is left (shorter than max_length + min_length + LATENCY) is split
    evenly. Pieces therefore depend only on the cuts and frame times, not on when cuts arrive.
    """

    LATENCY = 1.0  # seconds; more than the detector's reporting delay (min_scene_len = fps / 2)

    def __init__(self, fps: float, config: ShotConfig) -> None:
        self.config = config
        self.fps = fps
        # min_scene_len of half a second stops flashes from making many one-frame shots.
        self._detector = ContentDetector(threshold=config.threshold, min_scene_len=max(2, round(fps / 2)))
        self._times: list[float] = []
        self._start = 0  # first frame of the shot in progress
        self._pending: list[int] = []  # cuts reported but not yet acted on

    def push(self, index: int, time: float, frame_bgr: np.ndarray) -> list[Shot]:
        """Feed frame `index` (shown at `time` seconds, BGR image). Returns shots now complete."""
        if index != len(self._times):
            raise ValueError(f"frames must be pushed in order: expected frame {len(self._times)}, got {index}")
        self._times.append(time)
        found = self._detector.process_frame(FrameTimecode(index, fps=self.fps), frame_bgr)
        self._pending.extend(int(tc.frame_num) for tc in found)
        done: list[Shot] = []
        for cut in sorted(self._pending):
            if cut > self._start:
                done.extend(self._close(cut))
        self._pending.clear()
        limit = self.config.max_length + self.config.min_length + self.LATENCY
        while time - self._times[self._start] > limit:
            end = self._frame_at(self._times[self._start] + self.config.max_length)
            done.append(Shot(self._start, end))
            self._start = end
        return done

    def finish(self) -> list[Shot]:
        """Flush the detector and close the last shot. Returns the shots completed by the flush."""
        if not self._times:
            return []
        last = len(self._times) - 1
        found = self._detector.post_process(FrameTimecode(last, fps=self.fps))
        done: list[Shot] = []
        for cut in sorted(set(int(tc.frame_num) for tc in found) | set(self._pending)):
            if self._start < cut <= last:
                done.extend(self._close(cut))
        done.extend(self._close(len(self._times)))
        return done

    def time_of(self, frame: int) -> float:
        """Presentation time of frame `frame`; one frame step past the last frame for the end."""
        if frame < len(self._times):
            return self._times[frame]
        step = self._times[-1] - self._times[-2] if len(self._times) > 1 else 1.0 / self.fps
        return self._times[-1] + step

    def _frame_at(self, time: float) -> int:
        return int(np.searchsorted(np.asarray(self._times), time - 1e-9))

    def _close(self, end: int) -> list[Shot]:
        """End the shot in progress at frame `end`, splitting it evenly if it is too long."""
        start, self._start = self._start, end
        if end <= start:
            return []
        length = self.time_of(end) - self._times[start]
        pieces = max(1, int(np.ceil(length / self.config.max_length - 1e-9)))
        edges = [start] + [self._frame_at(self._times[start] + length * k / pieces) for k in range(1, pieces)] + [end]
        return [Shot(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
