"""The durable task store: one SQLite database in WAL mode, shared by the API and the workers.

Every state change is one short `BEGIN IMMEDIATE` transaction, so a `kill -9` at any instant leaves
either the old or the new state, never a half-written one. A task's life:

    create -> Queueing --claim--> Preparing -> Processing --complete--> Success
                 ^                    |             |      --fail------> Fail
                 +---- recover -------+-------------+   (the worker died: run again, at most
                                                         `max_attempts` runs, then Fail)

A claim carries a random token; `complete`/`fail` only apply while the token still holds the task,
so a worker that lost its task (the service restarted under it) can never overwrite the outcome of
the run that replaced it. Each claim is also logged in `runs` (start, end, outcome, pid), which is
how tests check that no task ever ran twice at once. Status changes that a callback receiver must
hear about are queued in `callbacks` in the same transaction as the change (an outbox).

`synchronous=NORMAL`: in WAL mode a commit survives the process being killed (the data is in the OS);
only a power cut can lose the last commits.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kinema.options import SamplingOptions
from kinema.serve.protocol import OK, UNKNOWN_ERROR, Status, base_resp, push_status

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id      TEXT PRIMARY KEY,            -- digit string
    owner        TEXT NOT NULL,               -- hash of the API key that created it
    model        TEXT NOT NULL,               -- the model name the client sent
    prompt       TEXT NOT NULL,
    params       TEXT NOT NULL,               -- JSON of SamplingOptions
    status       TEXT NOT NULL,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    finished_at  REAL,
    attempts     INTEGER NOT NULL DEFAULT 0,  -- runs started
    worker       TEXT,                        -- worker holding the claim
    claim        TEXT,                        -- token of the current claim
    file_id      INTEGER NOT NULL UNIQUE,     -- chosen at creation, revealed on Success
    file_path    TEXT,                        -- relative to the data folder
    file_bytes   INTEGER,
    video_width  INTEGER,
    video_height INTEGER,
    error_code   INTEGER,
    error_msg    TEXT,
    callback_url TEXT
);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks(status, created_at);
CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks(owner, created_at);
CREATE TABLE IF NOT EXISTS runs (
    claim      TEXT PRIMARY KEY,
    task_id    TEXT NOT NULL,
    worker     TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    started_at REAL NOT NULL,
    ended_at   REAL,
    outcome    TEXT                           -- success | fail | interrupted
);
CREATE INDEX IF NOT EXISTS runs_by_task ON runs(task_id);
CREATE TABLE IF NOT EXISTS callbacks (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id  TEXT NOT NULL,
    url      TEXT NOT NULL,
    body     TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at  REAL NOT NULL,
    done     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks(done, next_at);
"""

# JavaScript clients read JSON numbers as doubles: keep ids below 2**53 so `file_id` survives them.
_ID_RANDOM_BITS = 10


class QueueFull(Exception):
    """The number of waiting tasks reached the service's bound."""


@dataclass(frozen=True)
class Task:
    task_id: str
    owner: str
    model: str
    prompt: str
    params: SamplingOptions  # the seed is fixed at creation: a task run again after a crash gives the same video
    status: Status
    created_at: float
    updated_at: float
    finished_at: float | None
    attempts: int
    file_id: int
    file_path: str | None
    file_bytes: int | None
    video_width: int | None
    video_height: int | None
    error_code: int | None
    error_msg: str | None
    callback_url: str | None


@dataclass(frozen=True)
class Claim:
    """A task held by one worker run; `token` proves the hold."""

    task: Task
    token: str
    worker: str


@dataclass(frozen=True)
class Run:
    claim: str
    task_id: str
    worker: str
    pid: int
    started_at: float
    ended_at: float | None
    outcome: str | None


@dataclass(frozen=True)
class CallbackEvent:
    id: int
    task_id: str
    url: str
    body: dict[str, object]
    attempts: int


