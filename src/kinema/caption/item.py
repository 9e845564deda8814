"""What a captioner receives (one manifest row with its sampled frames) and what every backend implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from kinema.caption.vlm import CaptionResult, ChatBackend, caption_with_vlm

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class MediaItem:
    """One clip or image to caption.

    Attributes:
        id: the manifest row id.
        kind: "video" or "image".
        frames: sampled (H, W, 3) uint8 RGB frames in time order (one for an image).
        duration: seconds the clip lasts (0 for an image).
        width: source width in pixels.
        height: source height in pixels.
        row: the manifest row's other columns (curation measurements, camera motion, ...).
    """

    id: str
    kind: str
    frames: list[np.ndarray]
    duration: float
    width: int
    height: int
    row: Mapping[str, Scalar] = field(default_factory=dict)

    @property
    def is_image(self) -> bool:
        return self.kind == "image"


class Captioner(Protocol):
    """A captioning backend: one item in, one validated caption out (camera motion is merged later)."""

    def caption(self, item: MediaItem) -> CaptionResult:
        """Caption `item`; raises `CaptionError` (or the backend's API error) when it cannot."""
        ...


class VLMCaptioner:
    """A `Captioner` that asks a vision-language chat backend, validating and retrying (see `vlm`)."""

    def __init__(self, chat: ChatBackend, *, max_attempts: int = 3):
        self.chat = chat
        self.max_attempts = max_attempts

    def caption(self, item: MediaItem) -> CaptionResult:
        return caption_with_vlm(self.chat, item.frames, is_image=item.is_image, max_attempts=self.max_attempts)
