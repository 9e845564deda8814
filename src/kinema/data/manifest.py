"""The one dataset format, shared by curation, captioning, the toy world and training.

A dataset is a folder holding `manifest.parquet` and the media it points to. One row per clip or
image. `kinema curate` writes it, `kinema caption` adds captions, `kinema toyworld render` writes it,
and the trainers read only it. Producers may add measurement columns of their own; the columns
below are the contract every producer fills and every consumer may rely on.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from kinema.fsutil import atomic_path

MANIFEST_NAME = "manifest.parquet"

# column -> pandas dtype. `path` is relative to the dataset folder (or absolute for sources outside it).
# `start`/`end` are seconds into `path` for clips cut virtually (NaN when the file is the clip).
# `stage` is the highest training stage the row qualifies for (-1: rejected, see `reject_reason`).
# `caption` is the JSON of `kinema.caption.schema.Caption` ("" when not captioned yet).
# `error` is "" for rows that were processed, else one sentence saying what went wrong.
COLUMNS: dict[str, str] = {
    "id": "string",
    "kind": "string",  # "video" or "image"
    "path": "string",
    "start": "float64",
    "end": "float64",
    "frames": "int64",
    "fps": "float64",
    "width": "int64",
    "height": "int64",
    "stage": "int64",
    "reject_reason": "string",
    "bucket": "string",
    "caption": "string",
    "error": "string",
}


def clip_id(source: str, start: float | None = None, end: float | None = None) -> str:
    """Deterministic id of a clip: a hash of its source and time range (16 hex characters)."""
    span = "" if start is None else f"@{start:.6f}-{end:.6f}"
    return hashlib.sha1(f"{source}{span}".encode()).hexdigest()[:16]


def empty_manifest() -> pd.DataFrame:
    """A manifest with the contract's columns and no rows."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in COLUMNS.items()})


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Check the contract's columns are present and cast them to their dtypes.

    Raises:
        ValueError: if a contract column is missing.
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest is missing the columns {missing}; expected at least {list(COLUMNS)}")
    out = df.copy()
    for name, dtype in COLUMNS.items():
        if dtype == "string":
            out[name] = out[name].fillna("").astype("string")
        else:
            out[name] = out[name].astype(dtype)
    front = list(COLUMNS)
    return out[front + [c for c in out.columns if c not in COLUMNS]]


def manifest_file(dataset: str | os.PathLike) -> Path:
    """The manifest's path for a dataset folder (or a path to the parquet file itself); it may not exist."""
    path = Path(dataset)
    return path / MANIFEST_NAME if path.is_dir() else path


def read_manifest(dataset: str | os.PathLike) -> pd.DataFrame:
    """Read the manifest of a dataset folder (or a path to the parquet file itself).

    Raises:
        FileNotFoundError: with a sentence naming the folder, when there is no manifest.
    """
    path = manifest_file(dataset)
    if not path.is_file():
        raise FileNotFoundError(f"no dataset manifest at {path}: expected a folder holding {MANIFEST_NAME}")
    return normalize(pd.read_parquet(path))


def write_manifest(dataset: str | os.PathLike, df: pd.DataFrame) -> Path:
    """Write `df` as the dataset's manifest atomically (temp file, then rename). Returns the path."""
    folder = Path(dataset)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / MANIFEST_NAME
    df = normalize(df)
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)
    return target


def media_path(dataset: str | os.PathLike, row_path: str) -> Path:
    """Resolve a row's `path` against its dataset folder."""
    p = Path(row_path)
    return p if p.is_absolute() else Path(dataset) / p
