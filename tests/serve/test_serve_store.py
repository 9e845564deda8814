"""TaskStore: claims, stale workers, recovery after crashes, the queue bound, the callback outbox, retention."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kinema.options import SamplingOptions
from kinema.serve.store import QueueFull, TaskStore, new_id


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> TaskStore:
    return TaskStore(tmp_path / "tasks.db", clock=clock)


def add(store: TaskStore, prompt: str = "a red circle", callback: str | None = None, max_queue: int = 100):
    return store.create(owner="o", model="T2V-01", prompt=prompt, params=SamplingOptions(seed=1),
                        callback_url=callback, max_queue=max_queue)


def test_claims_oldest_first_and_each_task_once(store: TaskStore, clock: Clock) -> None:
    first = add(store, "first")
    clock.now += 1
    second = add(store, "second")
    a, b = store.claim("w1", 1), store.claim("w2", 2)
    assert (a.task.task_id, b.task.task_id) == (first.task_id, second.task_id)
    assert store.claim("w3", 3) is None
    assert store.get(first.task_id).status == "Preparing" and store.get(first.task_id).attempts == 1
    assert store.mark_processing(a) and store.get(first.task_id).status == "Processing"
    assert store.complete(a, "files/x.mp4", 100, 32, 32)
    done = store.get(first.task_id)
    assert (done.status, done.file_path, done.video_width, done.finished_at) == ("Success", "files/x.mp4", 32, clock.now)
    assert [r.outcome for r in store.runs(first.task_id)] == ["success"]


def test_a_worker_that_lost_its_task_cannot_record_an_outcome(store: TaskStore) -> None:
    task = add(store)
    stale = store.claim("old-worker", 1)
    assert store.recover(max_attempts=3) == [task.task_id]  # the service restarted under it
    fresh = store.claim("new-worker", 2)
    assert not store.mark_processing(stale)
    assert not store.complete(stale, "files/stale.mp4", 1, 32, 32)
    assert not store.fail(stale, 1000, "stale")
    assert store.complete(fresh, "files/fresh.mp4", 1, 32, 32)
    assert store.get(task.task_id).file_path == "files/fresh.mp4"
    runs = store.runs(task.task_id)
    assert [(r.worker, r.outcome) for r in runs] == [("old-worker", "interrupted"), ("new-worker", "success")]
    assert runs[0].ended_at <= runs[1].started_at  # never two runs at once


def test_concurrent_workers_never_claim_the_same_task(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "tasks.db")
    ids = {add(store, max_queue=1000).task_id for _ in range(120)}
    claimed: list[list[str]] = [[], [], []]

    def worker(i: int) -> None:
        own = TaskStore(tmp_path / "tasks.db")  # one connection per worker, as in separate processes
        while (claim := own.claim(f"w{i}", i)) is not None:
            claimed[i].append(claim.task.task_id)
        own.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    everything = [t for c in claimed for t in c]
    assert sorted(everything) == sorted(ids)  # each task claimed exactly once


def test_recovery_gives_up_after_max_attempts(store: TaskStore) -> None:
    task = add(store)
    for _ in range(2):
        store.claim("w", 1)
        store.recover(max_attempts=3)
        assert store.get(task.task_id).status == "Queueing"
    store.claim("w", 1)
    store.recover(max_attempts=3)
    failed = store.get(task.task_id)
    assert failed.status == "Fail" and failed.attempts == 3 and failed.error_code == 1000
    assert "interrupted 3 times" in failed.error_msg


def test_recovery_of_one_worker_and_graceful_refund(store: TaskStore) -> None:
    mine, theirs = add(store), add(store)
    store.claim("dead", 1)
    store.claim("alive", 2)
    assert store.recover(max_attempts=1, worker="dead", refund=True) == [mine.task_id]
    assert store.get(mine.task_id).status == "Queueing" and store.get(mine.task_id).attempts == 0
    assert store.get(theirs.task_id).status == "Preparing"


def test_queue_bound_counts_waiting_tasks_only(store: TaskStore) -> None:
    add(store, max_queue=2)
    add(store, max_queue=2)
    with pytest.raises(QueueFull):
        add(store, max_queue=2)
    store.claim("w", 1)  # one task leaves the queue
    add(store, max_queue=2)


def test_callback_outbox_pushes_each_status_change_in_order(store: TaskStore, clock: Clock) -> None:
    task = add(store, callback="http://127.0.0.1:9/hook")
    clock.now += 1
    plain = add(store)
    claim = store.claim("w", 1)
    store.mark_processing(claim)  # Preparing -> Processing: same push status, no second push
    store.complete(claim, "files/a.mp4", 10, 32, 32)
    events = store.due_callbacks()
    assert [e.task_id for e in events] == [task.task_id]  # one at a time per task, in order
    assert events[0].body == {"task_id": task.task_id, "status": "processing",
                              "base_resp": {"status_code": 0, "status_msg": "success"}}
    store.callback_failed(events[0].id, retry_in_s=None)
    events = store.due_callbacks()
    assert events[0].body["status"] == "success" and events[0].body["file_id"] == str(task.file_id)
    store.callback_sent(events[0].id)
    assert store.due_callbacks() == []
    assert plain.callback_url is None


def test_failed_push_is_retried_later(store: TaskStore, clock: Clock) -> None:
    add(store, callback="http://127.0.0.1:9/hook")
    claim = store.claim("w", 1)
    store.fail(claim, 2013, "invalid params, no")
    first = store.due_callbacks()[0]
    store.callback_failed(first.id, retry_in_s=5.0)
    assert store.due_callbacks() == []
    clock.now += 5
    again = store.due_callbacks()[0]
    assert again.id == first.id and again.attempts == 1


def test_failure_push_carries_the_reason(store: TaskStore) -> None:
    add(store, callback="http://127.0.0.1:9/hook")
    claim = store.claim("w", 1)
    store.fail(claim, 2013, "invalid params, no")
    bodies = [e.body for e in store.due_callbacks()]
    store.callback_sent(store.due_callbacks()[0].id)
    bodies += [e.body for e in store.due_callbacks()]
    assert [b["status"] for b in bodies] == ["processing", "failed"]
    assert bodies[1]["base_resp"] == {"status_code": 2013, "status_msg": "invalid params, no"}


def test_expire_deletes_old_finished_tasks_only(store: TaskStore, clock: Clock) -> None:
    old = add(store)
    store.complete(store.claim("w", 1), "files/old.mp4", 1, 32, 32)
    clock.now += 100
    pending = add(store)
    assert store.expire(finished_before=clock.now - 50) == ["files/old.mp4"]
    assert store.get(old.task_id) is None and store.runs(old.task_id) == []
    assert store.get(pending.task_id) is not None
    assert store.referenced_files() == set()


def test_ids_are_digit_strings_safe_for_javascript(store: TaskStore) -> None:
    tasks = [add(store, max_queue=1000) for _ in range(200)]
    ids = {t.task_id for t in tasks} | {str(t.file_id) for t in tasks}
    assert len(ids) == 400
    assert all(i.isdigit() and 15 <= len(i) <= 16 and int(i) < 2**53 for i in ids)
    assert new_id() < 2**53


def test_store_survives_reopening(tmp_path: Path) -> None:
    first = TaskStore(tmp_path / "tasks.db")
    task = add(first)
    first.close()
    again = TaskStore(tmp_path / "tasks.db")
    assert again.get(task.task_id).params == SamplingOptions(seed=1)
