"""Helpers for the service tests: a tiny random pipeline, the real service in a subprocess, HTTP calls."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from kinema.clients.minimax import MiniMaxClient, MiniMaxConfig

TINY_STEPS, TINY_FRAMES, TINY_SIDE = 2, 5, 32


def build_tiny_pipeline(folder: Path) -> Path:
    """A random pipeline folder small enough to generate 5×32×32 in well under a second."""
    import torch

    from kinema.models import DiTConfig, VAEConfig, build_dit, build_vae
    from kinema.options import SamplingDefaults
    from kinema.pipeline_folder import PipelineSpec, save_pipeline

    torch.manual_seed(0)
    dit = build_dit(DiTConfig(
        in_channels=4, out_channels=4, heads=2, head_dim=16, depth_double=1, depth_single=1, depth_refiner=1,
        patch=(1, 2, 2), text_dim=384, pooled_dim=384, rope_dims=(4, 6, 6), guidance_embed=False,
    ))
    vae = build_vae(VAEConfig(latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                              norm_num_groups=4, scaling_factor=1.0))
    defaults = SamplingDefaults(steps=TINY_STEPS, frames=TINY_FRAMES, height=TINY_SIDE, width=TINY_SIDE)
    return save_pipeline(folder, dit, vae, PipelineSpec("minilm", defaults))


class ServiceProcess:
    """`python -m kinema serve` on 127.0.0.1 with a free port, as a user would run it."""

    def __init__(self, checkpoint: Path, data_dir: Path, *options: str) -> None:
        self.checkpoint, self.data_dir, self.options = checkpoint, data_dir, options
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    def start(self, timeout_s: float = 60.0) -> str:
        cmd = [sys.executable, "-m", "kinema", "serve", "--checkpoint", str(self.checkpoint),
               "--data-dir", str(self.data_dir), "--port", "0", *self.options]
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        first = self.process.stdout.readline()  # the "kinema serve: http://..." line
        match = re.search(r"http://127\.0\.0\.1:\d+", first)
        if match is None:
            self.process.wait(timeout=10)
            raise RuntimeError(f"kinema serve did not start: {first!r}\n{self.log_path.read_text()[-3000:]}")
        self.url = match.group(0)
        threading.Thread(target=self.process.stdout.read, daemon=True).start()  # drain, never block it
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v1/kinema/info", timeout=2).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"kinema serve at {self.url} did not answer within {timeout_s} s")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill9(self) -> None:
        """SIGKILL the service process alone (its workers must die with it by themselves)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.terminate()
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def minimax_client(url: str, key: str) -> MiniMaxClient:
    """kinema's MiniMax client configured the way a user would: MINIMAX_API_HOST pointing at the service."""
    config = MiniMaxConfig.from_env({"MINIMAX_API_KEY": key, "MINIMAX_API_HOST": url})
    return MiniMaxClient(dataclasses.replace(
        config, poll_interval_s=0.1, max_poll_interval_s=0.3, backoff_s=0.05, max_backoff_s=0.2, poll_deadline_s=90.0,
    ))


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create(url: str, key: str, **body: object) -> dict:
    body.setdefault("model", "MiniMax-Hailuo-02")
    body.setdefault("prompt", "a red circle moves to the right")
    resp = httpx.post(f"{url}/v1/video_generation", json=body, headers=auth(key), timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def query(url: str, key: str, task_id: str) -> dict:
    resp = httpx.get(f"{url}/v1/query/video_generation", params={"task_id": task_id}, headers=auth(key), timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_finished(url: str, key: str, task_id: str, timeout_s: float = 90.0) -> dict:
    """Poll until the task is Success or Fail; returns the last query answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = query(url, key, task_id)
        if answer["status"] in ("Success", "Fail"):
            return answer
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} still {answer['status']} after {timeout_s} s")
