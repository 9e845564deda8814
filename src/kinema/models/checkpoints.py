"""Reading and writing model checkpoints in every format a user has.

Formats, detected automatically:
- **kinema**: a folder with `config.json` (`{"format": "kinema", "model": "dit"|"vae", "config": {...}}`)
  and `model.safetensors`. A pipeline folder (`kinema.pipeline_folder`, e.g. the shipped toy model) holds
  `dit/` and `vae/` folders.
- **diffusers**: a folder with `config.json` (`_class_name` HunyuanVideoTransformer3DModel or
  AutoencoderKLHunyuanVideo) and `diffusion_pytorch_model.safetensors`, sharded (`*.index.json`) or not;
  a whole diffusers pipeline folder works too (its `transformer/` or `vae/`).
- **official** HunyuanVideo: the transformer's `mp_rank_00_model_states.pt` (weights under `module`;
  no config file, so its architecture is read off the tensor shapes unless a `DiTConfig` is given),
  the VAE's `pytorch_model.pt` beside its `config.json`.

Loading is strict: a missing, unexpected or wrongly shaped tensor is an error that names them, never
a silent partial load. Models are built on the meta device and the tensors assigned, so a 13B
checkpoint is never initialised twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from kinema.fsutil import atomic_folder, save_safetensors
from kinema.models.dit import DiT, DiTConfig
from kinema.models.dit_convert import dit_config_from_diffusers, dit_config_from_official, dit_state_from_diffusers

Format = Literal["kinema", "diffusers", "official"]
ModelKind = Literal["dit", "vae"]

OFFICIAL_DIT_FILE = "mp_rank_00_model_states.pt"
OFFICIAL_VAE_FILE = "pytorch_model.pt"
KINEMA_WEIGHTS = "model.safetensors"
_DIFFUSERS_CLASSES = {"dit": "HunyuanVideoTransformer3DModel", "vae": "AutoencoderKLHunyuanVideo"}
_DIFFUSERS_SUBFOLDER = {"dit": "transformer", "vae": "vae"}


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from None


def locate(path: str | os.PathLike, kind: ModelKind) -> tuple[Format, Path]:
    """Find the checkpoint of a `kind` model at `path` and tell its format.

    Returns:
        (format, path) where path is the folder (kinema, diffusers, official VAE) or the .pt file
        (official DiT).
    Raises:
        FileNotFoundError / CheckpointError with a sentence saying what was expected.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no checkpoint at {p}")
    if p.is_file():
        if p.suffix in (".pt", ".pth", ".bin"):
            return "official", p
        raise CheckpointError(f"{p} is not a checkpoint kinema knows: expected a folder or an official .pt file")
    for sub in (kind, _DIFFUSERS_SUBFOLDER[kind]):  # a kinema pipeline or a diffusers pipeline folder
        if (p / sub / "config.json").is_file():
            return locate(p / sub, kind)
    if kind == "dit" and (p / OFFICIAL_DIT_FILE).is_file():
        return "official", p / OFFICIAL_DIT_FILE
    config_path = p / "config.json"
    if not config_path.is_file():
        raise CheckpointError(
            f"{p} holds no {kind.upper()} checkpoint: expected config.json (kinema or diffusers), "
            f"or the official {OFFICIAL_DIT_FILE if kind == 'dit' else OFFICIAL_VAE_FILE}"
        )
    config = _read_json(config_path)
    if config.get("format") == "kinema":
        if config.get("model") != kind:
            raise CheckpointError(f"{p} is a kinema {config.get('model')} checkpoint, not a {kind}")
        return "kinema", p
    if config.get("_class_name") == _DIFFUSERS_CLASSES[kind]:
        return "diffusers", p
    if kind == "vae" and (p / OFFICIAL_VAE_FILE).is_file():
        return "official", p
    raise CheckpointError(
        f"{config_path} describes {config.get('_class_name') or config.get('model') or 'an unknown model'}, "
        f"not a HunyuanVideo {kind.upper()}"
    )


