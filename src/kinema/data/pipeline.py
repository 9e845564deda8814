"""The curation pipeline: videos in, a staged, bucketed, deduplicated dataset folder out.

    inputs ─► per video (parallel): probe ─► decode once ─► shots ─► clip measurements ─► part file
           ─► once all parts exist: dedup + k-means ─► stages + buckets ─► image sets ─► manifest

Each video's rows are written to `OUT/.parts/<hash>.parquet` atomically (temp file, rename) as soon
as the video is done, so a run killed at any moment (even kill -9) resumes by skipping videos that
have a part; the final manifest is rebuilt from the parts, sorted, so it equals an uninterrupted
run's. The per-video stage runs in a local process pool or, with `ray_address`, in a Ray Data actor
pool (same function, same parts, same manifest).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.context import BaseContext
from pathlib import Path

import numpy as np
import pandas as pd

from kinema.data.analyze import process_video
from kinema.data.buckets import aspect_frame_bucket
from kinema.data.config import CurateConfig
from kinema.data.dedup import find_duplicates, kmeans
from kinema.data.manifest import clip_id, normalize, write_manifest
from kinema.data.stages import assign_stage, image_set_level
from kinema.fsutil import atomic_path

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp", ".gif"}
PARTS_DIR = ".parts"


@dataclass(frozen=True)
class CurateSummary:
    """What a run did, counted as `kinema dataset stats` counts the manifest."""

    videos: int  # input files
    skipped: int  # input files already done by an earlier, interrupted run
    failed: int  # input files that could not be read (each became an error row)
    clips: int  # video clips cut from the readable files
    kept: int  # of those clips, the ones in at least stage 0
    images: int  # image rows taken from the kept clips
    manifest: Path
    failures: tuple[tuple[str, str], ...] = ()  # (source, error) of each unreadable input file, in manifest order


def collect_inputs(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """Expand files, folders (recursively, by video extension) and .txt lists of paths.

    Every source comes back as an absolute path, so clip ids and the manifest do not depend on the
    directory the command ran in. Relative entries of a .txt list are taken relative to the list's
    own folder.

    Raises:
        FileNotFoundError: if an input does not exist.
    """
    found: list[str] = []
    for item in inputs:
        p = Path(os.path.abspath(item))
        if p.is_dir():
            found.extend(str(f) for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
        elif p.is_file() and p.suffix.lower() == ".txt":
            lines = [ln.strip() for ln in p.read_text().splitlines()]
            found.extend(os.path.abspath(p.parent / ln) for ln in lines if ln and not ln.startswith("#"))
        elif p.is_file():
            found.append(str(p))
        else:
            raise FileNotFoundError(f"input {item} does not exist")
    return list(dict.fromkeys(found))  # unique, in order


def dataset_path(source: str, out: Path) -> str:
    """A source's `path` in the manifest: relative to the dataset folder `out` when inside it, else absolute.

    Both forms are what `kinema.data.manifest.media_path` resolves, from any working directory.
    """
    source_abs, out_abs = Path(os.path.abspath(source)), Path(os.path.abspath(out))
    return source_abs.relative_to(out_abs).as_posix() if source_abs.is_relative_to(out_abs) else str(source_abs)


def part_path(out: Path, source: str) -> Path:
    """Where the rows of `source` are kept until the manifest is built."""
    return out / PARTS_DIR / f"{hashlib.sha1(source.encode()).hexdigest()[:16]}.parquet"


def _write_atomic_parquet(df: pd.DataFrame, target: Path) -> None:
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)


def run_one(source: str, out: str, config: CurateConfig, threads: int = 1) -> tuple[str, int, float, bool]:
    """Process one video and write its part file. Returns (source, rows, seconds of video, failed)."""
    rows = process_video(source, config, threads=threads)
    df = pd.DataFrame(rows)
    _write_atomic_parquet(df, part_path(Path(out), source))
    failed = bool((df["error"] != "").any())
    seconds = float((df["end"] - df["start"]).fillna(0).clip(lower=0).sum())
    return source, len(rows), seconds, failed


def available_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers() -> int:
    """One worker process per core."""
    return max(1, available_cores())


def decoder_threads(workers: int, videos: int) -> int:
    """Decoder threads per worker so that workers x threads fills the cores without oversubscribing.

    With at least as many videos as workers every process decodes on one thread (one process per
    core is the cheapest parallelism); cores left without a video of their own go to the decoders
    of the videos there are, which then decode ahead while their process analyses.
    """
    busy = max(1, min(workers, videos))
    return max(1, available_cores() // busy)


def _progress(total: int, initial: int, show: bool | None):  # noqa: ANN202 (a tqdm bar)
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="video", file=sys.stderr, dynamic_ncols=True,
                disable=not sys.stderr.isatty() if show is None else not show)


def _worker_context() -> BaseContext:
    """How worker processes start: forked from a fork server that has imported the pipeline.

    Importing the pipeline (pandas, OpenCV, PySceneDetect, the OCR package) costs about a CPU
    second; a fork server pays it once and every worker starts as a copy (the OCR model itself is
    loaded in each worker, on first use). Workers are never forked from this process,
    which may already hold decoder or ONNX runtime threads that do not survive a fork. Where there
    is no fork server (Windows), workers are spawned and each imports the pipeline itself.
    """
    if "forkserver" not in get_all_start_methods():
        return get_context("spawn")
    context = get_context("forkserver")
    context.set_forkserver_preload(["kinema.data.pipeline", "rapidocr_onnxruntime"])
    return context


def _run_local(todo: list[str], out: Path, config: CurateConfig, workers: int, on_done: Callable) -> None:
    workers = max(1, min(workers, len(todo)))
    threads = decoder_threads(workers, len(todo))
    if workers == 1:
        for source in todo:
            on_done(run_one(source, str(out), config, threads))
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=_worker_context()) as pool:
        futures = [pool.submit(run_one, s, str(out), config, threads) for s in todo]
        for future in as_completed(futures):
            on_done(future.result())


class _RayVideoStage:
    """Ray Data actor: runs `run_one` on batches of sources (one actor per worker slot)."""

    def __init__(self, out: str, config: CurateConfig) -> None:
        self.out, self.config = out, config

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [run_one(str(s), self.out, self.config) for s in batch["source"]]
        return {
            "source": np.array([r[0] for r in results]),
            "rows": np.array([r[1] for r in results]),
            "seconds": np.array([r[2] for r in results]),
            "failed": np.array([r[3] for r in results]),
        }


def _keep_ray_on_loopback() -> None:
    """Make a local Ray instance bind 127.0.0.1 instead of the machine's network address.

    Ray 2.x on Linux resolves even `_node_ip_address="127.0.0.1"` to the outward address; its
    documented switch for single-machine use, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, keeps it on
    loopback. The variable is read when Ray is imported, so an already imported Ray is told too.
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None and os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0":
        constants.ENABLE_RAY_CLUSTER = False


