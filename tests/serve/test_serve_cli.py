"""`kinema serve` refuses bad setups with one sentence; the service's start-up cleanup and retention."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kinema.cli import main
from kinema.options import SamplingOptions
from kinema.serve.config import ServeConfig
from kinema.serve.service import DataDirBusy, Service


def test_cli_refuses_open_service_off_loopback(tiny_pipeline: Path, tmp_path: Path, capsys) -> None:
    code = main(["serve", "--checkpoint", str(tiny_pipeline), "--data-dir", str(tmp_path), "--host", "0.0.0.0"])
    err = capsys.readouterr().err
    assert code == 2 and "without an API key" in err and "Traceback" not in err


def test_cli_refuses_a_folder_that_is_not_a_pipeline(tmp_path: Path, capsys) -> None:
    code = main(["serve", "--checkpoint", str(tmp_path), "--data-dir", str(tmp_path / "data"), "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "not a kinema pipeline folder" in err


def test_cli_refuses_a_data_dir_in_use(tiny_pipeline: Path, tmp_path: Path, capsys) -> None:
    config = ServeConfig(checkpoint=tiny_pipeline, data_dir=tmp_path / "data", workers=0)
    service = Service.open(config)
    try:
        with pytest.raises(DataDirBusy):
            Service.open(config)
        code = main(["serve", "--checkpoint", str(tiny_pipeline), "--data-dir", str(config.data_dir), "--port", "0"])
        assert code == 2 and "another kinema serve is using" in capsys.readouterr().err
    finally:
        service.close()
    Service.open(config).close()  # released on close (and by the kernel on kill -9)


def test_start_up_recovers_tasks_and_removes_debris(tiny_pipeline: Path, tmp_path: Path) -> None:
    config = ServeConfig(checkpoint=tiny_pipeline, data_dir=tmp_path / "data", workers=0)
    service = Service.open(config)
    store = service.store
    store.create(owner="o", model="kinema", prompt="done", params=SamplingOptions(seed=1), callback_url=None,
                 max_queue=10)
    (config.files_dir / "1-kept.mp4").write_bytes(b"mp4")
    assert store.complete(store.claim("worker-0.1", os.getpid()), "files/1-kept.mp4", 3, 1, 1)
    (config.files_dir / ".2-x.mp4").write_bytes(b"half")  # a write killed halfway
    (config.files_dir / "2-orphan.mp4").write_bytes(b"unrecorded")  # written, never recorded
    running = store.create(owner="o", model="kinema", prompt="running", params=SamplingOptions(seed=2),
                           callback_url=None, max_queue=10)
    store.claim("worker-0.1", os.getpid())
    # The service dies here without cleaning up: only what the kernel releases is released.
    store.close()
    os.close(service._lock_fd)

    reopened = Service.open(config)
    try:
        assert sorted(p.name for p in config.files_dir.iterdir()) == ["1-kept.mp4"]
        assert reopened.store.counts() == {"Success": 1, "Queueing": 1}
        assert [r.outcome for r in reopened.store.runs(running.task_id)] == ["interrupted"]
    finally:
        reopened.close()


def test_retention_deletes_old_outputs(tiny_pipeline: Path, tmp_path: Path) -> None:
    config = ServeConfig(checkpoint=tiny_pipeline, data_dir=tmp_path / "data", workers=0, retention_s=60.0)
    service = Service.open(config)
    try:
        store = service.store
        for name in ("old", "new"):
            store.create(owner="o", model="kinema", prompt=name, params=SamplingOptions(seed=1), callback_url=None,
                         max_queue=10)
            claim = store.claim("w", 1)
            (config.files_dir / f"{name}.mp4").write_bytes(b"mp4")
            store.complete(claim, f"files/{name}.mp4", 3, 1, 1)
        store._db.execute("UPDATE tasks SET finished_at = ? WHERE prompt = 'old'", (time.time() - 61,))
        assert service.expire() == 1
        assert [p.name for p in config.files_dir.iterdir()] == ["new.mp4"]
        assert [t.prompt for t in store.recent("o", 10)] == ["new"]
    finally:
        service.close()
