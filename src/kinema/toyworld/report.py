"""The evaluation reports on disk: adherence, the (steps, shift) sweep and text sensitivity.

    write_adherence_report(report, "outputs/adherence")   # adherence.json + adherence.png (contact sheet)
    write_sweep_report(sweep, "outputs/sweep")             # sweep.json + sweep.md (a markdown table)
    write_sensitivity_report(report, "outputs/sensitivity")  # sensitivity.json

Every file is written atomically (`kinema.fsutil`): a reader, or a run killed half-way, never leaves
half a report behind. The reports themselves are built by `adherence` and `sensitivity`.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from kinema.fsutil import write_bytes_atomic, write_text_atomic
from kinema.toyworld.adherence import AdherenceReport, EvalCase
from kinema.toyworld.judge import ATTRIBUTES, Verdict
from kinema.toyworld.sensitivity import SensitivityReport


def contact_sheet(
    videos: Sequence[np.ndarray], labels: Sequence[str], path: str | os.PathLike, columns: int = 5, zoom: int = 2
) -> Path:
    """Write a PNG with one row per video: a label line above `columns` evenly spaced frames.

    Args:
        videos: (T, H, W, 3) uint8 arrays (sizes may differ).
        labels: one line of text per video.
        path: output PNG (written atomically).
        columns: frames shown per video.
        zoom: nearest-neighbour magnification of the frames.
    """
    if not videos:
        raise ValueError("a contact sheet needs at least one video")
    rows = []
    for video, label in zip(videos, labels):
        idx = np.linspace(0, len(video) - 1, min(columns, len(video))).round().astype(int)
        strip = np.concatenate([np.pad(video[k], ((0, 0), (0, 2), (0, 0)), constant_values=255) for k in idx], 1)
        image = Image.fromarray(strip).resize((strip.shape[1] * zoom, strip.shape[0] * zoom), Image.NEAREST)
        canvas = Image.new("RGB", (image.width, image.height + 14), "white")
        canvas.paste(image, (0, 14))
        ImageDraw.Draw(canvas).text((2, 1), label, fill="black")
        rows.append(canvas)
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height + 4 for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height + 4
    png = io.BytesIO()
    sheet.save(png, format="PNG")
    return write_bytes_atomic(path, png.getvalue())


def verdict_label(case: EvalCase, verdict: Verdict, width: int = 90) -> str:
    """'color+ shape- motion+ camera+ | a red circle moves to the right' (cut to `width` characters)."""
    marks = " ".join(f"{a}{'+' if ok else '-' if ok is False else '?'}" for a, ok in verdict.scores().items())
    text = f"{marks} | {case.prompt.split('.')[0]}"
    return text if len(text) <= width else text[: width - 3] + "..."


def write_adherence_report(report: AdherenceReport, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write `adherence.json` and `adherence.png` (contact sheet of the kept videos) into `out`."""
    folder = Path(out)
    labels = [verdict_label(c, v) for c, v in zip(report.cases, report.verdicts)]
    sheet = contact_sheet(report.videos, labels[: len(report.videos)], folder / "adherence.png")
    summary = write_text_atomic(folder / "adherence.json", json.dumps(report.to_dict(), indent=1))
    return summary, sheet


@dataclass(frozen=True)
class SweepReport:
    """Adherence and latency at every sampling setting of a sweep (rows from `adherence.sweep_point`)."""

    split: str
    videos: int
    rows: list[dict]

    def table(self) -> str:
        """A markdown table: one row per setting, per-attribute accuracy and seconds per video."""
        lines = ["| steps | shift | " + " | ".join(ATTRIBUTES) + " | s / video |", "|---" * (len(ATTRIBUTES) + 3) + "|"]
        for r in self.rows:
            cells = [f"{100 * r[a]:.0f}%" for a in ATTRIBUTES]
            lines.append(f"| {r['steps']} | {r['shift']:g} | " + " | ".join(cells) + f" | {r['latency_s']:.2f} |")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"split": self.split, "videos": self.videos, "rows": self.rows}


def write_sweep_report(report: SweepReport, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write `sweep.json` and `sweep.md` (the markdown table) into `out`."""
    folder = Path(out)
    summary = write_text_atomic(folder / "sweep.json", json.dumps(report.to_dict(), indent=2) + "\n")
    table = write_text_atomic(folder / "sweep.md", report.table() + "\n")
    return summary, table


def write_sensitivity_report(report: SensitivityReport, out: str | os.PathLike) -> Path:
    """Write `sensitivity.json` into `out`."""
    return write_text_atomic(Path(out) / "sensitivity.json", json.dumps(report.to_dict(), indent=2) + "\n")
