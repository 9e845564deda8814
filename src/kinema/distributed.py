"""Processes that torchrun starts: the environment, the process group, each rank's device and groups.

    job = join_torchrun(sequence=torchrun_world_size())   # a lone process: Job(), nothing initialised
    ...
    job.close()

`check_device` turns a `--device` argument into a device this machine has, or one sentence why not.

Both generation (`kinema generate` under torchrun shares each video's tokens over the ranks, Ulysses
sequence parallelism) and training (`kinema.train.distributed` adds data parallelism and sharded
checkpoints on top) start here. Ranks r = d·S + s: data-parallel shard d (of W/S), position s in a
sequence-parallel group of S.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist


def check_device(name: str) -> torch.device:
    """The torch device `name` ("cpu", "cuda", "cuda:1", "mps"), checked to exist on this machine.

    Raises:
        ValueError: one sentence saying why `name` cannot be used (e.g. a CPU-only build of torch).
    """
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r} is not a torch device; use e.g. cpu, cuda or cuda:1") from None
    if device.type == "cuda":
        if torch.version.cuda is None:
            raise ValueError(f"device {name!r} needs a CUDA build of torch, and this one ({torch.__version__}) "
                             "is CPU-only; use cpu")
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} needs a CUDA GPU, and torch sees none on this machine; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ValueError(f"device {name!r} does not exist: this machine has {count} CUDA GPU(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} needs Apple's Metal (MPS), which this torch cannot use here; use cpu")
    return device


def launched_by_torchrun() -> bool:
    """True in a process that torchrun started (it sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def torchrun_world_size() -> int:
    """The number of processes torchrun started, 1 without torchrun."""
    return int(os.environ["WORLD_SIZE"]) if launched_by_torchrun() else 1


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Run `python -m kinema ARGV` as `nproc` processes on this machine through torchrun; its exit code."""
    if nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {nproc}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "kinema", *argv]
    return subprocess.call(cmd)


@dataclass(frozen=True)
class Job:
    """This process's place in a torchrun job: rank, device, groups. `Job()` is one lone process on the CPU."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    mesh: dist.DeviceMesh | None = None  # all ranks; None for a lone process
    sp_group: dist.ProcessGroup | None = None  # this rank's sequence-parallel group; None without one

    @property
    def distributed(self) -> bool:
        return self.mesh is not None

    @property
    def is_main(self) -> bool:
        """Rank 0, the one that writes files, logs and prints."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group (a lone process has none)."""
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def join_torchrun(sequence: int = 1, timeout_s: float = 1800.0) -> Job:
    """Join the torchrun job this process belongs to (gloo on CPU, nccl on CUDA); `Job()` without torchrun.

    Args:
        sequence: S, the ranks that share each sample's tokens; it must divide the number of processes.
        timeout_s: how long a collective waits for the other ranks.
    Raises:
        ValueError: if the number of processes is not a multiple of `sequence`.
    """
    if not launched_by_torchrun():
        return Job()
    rank, world, local_rank = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if sequence < 1 or world % sequence:
        raise ValueError(f"parallel.sequence {sequence} must divide the number of processes ({world})")
    device = torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(seconds=timeout_s),
                            device_id=device if device.type == "cuda" else None)
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(device.type, (world,))
    sp_group = None
    if sequence > 1:
        grid = init_device_mesh(device.type, (world // sequence, sequence), mesh_dim_names=("dp", "sp"))
        sp_group = grid["sp"].get_group()
    return Job(rank, world, device, mesh, sp_group)
