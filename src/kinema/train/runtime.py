"""What every training loop shares: threads, the learning-rate schedule, and logging."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
from tqdm import tqdm


def set_threads(threads: int | None) -> None:
    """Use `threads` intra-op threads (None: torch's default, all cores)."""
    if threads is not None:
        torch.set_num_threads(threads)


def start_run(run_dir: str, threads: int | None, recipe_path: Path | None, main: bool = True) -> Path:
    """Set the thread count, create the run folder and (on the main process) keep a copy of the recipe."""
    set_threads(threads)
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if recipe_path is not None and main:
        shutil.copyfile(recipe_path, folder / "recipe.yaml")
    return folder


def lr_at(step: int, base: float, warmup: int, total: int = 0, cooldown: int = 0) -> float:
    """Linear warm-up to `base` over `warmup` steps, constant, then (with `cooldown`) a linear decay
    over the last `cooldown` of `total` steps towards zero."""
    scale = min(1.0, (step + 1) / max(warmup, 1))
    if cooldown > 0:
        scale *= min(1.0, (total - step) / cooldown)
    return base * scale


class Logger:
    """A progress bar, TensorBoard scalars and `metrics.jsonl` (one line per step), on rank 0 only."""

    def __init__(self, run_dir: Path, total: int, start: int, desc: str, rank: int = 0) -> None:
        self.enabled = rank == 0
        self.bar = tqdm(total=total, initial=start, desc=desc, unit="step", disable=not self.enabled, dynamic_ncols=True)
        self.writer = None
        if self.enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self.metrics = (run_dir / "metrics.jsonl").open("a") if self.enabled else None
        self.last = time.perf_counter()

    def step(self, step: int, scalars: dict[str, float], every: int = 10) -> None:
        if not self.enabled:
            return
        self.bar.update(1)
        self.metrics.write(json.dumps({"step": step, **scalars}) + "\n")
        self.metrics.flush()
        if step % every == 0:
            now = time.perf_counter()
            scalars = {**scalars, "sec_per_step": (now - self.last) / every}
            self.last = now
            for k, v in scalars.items():
                self.writer.add_scalar(f"train/{k}", v, step)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in scalars.items() if k in ("loss", "sec_per_step")})

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.writer.close()
            self.metrics.close()