def read_safetensors_folder(folder: Path, stem: str) -> dict[str, Tensor]:
    """Read `{stem}.safetensors`, or every shard listed in `{stem}.safetensors.index.json`."""
    single, index = folder / f"{stem}.safetensors", folder / f"{stem}.safetensors.index.json"
    if single.is_file():
        return load_file(single)
    if index.is_file():
        shards = sorted(set(_read_json(index)["weight_map"].values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise CheckpointError(f"{folder} is missing the shards {missing} listed in {index.name}")
        sd: dict[str, Tensor] = {}
        for shard in shards:
            sd.update(load_file(folder / shard))
        return sd
    raise CheckpointError(f"{folder} has neither {single.name} nor {index.name}")


def read_torch_file(path: Path) -> dict[str, Tensor]:
    """Read an official .pt checkpoint, unwrapping `module` / `model` / `state_dict` containers."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # torch raises many types for corrupt files
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint ({type(e).__name__}: {e})") from None
    for key in ("module", "model", "state_dict"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return sd


def load_state_strict(
    model: nn.Module, sd: dict[str, Tensor], source: str | os.PathLike, model_name: str = "the model"
) -> None:
    """Assign `sd` to a (meta-device) model, or raise naming every missing/unexpected/misshapen tensor.

    `model_name` says in the error what the checkpoint was measured against.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    misshapen = [
        f"{k} {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(sd) & set(expected))
        if sd[k].shape != expected[k].shape
    ]
    if missing or unexpected or misshapen:

        def show(names: list[str]) -> str:
            return ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")

        problems = [
            f"missing {show(missing)}" if missing else "",
            f"unexpected {show(unexpected)}" if unexpected else "",
            f"wrong shape {show(misshapen)}" if misshapen else "",
        ]
        raise CheckpointError(f"checkpoint {source} does not fit {model_name}: " + "; ".join(p for p in problems if p))
    model.load_state_dict(sd, strict=True, assign=True)
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise CheckpointError(f"checkpoint {source} left tensors uninitialised: {leftover[:8]}")


def _finish(model: nn.Module, dtype: torch.dtype | None, device: torch.device | str | None) -> nn.Module:
    if dtype is not None or device is not None:
        model = model.to(device=device, dtype=dtype)
    return model.eval()


def load_dit(
    path: str | os.PathLike,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    config: DiTConfig | None = None,
) -> DiT:
    """Load a DiT from a kinema, diffusers or official checkpoint (detected automatically).

    Args:
        config: the architecture, used instead of the checkpoint's config file or, for an official
            checkpoint (which has none), of what its tensor shapes imply. Needed for official
            checkpoints whose heads are not 128 wide: their RoPE split is in no file. Weights that
            do not fit it are one CheckpointError naming the tensors.
    """
    fmt, where = locate(path, "dit")
    if fmt == "kinema":
        cfg = config or DiTConfig(**_read_json(where / "config.json")["config"])
        sd = load_file(where / KINEMA_WEIGHTS)
    elif fmt == "diffusers":
        cfg = config or dit_config_from_diffusers(_read_json(where / "config.json"))
        sd = dit_state_from_diffusers(read_safetensors_folder(where, "diffusion_pytorch_model"), cfg)
    else:
        sd = read_torch_file(where)
        cfg = config or dit_config_from_official(sd)
    with torch.device("meta"):
        model = DiT(cfg)
    load_state_strict(model, sd, where, "the model" if config is None else "the given DiT config")
    return _finish(model, dtype, device)


def load_vae(
    path: str | os.PathLike, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> nn.Module:
    """Load a causal 3D VAE from a kinema, diffusers or official checkpoint (detected automatically)."""
    from kinema.models import vae_convert
    from kinema.models.vae import CausalVAE, VAEConfig

    fmt, where = locate(path, "vae")
    config = _read_json(where / "config.json")
    if fmt == "kinema":
        cfg = VAEConfig(**config["config"])
        sd = load_file(where / KINEMA_WEIGHTS)
    elif fmt == "diffusers":
        cfg = vae_convert.vae_config_from_diffusers(config)
        sd = vae_convert.vae_state_from_diffusers(read_safetensors_folder(where, "diffusion_pytorch_model"))
    else:
        cfg = vae_convert.vae_config_from_official(config)
        sd = vae_convert.vae_state_from_official(read_torch_file(where / OFFICIAL_VAE_FILE))
    with torch.device("meta"):
        model = CausalVAE(cfg)
    load_state_strict(model, sd, where)
    return _finish(model, dtype, device)


def save_model(model: nn.Module, kind: ModelKind, folder: str | os.PathLike) -> Path:
    """Write `model` in kinema's format (config.json + model.safetensors), atomically.

    The files are written into a temporary folder beside `folder`, which then replaces it.
    """
    with atomic_folder(folder) as tmp:
        sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_safetensors(sd, tmp / KINEMA_WEIGHTS)
        meta = {"format": "kinema", "model": kind, "config": asdict(model.cfg)}
        (tmp / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    return Path(folder)


def convert(src: str | os.PathLike, dst: str | os.PathLike, kind: ModelKind, config: DiTConfig | None = None) -> Path:
    """Read any supported checkpoint of a `kind` model and write it in kinema's format.

    `config` is the DiT's architecture when the checkpoint does not tell it (see `load_dit`).
    """
    if config is not None and kind != "dit":
        raise ValueError(f"a DiTConfig describes the DiT, not the {kind.upper()}")
    model = load_dit(src, config=config) if kind == "dit" else load_vae(src)
    return save_model(model, kind, dst)
