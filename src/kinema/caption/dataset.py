"""Caption a dataset: every kept clip and image of a manifest gets a validated JSON caption.

    read manifest -> rows to do -> (threads) sample frames -> backend caption -> merge camera motion
                  -> write captions back into the manifest every few rows (atomic rename)

Resumable: rows that already have a caption are skipped, and captions are saved as they arrive,
so a killed run loses at most `save_every` captions. Rows whose captioning failed keep an empty
`caption` and get a sentence in the `caption_error` column (curation's own `error` column is left
alone); a rerun tries them again. A refused API key stops the run at once: every other row would
fail the same way. The `CaptionSummary` counts every manifest row once: selected (then captioned or
failed), or left alone for its first reason (unreadable, rejected, already captioned, past `--limit`).

Manifest columns read besides the contract (`kinema.data.manifest.COLUMNS`) when present:
    camera_motion       the camera-motion classifier's class (one of `CAMERA_MOTIONS`)
    camera_confidence   its confidence in [0, 1]; merged into the caption at >= `camera_threshold`
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from kinema.caption.frames import load_image, sample_video_frames
from kinema.caption.item import Captioner, MediaItem
from kinema.caption.openai_compat import OpenAICompatAuthError, OpenAICompatError
from kinema.caption.schema import CAMERA_MOTIONS, CameraMotion, merge_camera_motion
from kinema.caption.vlm import CaptionError, CaptionResult
from kinema.clients.errors import MiniMaxAuthError, MiniMaxError
from kinema.clients.minimax import Usage
from kinema.data.manifest import media_path, read_manifest, write_manifest

ERROR_COLUMN = "caption_error"
# Errors that would repeat for every row: stop the run instead of failing each row.
FATAL_ERRORS: tuple[type[Exception], ...] = (MiniMaxAuthError, OpenAICompatAuthError)
# Errors that fail one row and let the run go on.
ROW_ERRORS: tuple[type[Exception], ...] = (CaptionError, MiniMaxError, OpenAICompatError, ValueError, OSError)


@dataclass(frozen=True)
class CaptionRunConfig:
    """Options of one captioning run.

    Attributes:
        frames: frames sampled per clip (the start frame plus evenly spaced ones).
        max_side: long side of sampled frames in pixels.
        concurrency: rows captioned at once (threads; the work is network- or decode-bound).
        camera_threshold: minimum classifier confidence for camera motion to enter the caption.
        recaption: caption rows that already have a caption too.
        limit: caption at most this many rows (None: all).
        save_every: write the manifest after this many finished rows.
        usd_per_mtok_input: price of a million prompt tokens, for the cost estimate (None: no estimate).
        usd_per_mtok_output: price of a million completion tokens.
        progress: show a progress bar.
    """

    frames: int = 4
    max_side: int = 512
    concurrency: int = 4
    camera_threshold: float = 0.8
    recaption: bool = False
    limit: int | None = None
    save_every: int = 20
    usd_per_mtok_input: float | None = None
    usd_per_mtok_output: float | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"--frames must be at least 1, got {self.frames}")
        if self.concurrency < 1:
            raise ValueError(f"--concurrency must be at least 1, got {self.concurrency}")
        if not 0.0 <= self.camera_threshold <= 1.0:
            raise ValueError(f"--camera-threshold must be in [0, 1], got {self.camera_threshold}")
        if self.save_every < 1:
            raise ValueError(f"save_every must be at least 1, got {self.save_every}")


@dataclass
class CaptionSummary:
    """What a run did. Every manifest row is counted once: `rows` = `todo` + `unreadable` + `rejected`
    + `already_captioned` + `over_limit`, and `todo` = `captioned` + `failed`.

    Attributes:
        rows: rows in the manifest.
        todo: rows selected for captioning.
        captioned: selected rows that got a caption.
        failed: selected rows whose captioning failed (see `errors` and the `caption_error` column).
        unreadable: rows left alone because curation could not read them (an `error`).
        rejected: rows left alone because curation rejected them (stage -1).
        already_captioned: kept rows left alone because they have a caption (without `--recaption`).
        over_limit: kept rows left for a later run by `--limit`.
        replies: chat replies received (more than `captioned` when invalid replies were retried).
        with_camera: captions that received the classifier's camera motion.
        usage: tokens spent.
        cost_usd: estimated cost, when prices were given.
        errors: (row id, message) of the first failures.
    """

    rows: int = 0
    todo: int = 0
    captioned: int = 0
    failed: int = 0
    unreadable: int = 0
    rejected: int = 0
    already_captioned: int = 0
    over_limit: int = 0
    replies: int = 0
    with_camera: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)

    def add_usage(self, usage: Usage) -> None:
        u = self.usage
        self.usage = Usage(u.prompt_tokens + usage.prompt_tokens, u.completion_tokens + usage.completion_tokens,
                           u.total_tokens + usage.total_tokens)

    def lines(self) -> list[str]:
        """A human summary, one fact per line."""
        left = [f"{n} {why}" for n, why in ((self.already_captioned, "already captioned"),
                                            (self.rejected, "rejected by curation"),
                                            (self.unreadable, "unreadable"), (self.over_limit, "past --limit")) if n]
        out = [
            f"rows: {self.rows}, {self.todo} to caption" + (f"; left alone: {', '.join(left)}" if left else ""),
            f"captioned {self.captioned} of the {self.todo} ({self.failed} failed)" if self.todo else "nothing to caption",
            f"camera motion merged into {self.with_camera} captions",
        ]
        if self.replies:
            u = self.usage
            out.append(f"{self.replies} model replies, tokens: {u.prompt_tokens} prompt + {u.completion_tokens} completion")
            out.append(f"estimated cost: ${self.cost_usd:.4f}" if self.cost_usd is not None
                       else "estimated cost: pass --usd-per-mtok-input/--usd-per-mtok-output to estimate")
        out += [f"failed {row_id}: {message}" for row_id, message in self.errors]
        return out


def rows_to_caption(df: pd.DataFrame, config: CaptionRunConfig) -> list[int]:
    """Indices of rows to caption: kept by curation (stage >= 0), without an error, not yet captioned."""
    return _select(df, config)[0]


def _select(df: pd.DataFrame, config: CaptionRunConfig) -> tuple[list[int], CaptionSummary]:
    """The rows to caption, and a summary that counts every other row once, by its first reason."""
    unreadable = df["error"] != ""
    rejected = ~unreadable & (df["stage"] < 0)
    kept = ~unreadable & ~rejected
    captioned = kept & (df["caption"] != "") if not config.recaption else kept & False
    candidates = list(df.index[kept & ~captioned])
    rows = candidates if config.limit is None else candidates[: config.limit]
    summary = CaptionSummary(
        rows=len(df), todo=len(rows), unreadable=int(unreadable.sum()), rejected=int(rejected.sum()),
        already_captioned=int(captioned.sum()), over_limit=len(candidates) - len(rows),
    )
    return rows, summary


def load_item(dataset: Path, row: Mapping[str, object], config: CaptionRunConfig) -> MediaItem:
    """Sample a row's frames and wrap them with its metadata."""
    path = media_path(dataset, str(row["path"]))
    start, end = float(row["start"]), float(row["end"])
    if row["kind"] == "image":
        frames = [load_image(path, max_side=config.max_side)]
        duration = 0.0
    else:
        frames = sample_video_frames(path, start=start, end=end, count=config.frames, max_side=config.max_side)
        fps = float(row["fps"]) if float(row["fps"]) > 0 else 0.0
        duration = end - start if not (math.isnan(start) or math.isnan(end)) else (int(row["frames"]) / fps if fps else 0.0)
    extra = {k: _scalar(v) for k, v in row.items()}
    return MediaItem(
        id=str(row["id"]), kind=str(row["kind"]), frames=frames, duration=duration,
        width=int(row["width"]), height=int(row["height"]), row=extra,
    )


