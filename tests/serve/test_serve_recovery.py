"""Durability for real: `kill -9` the service mid-generation and while it starts, kill a worker alone.

Every accepted task must still finish, none may run twice at once (the run log shows each run ended
before the next began, and the killed service's workers are dead before it restarts), and no stray
output is left behind.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from serve_helpers import ServiceProcess, create, query, wait_finished

from kinema.serve.store import TaskStore

KEY = "recovery-key"
SLOW_STEPS = 60  # long enough for the test to catch a task in Processing


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie nobody has reaped yet counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def running_worker_pids(data_dir: Path) -> set[int]:
    store = TaskStore(data_dir / "tasks.db")
    try:
        return {r.pid for r in store.runs() if r.ended_at is None}
    finally:
        store.close()


def test_kill_9_loses_no_task_and_never_runs_one_twice(tiny_pipeline: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    service = ServiceProcess(tiny_pipeline, data, "--workers", "1", "--threads", "1", "--api-key", KEY)
    try:
        url = service.start()
        ids = [create(url, KEY, steps=SLOW_STEPS, seed=i)["task_id"] for i in range(3)]
        assert all(ids)

        # 1. kill -9 while the first task is being generated.
        wait_for(lambda: query(url, KEY, ids[0])["status"] == "Processing", 90, "the first task to be processing")
        workers = running_worker_pids(data)
        assert len(workers) == 1
        service.kill9()
        wait_for(lambda: not any(alive(p) for p in workers), 5, "the killed service's worker to die with it")

        # 2. Restart and kill -9 again at once, while the new worker is still loading.
        url = service.start()
        service.kill9()

        # 3. Restart: every task finishes.
        url = service.start()
        answers = [wait_finished(url, KEY, t, timeout_s=120) for t in ids]
        assert [a["status"] for a in answers] == ["Success"] * 3

        # 4. kill -9 the worker alone: the service gives its task back and starts a new worker.
        extra = create(url, KEY, steps=SLOW_STEPS, seed=9)["task_id"]
        wait_for(lambda: query(url, KEY, extra)["status"] == "Processing", 90, "the extra task to be processing")
        (worker,) = running_worker_pids(data)
        os.kill(worker, signal.SIGKILL)
        assert wait_finished(url, KEY, extra, timeout_s=120)["status"] == "Success"
    finally:
        service.stop()

    store = TaskStore(data / "tasks.db")
    for task_id in [*ids, extra]:
        runs = store.runs(task_id)
        assert [r.outcome for r in runs][-1] == "success" and [r.outcome for r in runs].count("success") == 1
        for before, after in zip(runs, runs[1:]):
            assert before.ended_at is not None and before.ended_at <= after.started_at, runs
    assert store.runs(ids[0])[0].outcome == "interrupted"
    assert [r.outcome for r in store.runs(extra)] == ["interrupted", "success"]
    outputs = sorted(p.name for p in (data / "files").iterdir())
    assert len(outputs) == 4 and all(p.endswith(".mp4") for p in outputs)  # no temporary files, no strays
    assert {store.get(t).file_path for t in [*ids, extra]} == {f"files/{name}" for name in outputs}
