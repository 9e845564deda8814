"""What the trainers read from a data set: decoded clips and captions from its manifest, random windows
of them (the VAE trainer). The DiT trains on latents cached from these clips (kinema.train.latent_cache)
and also reads the image rows, as 1-frame clips (the VAE trainer's windows need videos); both convert
pixels to the models' range with kinema.pixels.

Shape legend: N clips, T frames, H height, W width.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from kinema.data.manifest import media_path, read_manifest
from kinema.media import read_video

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Clip:
    """One decoded training clip and its caption JSON."""

    id: str
    video: np.ndarray  # (T, H, W, 3) uint8
    caption: str


# Which manifest rows a trainer reads: "video" rows, or with images also "image" rows (1-frame clips).
Kinds = tuple[str, ...]
VIDEOS: Kinds = ("video",)
VIDEOS_AND_IMAGES: Kinds = ("video", "image")


def _usable_rows(dataset: str | os.PathLike, limit: int | None, min_stage: int, kinds: Kinds) -> pd.DataFrame:
    """The rows of `kinds` with no error and stage ≥ min_stage, in manifest order, at most `limit`."""
    df = read_manifest(dataset)
    df = df[(df["error"] == "") & df["kind"].isin(kinds) & (df["stage"] >= min_stage)]
    if limit is not None:
        df = df.head(limit)
    if df.empty:
        rows = " or ".join(kinds)
        raise ValueError(f"dataset {dataset} has no usable {rows} rows (stage ≥ {min_stage}, no error)")
    return df


def load_clips(
    dataset: str | os.PathLike, limit: int | None = None, min_stage: int = 0, kinds: Kinds = VIDEOS
) -> list[Clip]:
    """Decode the usable rows of `kinds` of a dataset (no error, stage ≥ min_stage) into memory, in
    manifest order; an image row becomes a clip of one frame."""
    df = _usable_rows(dataset, limit, min_stage, kinds)
    clips = []
    for row in tqdm(df.itertuples(), total=len(df), desc="decode clips", unit="clip", leave=False):
        start = None if np.isnan(row.start) else row.start
        end = None if np.isnan(row.end) else row.end
        clips.append(Clip(row.id, read_video(media_path(dataset, row.path), start, end), row.caption))
    return clips


def load_captions(
    dataset: str | os.PathLike, limit: int | None = None, min_stage: int = 0, kinds: Kinds = VIDEOS
) -> list[str]:
    """The caption JSON of the rows `load_clips` decodes, in the same order, without decoding video.

    Raises:
        ValueError: naming the data set and how many of those rows have no caption yet.
    """
    captions = _usable_rows(dataset, limit, min_stage, kinds)["caption"].fillna("")
    missing = int((captions.str.strip() == "").sum())
    if missing:
        raise ValueError(f"dataset {dataset} has {missing} rows without a caption (of {len(captions)}): "
                         f"run `kinema caption {dataset}` first")
    return list(captions)


def sample_windows(
    clips: list[Clip], batch: int, frames: int, height: int, width: int, max_stride: int, generator: torch.Generator
) -> np.ndarray:
    """Random crops in time (with a random frame stride) and space.

    The stride is drawn in [1, max_stride] and capped by what the clip's length allows, so short clips
    still give windows (stride 1) while long ones yield sped-up motion (HunyuanVideo samples 1–8).

    Returns:
        (batch, frames, height, width, 3) uint8.
    """
    out = np.empty((batch, frames, height, width, 3), dtype=np.uint8)
    for b in range(batch):
        clip = clips[int(torch.randint(len(clips), (1,), generator=generator))].video
        t, h, w = clip.shape[:3]
        if t < frames or h < height or w < width:
            raise ValueError(f"clip of {t}×{h}×{w} is smaller than the window {frames}×{height}×{width}")
        top_stride = max(1, min(max_stride, (t - 1) // max(frames - 1, 1)))
        stride = int(torch.randint(1, top_stride + 1, (1,), generator=generator))
        t0 = int(torch.randint(t - (frames - 1) * stride, (1,), generator=generator))
        y0 = int(torch.randint(h - height + 1, (1,), generator=generator))
        x0 = int(torch.randint(w - width + 1, (1,), generator=generator))
        out[b] = clip[t0 : t0 + (frames - 1) * stride + 1 : stride, y0 : y0 + height, x0 : x0 + width]
    return out