def classifier_motion(row: Mapping[str, object]) -> CameraMotion | None:
    """The camera-motion classifier's prediction stored in a video row, if any (never for images)."""
    if row.get("kind") != "video":
        return None  # image rows may carry their source clip's columns; a still has no camera motion
    motion, confidence = row.get("camera_motion"), row.get("camera_confidence")
    if not isinstance(motion, str) or motion not in CAMERA_MOTIONS:
        return None
    try:
        value = float(confidence)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not 0.0 <= value <= 1.0:
        return None
    return CameraMotion(type=motion, confidence=value)  # type: ignore[arg-type]


def caption_dataset(dataset: str | Path, captioner: Captioner, config: CaptionRunConfig | None = None) -> CaptionSummary:
    """Caption the rows of a dataset's manifest in place (see the module docstring).

    Raises:
        FileNotFoundError: no manifest in `dataset`.
        MiniMaxAuthError / OpenAICompatAuthError: the key was refused (captions so far are saved).
    """
    config = config or CaptionRunConfig()
    dataset = Path(dataset)
    df = read_manifest(dataset)
    if ERROR_COLUMN not in df.columns:
        df[ERROR_COLUMN] = ""
    df[ERROR_COLUMN] = df[ERROR_COLUMN].fillna("").astype("string")
    todo, summary = _select(df, config)
    if not todo:
        return summary

    # Workers get plain copies of their rows: the main thread writes captions into `df` meanwhile.
    rows = {index: df.loc[index].to_dict() for index in todo}

    def work(index: int) -> CaptionResult:
        return captioner.caption(load_item(dataset, rows[index], config))

    unsaved = 0
    bar = tqdm(total=len(todo), unit="item", desc="caption", disable=not config.progress)
    pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="caption")
    try:
        pending: dict[Future[CaptionResult], int] = {pool.submit(work, i): i for i in todo}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                _record(df, index, future, summary, config)
                unsaved += 1
                bar.update(1)
                bar.set_postfix(failed=summary.failed, tokens=summary.usage.total_tokens, refresh=False)
            if unsaved >= config.save_every:
                write_manifest(dataset, df)
                unsaved = 0
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        write_manifest(dataset, df)
    if config.usd_per_mtok_input is not None or config.usd_per_mtok_output is not None:
        u = summary.usage
        summary.cost_usd = ((config.usd_per_mtok_input or 0.0) * u.prompt_tokens
                            + (config.usd_per_mtok_output or 0.0) * u.completion_tokens) / 1e6
    return summary


def _record(df: pd.DataFrame, index: int, future: Future[CaptionResult], summary: CaptionSummary,
            config: CaptionRunConfig) -> None:
    """Write one finished row into `df` and the summary; re-raise fatal errors."""
    row_id = str(df.at[index, "id"])
    try:
        result = future.result()
    except FATAL_ERRORS:
        raise
    except ROW_ERRORS as e:
        summary.failed += 1
        summary.add_usage(getattr(e, "usage", Usage()))
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        df.at[index, ERROR_COLUMN] = message
        if len(summary.errors) < 10:
            summary.errors.append((row_id, message))
        return
    caption = merge_camera_motion(result.caption, classifier_motion(df.loc[index]), config.camera_threshold)
    df.at[index, "caption"] = caption.model_dump_json()
    df.at[index, ERROR_COLUMN] = ""
    summary.captioned += 1
    summary.with_camera += caption.camera_motion is not None
    summary.add_usage(result.usage)
    summary.replies += result.replies


def _scalar(value: object) -> str | int | float | bool | None:
    """A manifest cell as a plain Python scalar; None for missing values and non-scalars (embeddings)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and getattr(value, "ndim", 1) == 0:
        return item()
    return None