def _run_ray(todo: list[str], out: Path, config: CurateConfig, workers: int, address: str, on_done: Callable) -> None:
    if address == "local":
        _keep_ray_on_loopback()
    import ray

    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    ds = ray.data.from_items([{"source": s} for s in todo])
    # Fractional CPUs per actor: a pool of whole-CPU actors filling the cluster deadlocks under
    # Ray Data's backpressure (2 whole-CPU actors on a 2-CPU cluster never finish).
    ds = ds.map_batches(
        _RayVideoStage,
        fn_constructor_kwargs={"out": str(out), "config": config},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=max(1, workers)),
        num_cpus=0.5,
    )
    for batch in ds.iter_batches(batch_size=1, batch_format="numpy"):
        on_done((str(batch["source"][0]), int(batch["rows"][0]), float(batch["seconds"][0]), bool(batch["failed"][0])))


def build_manifest(sources: list[str], out: Path, config: CurateConfig, write_images: bool = True) -> pd.DataFrame:
    """Combine the part files of `sources` into the final manifest (dedup, clusters, stages, buckets).

    Deterministic: the same parts always give the same manifest, whatever order they were made in.
    """
    parts = [pd.read_parquet(part_path(out, s)) for s in sources if part_path(out, s).is_file()]
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if df.empty:
        return df
    df = df.sort_values(["source", "shot_index", "start"], kind="stable").reset_index(drop=True)
    df["path"] = df["source"].map(lambda s: dataset_path(s, out))
    for col, default in (("duplicate_of", ""), ("cluster", -1), ("cluster_size", 0), ("stage_reasons", "[]")):
        df[col] = default
    measured = df.index[df["reject_reason"] == ""].to_numpy()
    if len(measured):
        emb = np.stack(df.loc[measured, "embedding"].map(np.asarray).to_list()).astype(np.float32)  # (N, D)
        dup = find_duplicates(emb, df.loc[measured, "aesthetic_score"].to_numpy(), config.dedup_threshold)
        ids = df.loc[measured, "id"].to_numpy()
        df.loc[measured, "duplicate_of"] = [ids[j] if j >= 0 else "" for j in dup]
        unique = dup < 0
        labels, _ = kmeans(emb[unique], config.clusters)
        sizes = np.bincount(labels, minlength=labels.max() + 1 if len(labels) else 0)
        df.loc[measured[unique], "cluster"] = labels
        df.loc[measured[unique], "cluster_size"] = sizes[labels]
        for i in measured:
            row = df.loc[i]
            stage, reasons = assign_stage(row, config.stages)
            df.at[i, "stage_reasons"] = json.dumps(reasons)
            if row["duplicate_of"]:
                df.at[i, "stage"], df.at[i, "reject_reason"] = -1, "duplicate"
            elif stage < 0:
                df.at[i, "stage"], df.at[i, "reject_reason"] = -1, reasons[0]
            else:
                df.at[i, "stage"] = stage
            cw = row["width"] * (row["crop_x1"] - row["crop_x0"])
            ch = row["height"] * (row["crop_y1"] - row["crop_y0"])
            df.at[i, "bucket"] = aspect_frame_bucket(ch, cw, int(row["frames"]), config.buckets)
        df["stage"] = df["stage"].astype("int64")
    images = _image_rows(df, out, config, write_images)
    df = pd.concat([df, images], ignore_index=True) if len(images) else df
    df["path"] = df["path"].astype(str)
    return normalize(df)


