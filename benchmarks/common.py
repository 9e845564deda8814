"""Shared helpers of the benchmark scripts: timing with medians, machine description, RESULTS.md."""

from __future__ import annotations

import datetime
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")


def median_time(fn: Callable[[], object], repeats: int = 7, warmup: int = 2) -> float:
    """Median wall time of `fn()` in seconds over `repeats` runs, after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads (torch {torch.__version__}, CPU)"


def append_results(title: str, command: str, table: list[str], notes: str = "") -> None:
    """Append a dated section to benchmarks/RESULTS.md."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"\n## {title} — {stamp}\n", f"Machine: {machine()}  ", f"Command: `{command}`\n", *table]
    if notes:
        lines += ["", notes]
    with RESULTS.open("a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(table))
