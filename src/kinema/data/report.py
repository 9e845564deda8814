"""`kinema dataset stats` (a text summary) and `kinema dataset report` (a self-contained HTML page)."""

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


def stats_table(df: pd.DataFrame) -> str:
    """A plain-text summary: rows by kind, kept/rejected by reason per stage, buckets, camera classes."""
    lines: list[str] = []
    videos = df[df["kind"] == "video"]
    lines.append(f"rows: {len(df)}  (video clips: {len(videos)}, images: {int((df['kind'] == 'image').sum())})")
    lines.append(f"errors: {int((videos['error'] != '').sum())}  kept (stage >= 0): {int((videos['stage'] >= 0).sum())}")
    lines.append("")
    lines.append("rejections (stage -1) by reason:")
    for reason, n in videos.loc[videos["stage"] < 0, "reject_reason"].value_counts().sort_index().items():
        lines.append(f"  {reason:<14} {n:>7}")
    if "stage_reasons" in videos:
        lines.append("")
        lines.append("per stage: kept / rejected by the stage's first failing check")
        measured = videos[videos["reject_reason"].isin(["", "duplicate"]) | (videos["stage"] >= 0)]
        reasons = [json.loads(r) if r else [] for r in measured["stage_reasons"].fillna("[]")]
        dup = (measured["reject_reason"] == "duplicate").to_numpy()
        stages = max((len(r) for r in reasons), default=0)
        for k in range(stages):
            counts: dict[str, int] = {}
            kept = 0
            for r, d in zip(reasons, dup):
                reason = "duplicate" if d else (r[k] if k < len(r) else "")
                if reason:
                    counts[reason] = counts.get(reason, 0) + 1
                else:
                    kept += 1
            detail = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
            lines.append(f"  stage {k}: kept {kept:>6}  rejected {sum(counts.values()):>6}  ({detail})")
    kept = df[df["stage"] >= 0]
    if len(kept):
        lines.append("")
        lines.append("buckets (kept rows):")
        for bucket, n in kept.groupby(["kind", "bucket"]).size().items():
            lines.append(f"  {bucket[0]:<6} {bucket[1] or '-':<12} {n:>7}")
    if "camera_motion" in videos and videos["camera_motion"].notna().any():
        lines.append("")
        lines.append("camera motion (measured clips):")
        for name, n in videos["camera_motion"].dropna().value_counts().items():
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
