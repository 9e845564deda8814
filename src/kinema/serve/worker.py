"""Generation workers: processes that claim tasks from the store, generate, and record the outcome.

Each worker is its own process (`python -m kinema.serve.worker CONFIG_JSON`), so a crash in torch or
an out-of-memory kill takes down one run, not the API. A worker loads the pipeline once, then loops:
claim the oldest waiting task -> generate -> write the mp4 to a temporary file and rename it into
`files/` -> record Success (or Fail with a message). It runs at a lower CPU priority than the API,
so status queries stay fast while it computes.

Workers never outlive the service: each asks the kernel to kill it when its parent dies
(`PR_SET_PDEATHSIG`), and also exits when it sees it has been re-parented. So after a `kill -9` of
the service no old worker is left holding a task when the restarted service recovers it.

`WorkerPool` runs in the API process: it starts the workers, restarts any that die (with backoff),
and hands a dead worker's task back to the queue (`TaskStore.recover`).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kinema.serve.protocol import INVALID_PARAMS, UNKNOWN_ERROR
from kinema.serve.store import Claim, TaskStore

if TYPE_CHECKING:
    from kinema.pipeline import Pipeline

log = logging.getLogger("kinema.serve.worker")

_PR_SET_PDEATHSIG = 1
NICENESS = 10  # generation yields the CPU to the API process


@dataclass(frozen=True)
class WorkerConfig:
    """What one worker process needs (passed as JSON on its command line)."""

    worker_id: str
    checkpoint: str
    data_dir: str
    device: str
    threads: int | None
    parent_pid: int
    poll_s: float = 0.1


def run_worker(cfg: WorkerConfig) -> None:
    """The worker process: load the pipeline, then claim and run tasks until told to stop."""
    _die_with_parent(cfg.parent_pid)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    import torch
    from transformers.utils import logging as transformers_logging

    from kinema.pipeline import Pipeline

    transformers_logging.disable_progress_bar()  # one bar per worker start is noise in a service log

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dtype = torch.bfloat16 if cfg.device.startswith("cuda") else None
    pipe = Pipeline.from_pretrained(cfg.checkpoint, device=cfg.device, dtype=dtype)
    try:
        os.nice(NICENESS)  # after loading: a (re)starting worker should be ready soon
    except OSError:
        pass
    data_dir = Path(cfg.data_dir)
    store = TaskStore(data_dir / "tasks.db")
    log.info("worker %s (pid %d) ready", cfg.worker_id, os.getpid())
    while not stop.is_set():
        if os.getppid() != cfg.parent_pid:
            break  # the service is gone; its successor will take our task back
        claim = store.claim(cfg.worker_id, os.getpid())
        if claim is None:
            stop.wait(cfg.poll_s)
            continue
        run_task(pipe, store, claim, data_dir)
    store.close()


def run_task(pipe: Pipeline, store: TaskStore, claim: Claim, data_dir: Path) -> None:
    """Generate one claimed task and record its outcome; never raises for a task's own failure."""
    from kinema.media import write_mp4

    task = claim.task
    if not store.mark_processing(claim):
        return
    try:
        video = pipe(task.prompt, task.params)
    except ValueError as e:  # the pipeline's model-dependent checks (e.g. guidance on a model without it)
        store.fail(claim, INVALID_PARAMS, f"invalid params, {e}")
        return
    except Exception as e:  # noqa: BLE001 -- one task's failure (e.g. out of memory) must not stop the worker
        log.exception("task %s failed", task.task_id)
        store.fail(claim, UNKNOWN_ERROR, f"generation failed: {type(e).__name__}: {e}")
        return
    # The claim token in the name keeps a run that lost its task from touching the winner's file.
    rel = f"files/{task.file_id}-{claim.token[:12]}.mp4"
    path = data_dir / rel
    try:
        write_mp4(path, video.frames, video.fps)  # temporary file + rename
    except OSError as e:
        store.fail(claim, UNKNOWN_ERROR, f"could not write the video: {e}")
        return
    t, h, w = video.frames.shape[:3]
    if not store.complete(claim, rel, path.stat().st_size, int(w), int(h)):
        path.unlink(missing_ok=True)


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


@dataclass
class _Slot:
    index: int
    generation: int = 0
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    quick_deaths: int = 0

    @property
    def worker_id(self) -> str:
        return f"worker-{self.index}.{self.generation}"


class WorkerPool:
    """Starts `n` worker processes and keeps them running; call `check()` periodically.

    Args:
        n: number of workers.
        checkpoint: pipeline folder.
        data_dir: the service's data folder.
        device: torch device.
        threads: torch threads per worker (None: CPUs divided among the workers).
        store: the API process's store, used to take a dead worker's task back.
        max_attempts: passed to `TaskStore.recover`.
    """

    RESTART_BACKOFF_S = (1.0, 5.0, 30.0, 120.0)
    QUICK_DEATH_S = 60.0  # a worker dying sooner than this after starting counts toward backoff

    def __init__(
        self, n: int, checkpoint: Path, data_dir: Path, device: str, threads: int | None, store: TaskStore,
        max_attempts: int,
    ) -> None:
        self.checkpoint, self.data_dir, self.device = checkpoint, data_dir, device
        self.threads = threads or (max(1, (os.cpu_count() or 1) // n) if n else None)
        self.store, self.max_attempts = store, max_attempts
        self.slots = [_Slot(i) for i in range(n)]

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)

    def pids(self) -> list[int]:
        return [s.process.pid for s in self.slots if s.process is not None and s.process.poll() is None]

    def check(self) -> None:
        """Reap dead workers, give their tasks back, and restart them (later, if they keep dying)."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is not None:
                code = slot.process.returncode
                lived = now - slot.started_at
                slot.process = None
                recovered = self.store.recover(self.max_attempts, worker=slot.worker_id)
                slot.quick_deaths = slot.quick_deaths + 1 if lived < self.QUICK_DEATH_S else 0
                delay = self.RESTART_BACKOFF_S[min(slot.quick_deaths, len(self.RESTART_BACKOFF_S)) - 1] \
                    if slot.quick_deaths else 0.0
                slot.restart_at = now + delay
                log.warning("%s exited with code %s after %.0f s; task(s) %s requeued; restarting in %.0f s",
                            slot.worker_id, code, lived, recovered or "none", delay)
            if slot.process is None and now >= slot.restart_at:
                self._spawn(slot)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop every worker (SIGTERM, then SIGKILL) and queue their unfinished tasks again."""
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.terminate()
        deadline = time.monotonic() + timeout_s
        for slot in self.slots:
            if slot.process is None:
                continue
            try:
                slot.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                slot.process.kill()
                slot.process.wait()
            self.store.recover(self.max_attempts, worker=slot.worker_id, refund=True)
            slot.process = None

    def _spawn(self, slot: _Slot) -> None:
        slot.generation += 1
        cfg = WorkerConfig(
            worker_id=slot.worker_id, checkpoint=str(self.checkpoint), data_dir=str(self.data_dir),
            device=self.device, threads=self.threads, parent_pid=os.getpid(),
        )
        slot.process = subprocess.Popen([sys.executable, "-m", "kinema.serve.worker", json.dumps(asdict(cfg))])
        slot.started_at = time.monotonic()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m kinema.serve.worker CONFIG_JSON (started by `kinema serve`)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    run_worker(WorkerConfig(**json.loads(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
