"""What `kinema serve` needs to know: where things live, who may call it, and its limits.

`ServeConfig` is built once at the edge (the CLI or a test) and validated there; every other part of
the service takes it as is. `ServedModel` is what the API process knows about the model without
loading it (no torch in the API process): its name, sampling defaults (`pipeline.json`, read through
`kinema.pipeline_folder`) and the size units a request must respect (the dit/ and vae/ configs).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from kinema.options import SamplingDefaults
from kinema.pipeline_folder import read_pipeline_spec

LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class ServeConfig:
    """One running service.

    Attributes:
        checkpoint: the kinema pipeline folder to generate with (`pipeline.json`, `dit/`, `vae/`).
        data_dir: the service's own folder: `tasks.db` (SQLite, WAL), `files/` (outputs),
            `secret.key` (URL signing), `serve.lock` (one service per folder).
        host: address to bind. Without API keys only loopback addresses are allowed.
        port: TCP port (0: any free port; the chosen one is printed).
        api_keys: accepted Bearer keys; empty = no authentication (loopback only).
        workers: generation worker processes (0: accept and queue tasks, generate nothing).
        device: torch device of the workers, e.g. "cpu" or "cuda".
        worker_threads: torch threads per worker; None = the CPUs divided among the workers.
        max_queue: tasks waiting for a worker beyond which creates answer 1002.
        create_rpm: task creations per API key per minute beyond which creates answer 1002
            (MiniMax's video limit is 5 RPM free, 20 RPM paid:
            https://platform.minimaxi.com/docs/guides/rate-limits).
        query_rpm: queries, retrieves and listings per API key per minute.
        max_attempts: runs a task gets when its worker dies (crash, kill -9) before it ends in `Fail`.
        url_ttl_s: lifetime of a signed download URL (MiniMax: 1 h,
            https://platform.minimaxi.com/docs/api-reference/video-generation-download).
        retention_s: finished tasks and their files are deleted this long after they finish.
        callback_timeout_s: how long a callback receiver has to echo the challenge (MiniMax: 3 s, the callback
            section of https://platform.minimax.io/docs/api-reference/video-generation-t2v).
        callback_hosts: hosts `callback_url` may point at; None = any host.
        public_url: base of download URLs, e.g. "https://video.example.com" behind a proxy;
            None = the scheme and host the client used.
        max_steps: largest `steps` a request may ask for.
        max_frames: largest `frames` a request may ask for.
        max_side: largest `width` / `height` a request may ask for, in pixels.
    """

    checkpoint: Path
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[str, ...] = ()
    workers: int = 1
    device: str = "cpu"
    worker_threads: int | None = None
    max_queue: int = 100
    create_rpm: int = 60
    query_rpm: int = 1200
    max_attempts: int = 3
    url_ttl_s: float = 3600.0
    retention_s: float = 24 * 3600.0
    callback_timeout_s: float = 3.0
    callback_hosts: tuple[str, ...] | None = None
    public_url: str | None = None
    max_steps: int = 100
    max_frames: int = 129
    max_side: int = 1280

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoint", Path(self.checkpoint))
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "api_keys", tuple(self.api_keys))
        if self.callback_hosts is not None:
            object.__setattr__(self, "callback_hosts", tuple(h.lower() for h in self.callback_hosts))
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.workers < 0:
            raise ValueError(f"workers must be 0 or more, got {self.workers}")
        for name in ("max_queue", "create_rpm", "query_rpm", "max_attempts", "max_steps", "max_frames", "max_side"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("url_ttl_s", "retention_s", "callback_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if any(not k.strip() or any(c.isspace() for c in k) for k in self.api_keys):
            raise ValueError("API keys must be non-empty and contain no whitespace")
        if not self.api_keys and not is_loopback(self.host):
            raise ValueError(
                f"serving on {self.host} without an API key would let anyone on the network generate; "
                "pass --api-key (or bind 127.0.0.1)"
            )
        if self.public_url is not None and not self.public_url.startswith(("http://", "https://")):
            raise ValueError(f"public URL {self.public_url!r} must start with http:// or https://")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "tasks.db"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) only accepts connections from this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServedModel:
    """The model as the API sees it, read from a pipeline folder without loading weights.

    Attributes:
        name: the served model's own name, `kinema-<folder name>`; MiniMax names map to it.
        defaults: the checkpoint's sampling defaults (its pipeline.json).
        frame_unit: frames must be `frame_unit`·k + 1 (the VAE's temporal compression).
        pixel_unit: width and height must be multiples of this (VAE spatial compression × DiT patch).
    """

    name: str
    defaults: SamplingDefaults
    frame_unit: int = 4
    pixel_unit: int = 16

    @classmethod
    def from_folder(cls, folder: Path) -> ServedModel:
        """Read `pipeline.json` (and the kinema-format `dit/`, `vae/` configs when present).

        Raises:
            FileNotFoundError: the folder is not a kinema pipeline folder.
            kinema.config.ConfigError: its `pipeline.json` does not describe a pipeline (a ValueError).
        """
        spec = read_pipeline_spec(folder)
        # Other checkpoint formats (official, diffusers) keep HunyuanVideo's units: 4× time, 8× space, patch 2.
        vae = _kinema_config(folder / "vae")
        dit = _kinema_config(folder / "dit")
        patch = int((dit.get("patch") or [1, 2, 2])[1])
        return cls(
            name=f"kinema-{folder.resolve().name}",
            defaults=spec.defaults,
            frame_unit=int(vae.get("temporal_compression_ratio", 4)),
            pixel_unit=int(vae.get("spatial_compression_ratio", 8)) * patch,
        )


def _kinema_config(folder: Path) -> dict:
    path = folder / "config.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return meta.get("config", {}) if meta.get("format") == "kinema" else {}
