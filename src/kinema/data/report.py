"""`kinema dataset stats` (a text summary) and `kinema dataset report` (a self-contained HTML page).

Both count rows one way: a row is a video clip, an image, or an unreadable video (an `error` row);
kept means stage >= 0. The report is written atomically (`kinema.fsutil`).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from kinema.data.manifest import media_path, read_manifest
from kinema.fsutil import write_text_atomic

SCORE_COLUMNS = ("aesthetic_score", "sharpness", "motion_speed", "text_area", "watermark_score", "border_fraction",
                 "brightness", "noise", "camera_confidence")


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def stats_table(df: pd.DataFrame) -> str:
    """A plain-text summary of a manifest; every count says what it counts, and the parts add up.

    A row is a video clip, an image, or an unreadable video (kind "video" with an `error`). Kept means
    stage >= 0, rejected stage -1. The clip lines, the rejection reasons, the per-stage table and the
    bucket table all count the same rows the same way.
    """
    lines: list[str] = []
    unreadable = df[(df["kind"] == "video") & (df["error"] != "")]
    clips = df[(df["kind"] == "video") & (df["error"] == "")]
    images = df[df["kind"] == "image"]
    kept = df[(df["stage"] >= 0) & (df["error"] == "")]
    rejected = clips[clips["stage"] < 0]
    lines.append(f"rows: {len(df)}")
    lines.append(f"  video clips:       {len(clips):>6}  (kept {int((clips['stage'] >= 0).sum())}, rejected {len(rejected)})")
    lines.append(f"  images:            {len(images):>6}  (kept {int((images['stage'] >= 0).sum())}, "
                 f"rejected {int((images['stage'] < 0).sum())})")
    lines.append(f"  unreadable videos: {len(unreadable):>6}  (rows with an error)")
    if len(rejected):
        lines.append("")
        lines.append(f"rejected video clips by reason ({len(rejected)}):")
        for reason, n in rejected["reject_reason"].value_counts().sort_index().items():
            lines.append(f"  {reason or '-':<14} {n:>7}")
    if "stage_reasons" in clips:
        measured = clips[clips["reject_reason"].isin(["", "duplicate"]) | (clips["stage"] >= 0)]
        reasons = [json.loads(r) if r else [] for r in measured["stage_reasons"].fillna("[]")]
        dup = (measured["reject_reason"] == "duplicate").to_numpy()
        stages = max((len(r) for r in reasons), default=0)
        if stages:
            lines.append("")
            lines.append(f"per stage, the {_count(len(measured), 'clip', 'clips')} past the filters: kept / rejected "
                         "by the stage's first failing check")
        for k in range(stages):
            counts: dict[str, int] = {}
            passed = 0
            for r, d in zip(reasons, dup):
                reason = "duplicate" if d else (r[k] if k < len(r) else "")
                if reason:
                    counts[reason] = counts.get(reason, 0) + 1
                else:
                    passed += 1
            detail = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
            lines.append(f"  stage {k}: kept {passed:>6}  rejected {sum(counts.values()):>6}  ({detail})")
    if len(kept):
        lines.append("")
        kinds = ", ".join(_count(int((kept["kind"] == kind).sum()), one, many)
                          for kind, one, many in (("video", "clip", "clips"), ("image", "image", "images")))
        lines.append(f"buckets of the {len(kept)} kept rows ({kinds}):")
        for bucket, n in kept.groupby(["kind", "bucket"]).size().items():
            lines.append(f"  {bucket[0]:<6} {bucket[1] or '-':<12} {n:>7}")
    if "camera_motion" in clips and clips["camera_motion"].notna().any():
        motions = clips["camera_motion"].dropna()
        lines.append("")
        lines.append(f"camera motion ({_count(len(motions), 'measured clip', 'measured clips')}):")
        for name, n in motions.value_counts().sort_index().sort_values(ascending=False, kind="stable").items():
            lines.append(f"  {name:<14} {n:>7}")
    return "\n".join(lines)


def _histogram_svg(values: np.ndarray, title: str, bins: int = 20) -> str:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return ""
    counts, edges = np.histogram(values, bins=bins)
    w, h = 300, 120
    top = max(1, counts.max())
    bars = "".join(
        f'<rect x="{i * w / bins:.1f}" y="{h - c / top * (h - 20):.1f}" width="{w / bins - 1:.1f}" '
        f'height="{c / top * (h - 20):.1f}" fill="#4a7"><title>{edges[i]:.3g}-{edges[i + 1]:.3g}: {c}</title></rect>'
        for i, c in enumerate(counts)
    )
    return (f'<figure><svg width="{w}" height="{h}" role="img">{bars}</svg>'
            f"<figcaption>{html.escape(title)} ({edges[0]:.3g} .. {edges[-1]:.3g})</figcaption></figure>")


def _thumbnail(dataset: Path, row: pd.Series) -> str:
    """A small JPEG of the row's start frame as a data URI ('' if it cannot be read)."""
    from PIL import Image

    from kinema.data.io import MediaError, read_frame

    try:
        if row["kind"] == "image":
            image = Image.open(media_path(dataset, row["path"])).convert("RGB")
        else:
            image = Image.fromarray(read_frame(media_path(dataset, row["path"]), float(row["start"])))
    except (MediaError, OSError, ValueError):
        return ""
    image.thumbnail((160, 160))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def write_report(dataset: str | os.PathLike, out: str | os.PathLike | None = None, per_stage: int = 12) -> Path:
    """Write a self-contained HTML report (thumbnails per stage, score histograms). Returns its path."""
    dataset = Path(dataset)
    df = read_manifest(dataset)
    target = Path(out) if out else dataset / "report.html"
    parts = [f"<!doctype html><meta charset='utf-8'><title>kinema dataset report</title>",
             "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:4px}"
             "img{display:block}figcaption{font-size:11px;max-width:160px}</style>",
             f"<h1>Dataset report: {html.escape(str(dataset))}</h1><pre>{html.escape(stats_table(df))}</pre>",
             "<h2>Score histograms (video clips)</h2>"]
    videos = df[(df["kind"] == "video") & (df["error"] == "")]
    for col in SCORE_COLUMNS:
        if col in videos:
            parts.append(_histogram_svg(pd.to_numeric(videos[col], errors="coerce").to_numpy(np.float64), col))
    for kind in ("video", "image"):
        for stage in sorted(df.loc[df["kind"] == kind, "stage"].unique()):
            rows = df[(df["kind"] == kind) & (df["stage"] == stage)].head(per_stage)
            label = "rejected" if stage < 0 else f"stage {stage}"
            parts.append(f"<h2>{kind} {label} ({int(((df['kind'] == kind) & (df['stage'] == stage)).sum())} rows)</h2>")
            for _, row in rows.iterrows():
                uri = _thumbnail(dataset, row) if not row["error"] else ""
                caption = html.escape(f"{Path(str(row['path'])).name} {row['start']:.1f}s {row['reject_reason']} {row['bucket']}")
                img = f'<img src="{uri}" alt="">' if uri else "<div style='width:160px;height:90px;background:#ccc'></div>"
                parts.append(f"<figure>{img}<figcaption>{caption}</figcaption></figure>")
    write_text_atomic(target, "\n".join(parts))
    return target