def _image_rows(df: pd.DataFrame, out: Path, config: CurateConfig, write_images: bool) -> pd.DataFrame:
    """Rows of the two image sets: start frames of usable, non-duplicate clips, saved as JPEG."""
    from PIL import Image

    from kinema.data.io import MediaError, read_frame

    rows = []
    candidates = df[(df["reject_reason"] == "") & (df["duplicate_of"] == "")] if "duplicate_of" in df else df.iloc[:0]
    for _, row in candidates.iterrows():
        level = image_set_level(row, config.image_sets)
        if level < 0:
            continue
        image_id = clip_id(f"{row['source']}#frame", row["start"], row["start"])
        rel = f"images/{image_id}.jpg"
        target = out / rel
        if write_images and not target.exists():
            try:
                frame = read_frame(row["source"], float(row["start"]))
            except MediaError:
                continue
            h, w = frame.shape[:2]
            crop = frame[round(row["crop_y0"] * h) : round(row["crop_y1"] * h), round(row["crop_x0"] * w) : round(row["crop_x1"] * w)]
            with atomic_path(target) as tmp:
                Image.fromarray(crop).save(tmp, format="JPEG", quality=92)
        image = row.to_dict()
        image.update(id=image_id, kind="image", path=rel, end=row["start"], frames=1, stage=level,
                     bucket=f"{row['bucket'].split('x')[0]}x1" if row["bucket"] else "",
                     image_set=config.image_sets[level].name)
        rows.append(image)
    return pd.DataFrame(rows)


def curate(
    inputs: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    config: CurateConfig,
    workers: int | None = None,
    ray_address: str | None = None,
    write_images: bool = True,
    progress: bool | None = None,
) -> CurateSummary:
    """Run the whole pipeline and write `OUT/manifest.parquet`.

    Args:
        inputs: files, folders or .txt lists of paths.
        out: dataset folder (created; reruns resume from its part files).
        config: thresholds and settings.
        workers: parallel videos (default: one per core).
        ray_address: None for the local process pool, "local" for a Ray instance on this machine,
            or a cluster address.
        write_images: extract the image sets' start frames as JPEG files.
        progress: a progress bar on stderr (videos, clips, throughput, ETA); None shows it when
            stderr is a terminal.
    """
    out = Path(os.path.abspath(out))
    sources = collect_inputs(inputs)
    if not sources:
        raise ValueError("no videos found in the inputs (looked for files with extensions " + ", ".join(sorted(VIDEO_EXTENSIONS)) + ")")
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or default_workers()
    todo = [s for s in sources if not part_path(out, s).is_file()]
    bar = _progress(len(sources), len(sources) - len(todo), progress) if progress is not False else None
    stats = {"clips": 0, "seconds": 0.0, "failed": 0}
    started = time.monotonic()

    def on_done(result: tuple[str, int, float, bool]) -> None:
        _, rows, seconds, failed = result
        stats["clips"] += rows
        stats["seconds"] += seconds
        stats["failed"] += int(failed)
        if bar is not None:
            rate = stats["seconds"] / max(1e-6, time.monotonic() - started)
            bar.set_postfix(clips=stats["clips"], speed=f"{rate:.1f}x realtime", refresh=False)
            bar.update(1)

    try:
        if ray_address is None:
            _run_local(todo, out, config, workers, on_done)
        else:
            _run_ray(todo, out, config, workers, ray_address, on_done)
    finally:
        if bar is not None:
            bar.close()
    df = build_manifest(sources, out, config, write_images)
    path = write_manifest(out, df)
    videos = df[df["kind"] == "video"]
    errors = videos[videos["error"] != ""].drop_duplicates("source")  # one row per failed file
    return CurateSummary(
        videos=len(sources),
        skipped=len(sources) - len(todo),
        failed=len(errors),
        clips=int(((videos["error"] == "")).sum()),
        kept=int(((videos["stage"] >= 0) & (videos["error"] == "")).sum()),
        images=int((df["kind"] == "image").sum()),
        manifest=path,
        failures=tuple(zip(errors["source"], errors["error"], strict=True)),
    )
