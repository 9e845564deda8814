"""Write toy-world renders as a dataset in the one dataset format (`kinema.data.manifest`).

`render_dataset(out, n, ...)` writes `videos/<id>.mp4` (H.264, 4:4:4 chroma, via PyAV; still images as
PNG) and `manifest.parquet` with the contract columns plus the ground truth:

    truth      JSON of `SceneTruth.to_dict()` (enough to render the clip again)
    prompt     caption_to_prompt(caption), the deterministic full prompt
    held_out   whether the scene contains a held-out color x shape x motion triple
    split      "train", "heldout" or "all"
    color, shape, motion   of the first object;  objects  how many;  camera_motion  the camera class
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from kinema.data.buckets import bucket_name
from kinema.data.manifest import MANIFEST_NAME, clip_id, read_manifest, write_manifest
from kinema.media import write_mp4, write_png
from kinema.toyworld.render import render_samples
from kinema.toyworld.scene import SceneTruth, Split, WorldConfig


def manifest_row(
    truth: SceneTruth, caption_json: str, prompt: str, rel_path: str, id_: str, split: str, stage: int
) -> dict:
    """One manifest row for a rendered scene."""
    first = truth.objects[0]
    return {
        "id": id_,
        "kind": "video" if truth.frames > 1 else "image",
        "path": rel_path,
        "start": np.nan,
        "end": np.nan,
        "frames": truth.frames,
        "fps": truth.fps,
        "width": truth.width,
        "height": truth.height,
        "stage": stage,
        "reject_reason": "",
        "bucket": bucket_name(truth.height, truth.width, truth.frames),
        "caption": caption_json,
        "error": "",
        "truth": json.dumps(truth.to_dict()),
        "prompt": prompt,
        "held_out": truth.held_out,
        "split": split,
        "color": first.color,
        "shape": first.shape,
        "motion": first.motion,
        "objects": len(truth.objects),
        "camera_motion": truth.camera,
    }


def render_dataset(
    out: str | os.PathLike,
    n: int,
    config: WorldConfig | None = None,
    seed: int = 0,
    split: Split = "train",
    stage: int = 0,
    chunk: int = 256,
    append: bool = False,
) -> Path:
    """Render `n` scenes into a dataset folder and write its manifest.

    Ids are derived from (seed, split, index, size), so rendering again with the same arguments gives
    the same files. Each file and the manifest are written atomically (the manifest last), so an
    interrupted run leaves the previous manifest, if any, intact.

    Args:
        out: dataset folder (created).
        n: number of clips (>= 1).
        config: world configuration (size, frames, vocabulary).
        seed: base seed; scene i depends only on (seed, split, i, config).
        split: "train" (no held-out triple), "heldout" (only held-out triples) or "all".
        stage: the `stage` column: highest training stage the clips qualify for.
        chunk: scenes rendered per batch (bounds memory).
        append: keep the rows of an existing manifest in `out` (rows with the same id are replaced), so
            one dataset can hold several buckets: e.g. images, 17-frame clips and other aspect ratios.

    Returns:
        The manifest path.
    """
    if n < 1:
        raise ValueError(f"the number of clips must be at least 1, got {n}")
    config = config or WorldConfig()
    folder = Path(out)
    media = folder / "videos"
    media.mkdir(parents=True, exist_ok=True)
    rows = []
    for lo in range(0, n, chunk):
        # Scenes are keyed by global index, so rendering in chunks equals rendering all at once.
        samples = render_samples(min(chunk, n - lo), config, seed, split, start=lo)
        for i, sample in enumerate(samples, start=lo):
            truth = sample.truth
            id_ = clip_id(f"toyworld:{seed}:{split}:{i}:{bucket_name(truth.height, truth.width, truth.frames)}")
            if truth.frames > 1:
                rel = f"videos/{id_}.mp4"
                write_mp4(folder / rel, sample.video, truth.fps, crf=12, pix_fmt="yuv444p")
            else:
                rel = f"videos/{id_}.png"
                write_png(folder / rel, sample.video[0])
            rows.append(manifest_row(truth, sample.caption.model_dump_json(), sample.prompt, rel, id_, split, stage))
    df = pd.DataFrame(rows)
    if append and (folder / MANIFEST_NAME).is_file():
        old = read_manifest(folder)
        df = pd.concat([old[~old["id"].isin(df["id"])], df], ignore_index=True)
    return write_manifest(folder, df)


def read_truths(dataset: str | os.PathLike) -> tuple[pd.DataFrame, list[SceneTruth | None]]:
    """The manifest of a dataset and, per row, its toy-world ground truth (None without a truth column)."""
    df = read_manifest(dataset)
    if "truth" not in df.columns:
        return df, [None] * len(df)
    return df, [SceneTruth.from_dict(json.loads(t)) if isinstance(t, str) and t else None for t in df["truth"]]
