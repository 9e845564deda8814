"""The one training skeleton: set-up -> loop (step, log, checkpoint on schedule, stop) -> export -> clean-up.

    run_dir = start_run(recipe, recipe_path)           # threads, the run folder, a copy of the recipe
    trainer = VAETrainer(recipe)                       # set-up: data, model, optimizer (a `Trainer`)
    output = run(trainer, recipe, run_dir, resume=True)

The three trainers (kinema.train.dit, .distill, .vae) each say what one step is and what the export
writes, bracketing a step's backward passes with `begin_step` (learning rate, cleared gradients) and
`optimizer_step` (clip, step, EMA). `run` is everything else, written once: resuming from the newest
checkpoint, the loop, logging, checkpoints every `checkpoint_every` steps and at the end
(distributed-aware, kinema.train.distributed), stopping early at `max_steps` (checkpointed, not
exported), and closing the logs. Every random draw of a step comes from `step_generator(seed, step)`
(kinema.train.checkpoint), so a resumed run continues with exactly the losses of an uninterrupted one.

Recipes share `RunRecipe` (run folder, seed, learning-rate schedule, logging and checkpoint cadence);
stages, where a recipe has them, are scheduled by `stage_at`.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import torch
from torch import Tensor, nn
from tqdm import tqdm

from kinema.train.checkpoint import EMA, ExtraState, latest_checkpoint
from kinema.train.distributed import Parallel, clip_grad_norm, load_training_checkpoint, save_training_checkpoint


@dataclass(frozen=True, kw_only=True)
class RunRecipe:
    """What every training recipe has. Each recipe sets its own defaults for `lr` and `warmup`.

    Attributes:
        run_dir: the run folder (checkpoints/, metrics.jsonl, tensorboard/, a copy of the recipe).
        lr, warmup, cooldown: the learning-rate schedule, see `lr_at`.
        seed: the initial weights and every step's random draws derive from it.
        checkpoint_every, log_every: in steps (a checkpoint is also written at the last step).
        threads: intra-op threads (None: torch's default, all cores).
    """

    run_dir: str
    lr: float
    warmup: int
    cooldown: int = 0
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 10
    threads: int | None = None

    @property
    def total_steps(self) -> int:
        raise NotImplementedError

    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer step `step` (0-based)."""
        return lr_at(step, self.lr, self.warmup, self.total_steps, self.cooldown)


def lr_at(step: int, base: float, warmup: int, total: int = 0, cooldown: int = 0) -> float:
    """Linear warm-up to `base` over `warmup` steps, constant, then (with `cooldown`) a linear decay
    over the last `cooldown` of `total` steps towards zero."""
    scale = min(1.0, (step + 1) / max(warmup, 1))
    if cooldown > 0:
        scale *= min(1.0, (total - step) / cooldown)
    return base * scale


class Stage(Protocol):
    steps: int


S = TypeVar("S", bound=Stage)


def stage_at(stages: Sequence[S], step: int) -> S:
    """The stage that global step `step` belongs to (stages run in order; past the end, the last)."""
    for stage in stages:
        if step < stage.steps:
            return stage
        step -= stage.steps
    return stages[-1]


class Trainer(Protocol):
    """What `run` needs from a trainer, whose constructor is the set-up."""

    kind: str  # "dit", "distill" or "vae": state.json's "kind" and the progress bar's label
    model: nn.Module  # the trained model, checkpointed with the optimizer and EMA
    optimizer: torch.optim.Optimizer
    ema: EMA | None
    extra: ExtraState  # more state checkpointed with them (the VAE's discriminator); {} for none

    def step(self, step: int) -> dict[str, float]:
        """One optimizer step (0-based `step`), every random draw from (seed, step); the scalars to log."""
        ...

    def export(self, run_dir: Path) -> Path:
        """Write the trained model for use (after the last step); where it went."""
        ...


def begin_step(trainer: Trainer, lr: float) -> None:
    """Before a step's backward passes: every parameter group at learning rate `lr`, the gradients cleared."""
    for group in trainer.optimizer.param_groups:
        group["lr"] = lr
    trainer.optimizer.zero_grad(set_to_none=True)


def optimizer_step(trainer: Trainer, parameters: Iterable[Tensor], max_norm: float) -> float:
    """After a step's backward passes: clip the gradients of `parameters` to a total norm of `max_norm`,
    step the optimizer and update the EMA. Returns the norm before clipping (all ranks agree)."""
    grad_norm = clip_grad_norm(parameters, max_norm)
    trainer.optimizer.step()
    if trainer.ema is not None:
        trainer.ema.update(trainer.model)
    return grad_norm


def set_threads(threads: int | None) -> None:
    """Use `threads` intra-op threads (None: torch's default, all cores)."""
    if threads is not None:
        torch.set_num_threads(threads)


def start_run(recipe: RunRecipe, recipe_path: Path | None, main: bool = True) -> Path:
    """Set the thread count, create the run folder and (on the main process) keep a copy of the recipe."""
    set_threads(recipe.threads)
    folder = Path(recipe.run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if recipe_path is not None and main:
        shutil.copyfile(recipe_path, folder / "recipe.yaml")
    return folder


def run(
    trainer: Trainer, recipe: RunRecipe, run_dir: Path, resume: bool = False, max_steps: int | None = None,
    parallel: Parallel | None = None,
) -> Path | None:
    """Run (or resume) a set-up trainer to the end of its recipe, then export.

    Args:
        resume: continue from the run folder's newest checkpoint, if there is one.
        max_steps: stop (after a checkpoint) at this global step without exporting, e.g. to split a
            run over sessions.
        parallel: this process's place in a torchrun job; None: one lone process.
    Returns:
        What the export wrote, or None when `max_steps` stopped the run before its end.
    """
    parallel = parallel or Parallel()
    step = 0
    found = latest_checkpoint(run_dir) if resume else None
    if found is not None:
        state = load_training_checkpoint(parallel, found, trainer.model, trainer.optimizer, trainer.ema, trainer.extra)
        step = state["step"]
        if parallel.is_main:
            print(f"resumed {run_dir} at step {step} from {found.name}")
    total = recipe.total_steps
    stop = total if max_steps is None else min(total, max_steps)
    log = Logger(run_dir, total, step, trainer.kind, rank=parallel.rank)
    try:
        while step < stop:
            scalars = trainer.step(step)
            step += 1
            log.step(step, scalars, every=recipe.log_every)
            if step % recipe.checkpoint_every == 0 or step == stop:
                save_training_checkpoint(parallel, run_dir, step, trainer.model, trainer.optimizer, trainer.ema,
                                         {"kind": trainer.kind}, extra=trainer.extra)
    finally:
        log.close()
    if step < total:
        return None
    return trainer.export(run_dir)


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
