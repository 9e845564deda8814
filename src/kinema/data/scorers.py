"""Pluggable learned scorers: aesthetic or technical quality from local weights, chosen in the config.

The curation config names a scorer per score (`aesthetic`, `technical`); "classical" (the default)
uses the hand-made scores of `kinema.data.filters.quality`, and a path to a TorchScript file loads a
learned model without code changes -- e.g. a CLIP image tower with a LAION aesthetic head, or DOVER,
exported with `torch.jit.script`/`trace`. The contract for such a file: input (N, 3, S, S) float32
RGB in [0, 1] (S = `image_size`, default 224), output (N,) or (N, 1) scores.

Shape legend: N frames, S side.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class ScorerConfig:
    """Where a score comes from: "classical", or a path to a TorchScript model."""

    model: str = "classical"
    image_size: int = 224

    @property
    def learned(self) -> bool:
        return self.model != "classical"

    def __post_init__(self) -> None:
        if self.learned and not Path(self.model).is_file():
            raise FileNotFoundError(f"scorer model {self.model} does not exist: expected 'classical' or a TorchScript file")


@functools.lru_cache(maxsize=4)
def _load(path: str):  # noqa: ANN202 (a torch.jit.ScriptModule)
    import torch

    module = torch.jit.load(path, map_location="cpu")
    module.eval()
    return module


def learned_score(frames: np.ndarray, config: ScorerConfig) -> float:
    """Mean score of a learned model over a clip's frames.

    Args:
        frames: (N, H, W, 3) uint8 RGB.
    """
    import torch

    side = config.image_size
    batch = np.stack([cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA) for f in frames])
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0  # (N, 3, S, S)
    with torch.inference_mode():
        y = _load(config.model)(x).reshape(len(frames), -1)[:, 0]  # (N,)
    return float(y.mean())
