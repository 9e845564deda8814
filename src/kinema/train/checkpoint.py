"""Run folders, atomic training checkpoints and the exponential moving average of weights.

A run folder holds `recipe.yaml` (a copy), `checkpoints/step-XXXXXXXX/` (model.safetensors,
ema.safetensors, optimizer.pt, state.json, and one NAME.pt per group of extra state, e.g. the VAE's
discriminator.pt) and `tensorboard/`. Every file of a checkpoint is written into a temporary folder that
is then renamed into place, so a kill at any moment leaves the previous checkpoint or the new one,
complete.
Every random draw of a training step is derived from (seed, step), so resuming from a checkpoint
continues with exactly the losses an uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from kinema.fsutil import atomic_folder, save_safetensors


class EMA:
    """Exponential moving average of a model's floating-point parameters (kept in fp32)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.float(), 1.0 - self.decay)

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into `model` (cast to its dtypes)."""
        sd = model.state_dict()
        model.load_state_dict({k: self.shadow.get(k, v).to(v.dtype) for k, v in sd.items()})


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A generator whose state depends only on (seed, step, stream): the key to exact resumption."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 8 + stream)


# Extra training state beside the model, optimizer and EMA: groups of modules or optimizers by name, each
# group written as NAME.pt holding {key: state_dict}, e.g. {"discriminator": {"model": d, "optimizer": o}}.
Stateful = nn.Module | torch.optim.Optimizer
ExtraState = Mapping[str, Mapping[str, Stateful]]


def _state_dict_cpu(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}


def save_extra_state(folder: Path, extra: ExtraState) -> None:
    """Write each group of `extra` as folder/NAME.pt."""
    for name, group in extra.items():
        torch.save({key: obj.state_dict() for key, obj in group.items()}, folder / f"{name}.pt")


def load_extra_state(folder: Path, extra: ExtraState) -> None:
    """Restore each group of `extra` from folder/NAME.pt, in place.

    Raises:
        FileNotFoundError: the checkpoint has no NAME.pt (it was written by a run without that state).
    """
    for name, group in extra.items():
        path = folder / f"{name}.pt"
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {folder} has no {path.name}: it was written by a run without a "
                                    f"{name}; resuming would start a fresh one")
        saved = torch.load(path, map_location="cpu", weights_only=True)
        for key, obj in group.items():
            obj.load_state_dict(saved[key])


def save_checkpoint(
    run_dir: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, ema: EMA | None,
    state: dict, keep: int = 2, extra: ExtraState | None = None,
) -> Path:
    """Write the training state at `step` atomically; keep the newest `keep` checkpoints.

    `extra`: more state to write into the same step folder (see `ExtraState`), inside the atomic step.
    """
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    with atomic_folder(final) as tmp:  # hidden (".step-..."): `latest_checkpoint` never sees it
        save_safetensors(_state_dict_cpu(model), tmp / "model.safetensors")
        if ema is not None:
            save_safetensors({k: v.contiguous() for k, v in ema.shadow.items()}, tmp / "ema.safetensors")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        save_extra_state(tmp, extra or {})
        (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=2) + "\n")
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    found = sorted(p for p in (run_dir / "checkpoints").glob("step-*") if (p / "state.json").is_file())
    return found[-1] if found else None


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, ema: EMA | None, extra: ExtraState | None = None
) -> dict:
    """Restore model, optimizer, EMA and `extra` from a checkpoint folder; returns its state.json."""
    model.load_state_dict(load_file(path / "model.safetensors"))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    if ema is not None:
        shadow = load_file(path / "ema.safetensors")
        ema.shadow = {k: shadow[k] for k in ema.shadow}
    load_extra_state(path, extra or {})
    return json.loads((path / "state.json").read_text())