def new_id() -> int:
    """A 15-16 digit id: milliseconds since 1970 and 10 random bits (MiniMax's look, below 2**53)."""
    return (int(time.time() * 1000) << _ID_RANDOM_BITS) | secrets.randbits(_ID_RANDOM_BITS)


class TaskStore:
    """The task database. One instance per process (and per thread: sqlite3 connections are not shared).

    Args:
        path: the database file (created with its folder).
        clock: wall-clock seconds (injectable for tests).
    """

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ------------------------------------------------------------------ API side

    def create(
        self, *, owner: str, model: str, prompt: str, params: SamplingOptions, callback_url: str | None,
        max_queue: int,
    ) -> Task:
        """Insert a new `Queueing` task.

        Raises:
            QueueFull: `max_queue` tasks are already waiting for a worker.
        """
        now = self._clock()
        with self._tx() as db:
            (waiting,) = db.execute("SELECT count(*) FROM tasks WHERE status = 'Queueing'").fetchone()
            if waiting >= max_queue:
                raise QueueFull(f"{waiting} tasks are waiting; try again later")
            for _ in range(100):  # ids drawn in the same millisecond may collide; keep all ids distinct
                task_id, file_id = new_id(), new_id()
                clash = db.execute(
                    "SELECT 1 FROM tasks WHERE task_id IN (?, ?) OR file_id IN (?, ?)",
                    (str(task_id), str(file_id), task_id, file_id),
                ).fetchone()
                if clash is None and task_id != file_id:
                    break
            db.execute(
                "INSERT INTO tasks (task_id, owner, model, prompt, params, status, created_at, updated_at, "
                "file_id, callback_url) VALUES (?, ?, ?, ?, ?, 'Queueing', ?, ?, ?, ?)",
                (str(task_id), owner, model, prompt, json.dumps(dataclasses.asdict(params)), now, now, file_id,
                 callback_url),
            )
        task = self.get(str(task_id))
        assert task is not None
        return task

    def get(self, task_id: str) -> Task | None:
        row = self._db.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return None if row is None else _task(row)

    def by_file(self, file_id: int) -> Task | None:
        row = self._db.execute("SELECT * FROM tasks WHERE file_id = ?", (file_id,)).fetchone()
        return None if row is None else _task(row)

    def recent(self, owner: str, limit: int) -> list[Task]:
        """The owner's newest tasks, newest first."""
        rows = self._db.execute(
            "SELECT * FROM tasks WHERE owner = ? ORDER BY created_at DESC, rowid DESC LIMIT ?", (owner, limit)
        ).fetchall()
        return [_task(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of tasks per status."""
        return dict(self._db.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall())

    # ------------------------------------------------------------------ worker side

    def claim(self, worker: str, pid: int) -> Claim | None:
        """Take the oldest waiting task for `worker` (status `Preparing`), or None if none waits."""
        token = secrets.token_hex(16)
        now = self._clock()
        with self._tx() as db:
            row = db.execute(
                "UPDATE tasks SET status = 'Preparing', attempts = attempts + 1, worker = ?, claim = ?, "
                "updated_at = ? WHERE task_id = (SELECT task_id FROM tasks WHERE status = 'Queueing' "
                "ORDER BY created_at, rowid LIMIT 1) RETURNING *",
                (worker, token, now),
            ).fetchone()
            if row is None:
                return None
            task = _task(row)
            db.execute(
                "INSERT INTO runs (claim, task_id, worker, pid, started_at) VALUES (?, ?, ?, ?, ?)",
                (token, task.task_id, worker, pid, now),
            )
            self._push(db, task)
        return Claim(task, token, worker)

    def mark_processing(self, claim: Claim) -> bool:
        """`Preparing` -> `Processing`; False if the claim no longer holds the task."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE tasks SET status = 'Processing', updated_at = ? WHERE task_id = ? AND claim = ?",
                (self._clock(), claim.task.task_id, claim.token),
            )
            return cur.rowcount == 1

    def complete(self, claim: Claim, file_path: str, file_bytes: int, width: int, height: int) -> bool:
        """Record a finished video; False (and nothing changed) if the claim no longer holds the task."""
        now = self._clock()
        with self._tx() as db:
            row = db.execute(
                "UPDATE tasks SET status = 'Success', finished_at = ?, updated_at = ?, file_path = ?, "
                "file_bytes = ?, video_width = ?, video_height = ?, worker = NULL, claim = NULL "
                "WHERE task_id = ? AND claim = ? RETURNING *",
                (now, now, file_path, file_bytes, width, height, claim.task.task_id, claim.token),
            ).fetchone()
            if row is None:
                return False
            self._end_run(db, claim.token, "success", now)
            self._push(db, _task(row))
        return True

    def fail(self, claim: Claim, code: int, msg: str) -> bool:
        """Record a failed run as the task's outcome; False if the claim no longer holds the task."""
        now = self._clock()
        with self._tx() as db:
            row = db.execute(
                "UPDATE tasks SET status = 'Fail', finished_at = ?, updated_at = ?, error_code = ?, error_msg = ?, "
                "worker = NULL, claim = NULL WHERE task_id = ? AND claim = ? RETURNING *",
                (now, now, code, msg, claim.task.task_id, claim.token),
            ).fetchone()
            if row is None:
                return False
            self._end_run(db, claim.token, "fail", now)
            self._push(db, _task(row))
        return True

    def recover(self, max_attempts: int, worker: str | None = None, refund: bool = False) -> list[str]:
        """Take claimed tasks back from workers that are gone: queue them again, or fail those that
        have had `max_attempts` runs. Returns the recovered task ids.

        Args:
            max_attempts: runs a task may start in all.
            worker: only this worker's tasks (it died); None = every claimed task (service start,
                when no worker of this data folder can be alive).
            refund: the run was stopped on purpose (graceful shutdown), so it does not count.
        """
        now = self._clock()
        placeholders = " AND worker = ?" if worker is not None else ""
        args: tuple[str, ...] = (worker,) if worker is not None else ()
        with self._tx() as db:
            rows = db.execute(
                f"SELECT * FROM tasks WHERE status IN ('Preparing', 'Processing'){placeholders}", args
            ).fetchall()
            for row in rows:
                task = _task(row)
                self._end_run(db, row["claim"], "interrupted", now)
                attempts = task.attempts - 1 if refund else task.attempts
                if attempts < max_attempts:
                    db.execute(
                        "UPDATE tasks SET status = 'Queueing', attempts = ?, worker = NULL, claim = NULL, "
                        "updated_at = ? WHERE task_id = ?",
                        (attempts, now, task.task_id),
                    )
                    continue
                failed = db.execute(
                    "UPDATE tasks SET status = 'Fail', attempts = ?, finished_at = ?, updated_at = ?, error_code = ?, "
                    "error_msg = ?, worker = NULL, claim = NULL WHERE task_id = ? RETURNING *",
                    (attempts, now, now, UNKNOWN_ERROR,
                     f"generation was interrupted {attempts} times (worker crashed or the service was killed); "
                     "giving up", task.task_id),
                ).fetchone()
                self._push(db, _task(failed))
        return [r["task_id"] for r in rows]

    def runs(self, task_id: str | None = None) -> list[Run]:
        """The run log (one row per claim), oldest first."""
        where, args = ("WHERE task_id = ?", (task_id,)) if task_id is not None else ("", ())
        rows = self._db.execute(f"SELECT * FROM runs {where} ORDER BY started_at, rowid", args).fetchall()
        return [Run(**dict(r)) for r in rows]

    @staticmethod
    def _end_run(db: sqlite3.Connection, token: str | None, outcome: str, now: float) -> None:
        db.execute("UPDATE runs SET ended_at = ?, outcome = ? WHERE claim = ? AND ended_at IS NULL",
                   (now, outcome, token))

    # ------------------------------------------------------------------ callbacks (outbox)

    def _push(self, db: sqlite3.Connection, task: Task) -> None:
        """Queue a status push for `task` if it has a callback URL and its push status changed."""
        status = push_status(task.status)
        if task.callback_url is None or status is None:
            return
        last = db.execute(
            "SELECT body FROM callbacks WHERE task_id = ? ORDER BY id DESC LIMIT 1", (task.task_id,)
        ).fetchone()
        if last is not None and json.loads(last["body"])["status"] == status and status == "processing":
            return  # Preparing -> Processing, or a re-run after a crash: the receiver already knows
        body: dict[str, object] = {"task_id": task.task_id, "status": status}
        if task.status == "Success":
            body["file_id"] = str(task.file_id)
            body["base_resp"] = base_resp(OK, "success")
        elif task.status == "Fail":
            body["base_resp"] = base_resp(task.error_code or UNKNOWN_ERROR, task.error_msg or "generation failed")
        else:
            body["base_resp"] = base_resp(OK, "success")
        db.execute(
            "INSERT INTO callbacks (task_id, url, body, next_at) VALUES (?, ?, ?, ?)",
            (task.task_id, task.callback_url, json.dumps(body), self._clock()),
        )

    def due_callbacks(self, limit: int = 50) -> list[CallbackEvent]:
        """Pushes to send now, oldest first; at most one per task, so each receiver hears them in order."""
        rows = self._db.execute(
            "SELECT * FROM callbacks WHERE done = 0 AND id IN (SELECT min(id) FROM callbacks WHERE done = 0 "
            "GROUP BY task_id) AND next_at <= ? ORDER BY id LIMIT ?",
            (self._clock(), limit),
        ).fetchall()
        return [CallbackEvent(r["id"], r["task_id"], r["url"], json.loads(r["body"]), r["attempts"]) for r in rows]

    def callback_sent(self, event_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE callbacks SET done = 1, attempts = attempts + 1 WHERE id = ?", (event_id,))

    def callback_failed(self, event_id: int, retry_in_s: float | None) -> None:
        """Count a failed delivery; try again in `retry_in_s` seconds, or never (None: give up)."""
        with self._tx() as db:
            if retry_in_s is None:
                db.execute("UPDATE callbacks SET done = 2, attempts = attempts + 1 WHERE id = ?", (event_id,))
            else:
                db.execute("UPDATE callbacks SET attempts = attempts + 1, next_at = ? WHERE id = ?",
                           (self._clock() + retry_in_s, event_id))

    # ------------------------------------------------------------------ retention

    def expire(self, finished_before: float) -> list[str]:
        """Delete tasks that finished before `finished_before` (with their runs and pushes).

        Returns the output files (relative paths) the caller should delete now that no row points at them.
        """
        with self._tx() as db:
            rows = db.execute(
                "DELETE FROM tasks WHERE finished_at IS NOT NULL AND finished_at < ? RETURNING task_id, file_path",
                (finished_before,),
            ).fetchall()
            ids = [(r["task_id"],) for r in rows]
            db.executemany("DELETE FROM runs WHERE task_id = ?", ids)
            db.executemany("DELETE FROM callbacks WHERE task_id = ?", ids)
        return [r["file_path"] for r in rows if r["file_path"]]

    def referenced_files(self) -> set[str]:
        """Every output path a task points at."""
        return {r[0] for r in self._db.execute("SELECT file_path FROM tasks WHERE file_path IS NOT NULL")}

    def waiting_count(self) -> int:
        """Tasks waiting for a worker (an index lookup, cheap on every request)."""
        return self._db.execute("SELECT count(*) FROM tasks WHERE status = 'Queueing'").fetchone()[0]


def _task(row: sqlite3.Row) -> Task:
    fields = dict(row)
    fields.pop("worker")
    fields.pop("claim")
    fields["params"] = SamplingOptions(**json.loads(fields["params"]))
    return Task(**fields)
