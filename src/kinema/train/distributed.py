"""Distributed training from torchrun's environment: data parallel (DDP or FSDP2) and sequence parallel.

Joining the job (environment, process group, device, sequence-parallel group) is `kinema.distributed`'s,
shared with generation; this module adds what training needs on top.

    torchrun --nproc_per_node=N -m kinema train CONFIG      # or: kinema train --nproc N CONFIG

The recipe's `parallel:` section (`ParallelConfig`) says how the processes torchrun starts share the
work. `sequence` ranks share each sample's tokens (Ulysses, kinema.models.parallel); the world is split
into world/sequence data-parallel groups that share each batch, with parameters either replicated
(`data: ddp`) or sharded over every rank (`data: fsdp`, FSDP2's `fully_shard` of each DiT block, then
the root, optionally computing in bf16). Activation checkpointing is the recipe's `gradient_checkpointing`.
A plain `kinema train` is one process: the section does not apply.

Exactness. Every rank draws the whole batch from the step's generator (the numbers one process would
draw) and keeps its share, so a distributed run sees the data of a one-process run and, in fp32, its
losses and weights up to float rounding. The ranks of a sequence-parallel group compute parts of one
gradient that must be summed, while DDP and FSDP average over all W ranks, so each rank scales its loss
by the group size S: (1/W)·Σ_ranks S·g_rank = (1/D)·Σ_data-parallel shards (whole gradient), D = W/S.

Checkpoints. Under torchrun, torch.distributed.checkpoint writes `dcp/` into the step folder (each rank
its own shards, rank 0 the metadata; a file system all ranks share). It reloads on any number of ranks,
one process included; a one-process checkpoint (model.safetensors + optimizer.pt) loads into a
distributed run too. Replicated extra state (kinema.train.checkpoint.ExtraState) is written whole by
rank 0 into the same step folder before it is renamed into place. Side effects (files, logs, prints)
happen on rank 0 only.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Literal

import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import Tensor, nn

from kinema.distributed import Job, join_torchrun
from kinema.models.dit import DiT
from kinema.models.parallel import enable_sequence_parallel
from kinema.models.text import TextEmbedding
from kinema.train.checkpoint import EMA, ExtraState, load_checkpoint, load_extra_state, save_checkpoint, save_extra_state

DCP_DIR = "dcp"  # the torch.distributed.checkpoint folder inside a step folder


@dataclass(frozen=True)
class ParallelConfig:
    """How the processes of a torchrun job share the training work (the recipe's `parallel:` section).

    Attributes:
        data: "ddp" replicates the parameters and all-reduces gradients; "fsdp" shards parameters,
            gradients and optimizer state over all ranks (FSDP2, one unit per DiT block plus the root).
        sequence: ranks sharing each sample's tokens (Ulysses); it must divide the number of processes
            and the model's heads. The data-parallel degree is processes / sequence.
        mixed_precision: "bf16" computes in bfloat16 with fp32 weights, optimizer and gradient reduction
            (FSDP2's MixedPrecisionPolicy, so it needs data: fsdp); "fp32" computes in float32.
    """

    data: Literal["ddp", "fsdp"] = "ddp"
    sequence: int = 1
    mixed_precision: Literal["fp32", "bf16"] = "fp32"

    def __post_init__(self) -> None:
        if self.sequence < 1:
            raise ValueError(f"parallel.sequence must be at least 1, got {self.sequence}")
        if self.mixed_precision == "bf16" and self.data != "fsdp":
            raise ValueError("parallel.mixed_precision bf16 needs data: fsdp (FSDP2's mixed precision)")


@dataclass(frozen=True)
class Parallel(Job):
    """This process's place in the job (a `Job`) and how it shares the training work. `Parallel()` is one
    lone process.

    Ranks r = d·S + s: data-parallel shard d (of D = W/S), position s in its sequence-parallel group of S.
    """

    config: ParallelConfig = field(default_factory=ParallelConfig)

    @property
    def sequence(self) -> int:
        return self.config.sequence if self.distributed else 1

    @property
    def data_parallel(self) -> int:
        return self.world_size // self.sequence

    @property
    def data_rank(self) -> int:
        return self.rank // self.sequence

    @property
    def loss_scale(self) -> float:
        """Multiply the loss by this before backward (see the module docstring): the sequence-parallel degree."""
        return float(self.sequence)

    def wrap(self, model: DiT) -> nn.Module:
        """Move `model` to this rank's device and parallelise it; returns the module to call forward on.

        `model` itself stays the DiT (with FSDP its parameters become sharded DTensors in place): build the
        optimizer and the EMA from it, and checkpoint it.
        """
        model.to(self.device)
        if not self.distributed:
            return model
        if self.sequence > 1:
            enable_sequence_parallel(model, self.sp_group)
        if self.config.data == "fsdp":
            from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

            # The DiT casts its inputs itself; FSDP casting them too would round timesteps and RoPE tables.
            bf16 = self.config.mixed_precision == "bf16"
            policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None,
                                          reduce_dtype=torch.float32, cast_forward_inputs=False)
            for block in (*model.double_blocks, *model.single_blocks):
                fully_shard(block, mesh=self.mesh, mp_policy=policy)
            fully_shard(model, mesh=self.mesh, mp_policy=policy)
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[self.device] if self.device.type == "cuda" else None)

    def shard_batch(self, *tensors: Tensor) -> list[Tensor]:
        """This rank's data-parallel share of each (B, ...) tensor, on its device."""
        d = self.data_parallel
        b = tensors[0].shape[0]
        if b % d:
            raise ValueError(f"a micro-batch of {b} samples cannot be split evenly over {d} data-parallel ranks: "
                             f"make every bucket's batch_size a multiple of {d}")
        k = b // d
        return [t[self.data_rank * k : (self.data_rank + 1) * k].to(self.device) for t in tensors]

    def shard_text(self, text: TextEmbedding) -> TextEmbedding:
        """This rank's data-parallel share of B prompts, on its device (as `shard_batch`)."""
        states, mask, pooled = self.shard_batch(text.states, text.mask, text.pooled)
        return TextEmbedding(states, mask, pooled)

    def mean(self, value: float) -> float:
        """The mean of a per-rank number over all ranks (e.g. a loss: equal within a sequence-parallel group)."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.item() / self.world_size

    def full_model(self, model: DiT) -> DiT | None:
        """The whole model on rank 0 (FSDP's shards gathered into a plain DiT); None on the other ranks."""
        from torch.distributed.fsdp import FSDPModule

        if not isinstance(model, FSDPModule):
            return model if self.is_main else None
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if not self.is_main:
            return None
        with torch.device("meta"):
            plain = DiT(model.cfg)
        plain.load_state_dict(state, assign=True)
        return plain


def clip_grad_norm(parameters: Iterable[Tensor], max_norm: float) -> float:
    """Clip gradients to a total norm of `max_norm`; returns the norm before clipping (all ranks agree)."""
    norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    if hasattr(norm, "full_tensor"):  # FSDP: a DTensor computed from every rank's shards
        norm = norm.full_tensor()
    return norm.item()


def init_parallel(config: ParallelConfig, timeout_s: float = 1800.0) -> Parallel:
    """Join the torchrun job this process belongs to (gloo on CPU, nccl on CUDA); a lone process otherwise.

    Raises:
        ValueError: if the number of processes is not a multiple of `config.sequence`.
    """
    job = join_torchrun(config.sequence, timeout_s)  # `Job()` without torchrun: a lone process on the CPU
    return Parallel(job.rank, job.world_size, job.device, job.mesh, job.sp_group, config=config)


# ------------------------------------------------------------------------------------------- checkpoints


def _dcp_state(model: DiT, optimizer: torch.optim.Optimizer, ema: EMA | None) -> dict:
    """Model, optimizer and EMA state keyed by parameter name (sharded DTensors under FSDP)."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optim_state}
    if ema is not None:
        state["ema"] = ema.shadow
    return state


def save_training_checkpoint(
    parallel: Parallel, run_dir: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
    ema: EMA | None, state: dict, keep: int = 2, extra: ExtraState | None = None,
) -> Path:
    """Write the training state at `step`: one-process format for a lone process, sharded under torchrun.

    Either way the step folder appears complete or not at all (written aside, renamed into place), and
    only the newest `keep` are kept. `extra` (kinema.train.checkpoint.ExtraState) is replicated state,
    written whole by rank 0 inside the same atomic step.
    """
    if not parallel.distributed:
        return save_checkpoint(run_dir, step, model, optimizer, ema, state, keep, extra)
    import torch.distributed.checkpoint as dcp

    root = run_dir / "checkpoints"
    final, tmp = root / f"step-{step:08d}", root / f".tmp-step-{step:08d}"
    if parallel.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    parallel.barrier()
    dcp.save(_dcp_state(model, optimizer, ema), checkpoint_id=tmp / DCP_DIR)  # each rank writes its shards
    parallel.barrier()
    if parallel.is_main:
        save_extra_state(tmp, extra or {})
        meta = {**state, "step": step, "world_size": parallel.world_size, "parallel": asdict(parallel.config)}
        (tmp / "state.json").write_text(json.dumps(meta, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in sorted(root.glob("step-*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    parallel.barrier()
    return final


def load_training_checkpoint(
    parallel: Parallel, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, ema: EMA | None,
    extra: ExtraState | None = None,
) -> dict:
    """Restore model, optimizer, EMA and `extra` from a step folder written with any number of ranks; its
    state.json."""
    if not parallel.distributed and not (path / DCP_DIR).is_dir():
        return load_checkpoint(path, model, optimizer, ema, extra)
    if (path / DCP_DIR).is_dir():
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import set_state_dict

        state = _dcp_state(model, optimizer, ema)
        dcp.load(state, checkpoint_id=path / DCP_DIR)  # reads the pieces this rank's shards need, in place
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
    else:
        _load_one_process_checkpoint(path, model, optimizer, ema)
    load_extra_state(path, extra or {})
    return json.loads((path / "state.json").read_text())


def _load_one_process_checkpoint(path: Path, model: DiT, optimizer: torch.optim.Optimizer, ema: EMA | None) -> None:
    """Load a one-process checkpoint (whole tensors) into a distributed model, sharding where FSDP does."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict
    from torch.distributed.tensor import DTensor, distribute_tensor

    saved = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
    names = [name for name, _ in model.named_parameters()]  # the optimizer's parameter order
    optim_state = {
        "state": {names[i]: s for i, s in saved["state"].items()},
        "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in saved["param_groups"]],
    }
    set_state_dict(model, optimizer, model_state_dict=load_file(path / "model.safetensors"),
                   optim_state_dict=optim_state, options=StateDictOptions(full_state_dict=True))
    if ema is not None:
        whole = load_file(path / "ema.safetensors")

        def like(full: Tensor, ref: Tensor) -> Tensor:
            if isinstance(ref, DTensor):
                return distribute_tensor(full.to(ref.device), ref.device_mesh, ref.placements)
            return full.to(ref.device)

        ema.shadow = {k: like(whole[k], v) for k, v in ema.shadow.items()}
