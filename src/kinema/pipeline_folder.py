"""The pipeline folder: what `kinema train` and `kinema distill` export and `kinema generate` and
`kinema serve` load. No torch at import time (the server's API process reads it without torch).

    folder/
      pipeline.json   {"format": "kinema-pipeline", "text_encoder": "minilm", "defaults": {...}}
      dit/            the DiT in kinema's checkpoint format (config.json + model.safetensors)
      vae/            the VAE, likewise

`pipeline.json` is read through the typed loader of `kinema.config`: an unknown key or a wrong type is
one clear error naming it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kinema.config import load_yaml
from kinema.fsutil import atomic_folder
from kinema.options import SamplingDefaults

if TYPE_CHECKING:
    from kinema.models.dit import DiT
    from kinema.models.vae import CausalVAE

PIPELINE_FILE = "pipeline.json"


@dataclass(frozen=True)
class PipelineSpec:
    """The contents of `pipeline.json`: the text encoder's name and the sampling defaults."""

    text_encoder: str
    defaults: SamplingDefaults = field(default_factory=SamplingDefaults)
    format: Literal["kinema-pipeline"] = "kinema-pipeline"


def default_checkpoint() -> Path:
    """The shipped toy model: `kinema/checkpoints/toy`, package data, so every install has it."""
    from importlib import resources

    return Path(str(resources.files("kinema") / "checkpoints" / "toy"))


def is_pipeline_folder(folder: str | os.PathLike) -> bool:
    return (Path(folder) / PIPELINE_FILE).is_file()


def read_pipeline_spec(folder: str | os.PathLike) -> PipelineSpec:
    """Read a pipeline folder's `pipeline.json`.

    Raises:
        FileNotFoundError: the folder has no pipeline.json.
        kinema.config.ConfigError: pipeline.json is not valid JSON or not a pipeline description.
    """
    folder = Path(folder)
    if not is_pipeline_folder(folder):
        raise FileNotFoundError(
            f"{folder} is not a kinema pipeline folder: it has no {PIPELINE_FILE} "
            "(`kinema train` and `kinema distill` write one)"
        )
    return load_yaml(PipelineSpec, folder / PIPELINE_FILE, what="pipeline file")


def save_pipeline(folder: str | os.PathLike, dit: DiT, vae: CausalVAE, spec: PipelineSpec) -> Path:
    """Write a pipeline folder atomically (a temporary folder renamed into place)."""
    from kinema.models.checkpoints import save_model

    with atomic_folder(folder) as tmp:
        save_model(dit, "dit", tmp / "dit")
        save_model(vae, "vae", tmp / "vae")
        meta = {"format": spec.format, "text_encoder": spec.text_encoder, "defaults": dataclasses.asdict(spec.defaults)}
        (tmp / PIPELINE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return Path(folder)
