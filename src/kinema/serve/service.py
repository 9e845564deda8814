"""One running service: its data folder, task store, workers and background loops.

`Service.open` claims the data folder (an exclusive lock: one service per folder, released by the
kernel even after `kill -9`), opens the store, takes back every task a previous run left claimed
(no worker of this folder can be alive then: workers die with their service), and deletes output
files no task points at. `Service.run_background` then keeps the workers alive, sends callback
pushes and deletes expired outputs, until `Service.close`.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from kinema.serve import callbacks
from kinema.serve.config import ServeConfig, ServedModel
from kinema.serve.security import ApiKeys, RateLimiter, UrlSigner, load_secret
from kinema.serve.store import TaskStore
from kinema.serve.worker import WorkerPool

log = logging.getLogger("kinema.serve")

SUPERVISE_EVERY_S = 0.5
CALLBACKS_EVERY_S = 0.2


class DataDirBusy(Exception):
    """Another service holds the data folder."""


class Service:
    """The state shared by the API's requests. Create with `Service.open(config)`."""

    def __init__(self, config: ServeConfig, model: ServedModel, lock_fd: int, store: TaskStore) -> None:
        self.config = config
        self.model = model
        self._lock_fd = lock_fd
        self.store = store
        self.keys = ApiKeys(config.api_keys)
        self.create_limit = RateLimiter(config.create_rpm)
        self.query_limit = RateLimiter(config.query_rpm)
        self.signer = UrlSigner(load_secret(config.data_dir / "secret.key"))
        self.pool = WorkerPool(
            config.workers, config.checkpoint, config.data_dir, config.device, config.worker_threads, store,
            config.max_attempts,
        )
        self.http = httpx.AsyncClient(follow_redirects=False)
        self._tasks: list[asyncio.Task] = []

    @classmethod
    def open(cls, config: ServeConfig) -> Service:
        """Claim the data folder and recover from whatever the last run left.

        Raises:
            FileNotFoundError / ValueError: the checkpoint is not a pipeline folder.
            DataDirBusy: another `kinema serve` uses the data folder.
        """
        model = ServedModel.from_folder(config.checkpoint)
        config.files_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(config.data_dir / "serve.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirBusy(f"another kinema serve is using {config.data_dir}; stop it or pick another --data-dir")
        store = TaskStore(config.db_path)
        recovered = store.recover(config.max_attempts)
        if recovered:
            log.warning("took back %d task(s) left running by the previous service: %s", len(recovered), recovered)
        service = cls(config, model, fd, store)
        service.sweep_files()
        return service

    def close(self) -> None:
        """Stop workers (their tasks go back to the queue) and release the data folder."""
        self.pool.stop()
        self.store.close()
        os.close(self._lock_fd)

    # ------------------------------------------------------------------ background work

    def start_background(self) -> None:
        """Start the workers and the loops (call from the event loop's thread: workers die with it)."""
        self.pool.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._every(SUPERVISE_EVERY_S, self._supervise)),
            loop.create_task(self._every(CALLBACKS_EVERY_S, self._push_callbacks)),
            loop.create_task(self._every(min(60.0, self.config.retention_s / 4), self._expire)),
        ]

    async def stop_background(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.aclose()

    async def _every(self, period_s: float, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 -- a failed round must not end the loop; the next one retries
                log.exception("background step %s failed", step.__name__)
            await asyncio.sleep(period_s)

    async def _supervise(self) -> None:
        self.pool.check()

    async def _push_callbacks(self) -> None:
        await callbacks.deliver_due(self.store, self.http, self.config.callback_timeout_s)

    async def _expire(self) -> None:
        self.expire()

    def expire(self) -> int:
        """Delete tasks finished more than `retention_s` ago and their files; returns how many files."""
        paths = self.store.expire(time.time() - self.config.retention_s)
        for rel in paths:
            (self.config.data_dir / rel).unlink(missing_ok=True)
        return len(paths)

    def sweep_files(self) -> int:
        """Delete files no task points at: temporary files of a killed write, and outputs of a run
        killed before it recorded them. Only safe before the workers start."""
        keep = self.store.referenced_files()
        removed = 0
        for path in self.config.files_dir.iterdir():
            if f"files/{path.name}" not in keep:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def file_path(self, rel: str) -> Path:
        return self.config.data_dir / rel
