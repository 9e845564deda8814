"""Which words does a model listen to? The denoising loss it pays when one attribute of a prompt is swapped.

`kinema eval adherence` tells whether generated videos show the prompt; this tells why not. For a
rendered toy-world clip with prompt P, and the counterfactual prompt P' that names a different color
(shape, object motion, camera motion) and is otherwise the same caption, the DiT's flow-matching loss
on the clip's latents, with the same noise and the same t, rises by as much as the model uses that
attribute at that noise level. The rise is reported as a share of the empty prompt's rise (what the
whole prompt is worth there): 0% = the model ignores the words, 100% = they matter as much as the
whole prompt. No sampling and no judge are involved: it separates what the DiT learned from how a
sampler uses it. The DiT is called through `Pipeline.velocity` (the conditional velocity, no guidance
batching); `kinema.toyworld.report` writes the report.

    kinema eval sensitivity -n 48            # the shipped toy model; --checkpoint DIR for another

With `--wording train|held-out` each clip's prompt is in a random wording of that set, and its
counterfactuals in the same wording (the same draws), so they still differ in the attribute's words only.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from kinema.caption.wording import WordingSet
from kinema.flow.path import interpolate, velocity_target
from kinema.toyworld.captions import scene_prompt
from kinema.toyworld.judge import ATTRIBUTES
from kinema.toyworld.render import render_batch
from kinema.toyworld.scene import COLORS, SHAPES, SceneTruth

if TYPE_CHECKING:
    from kinema.pipeline import Pipeline

_OPPOSITE_MOTION = {"right": "left", "left": "right", "up": "down", "down": "up", "still": "right"}
_OPPOSITE_CAMERA = {
    "pan left": "pan right", "pan right": "pan left", "tilt up": "tilt down", "tilt down": "tilt up",
    "zoom in": "zoom out", "zoom out": "zoom in", "tilt left": "tilt right", "tilt right": "tilt left",
    "static shot": "pan left", "handheld shot": "zoom in",
}


def counterfactual(scene: SceneTruth, attribute: str) -> SceneTruth:
    """The scene with one attribute of its first object (or its camera) changed, everything else kept.

    color: the next color no other object has; shape: the next shape; motion: the opposite direction
    (still -> right); camera: the opposite motion (static -> pan left, handheld -> zoom in).
    """
    first, rest = scene.objects[0], scene.objects[1:]
    if attribute == "camera":
        return replace(scene, camera=_OPPOSITE_CAMERA[scene.camera])
    if attribute == "color":
        taken = {o.color for o in rest}
        names = list(COLORS)
        i = names.index(first.color)
        changed = replace(first, color=next(c for c in names[i + 1 :] + names[:i] if c not in taken))
    elif attribute == "shape":
        changed = replace(first, shape=SHAPES[(SHAPES.index(first.shape) + 1) % len(SHAPES)])
    elif attribute == "motion":
        changed = replace(first, motion=_OPPOSITE_MOTION[first.motion])
    else:
        raise ValueError(f"unknown attribute {attribute!r}; choose from {', '.join(ATTRIBUTES)}")
    return replace(scene, objects=(changed, *rest))


@dataclass(frozen=True)
class SensitivityReport:
    """Mean flow-matching loss per prompt kind ("true", "empty", and each attribute swapped) per time."""

    times: tuple[float, ...]
    loss: dict[str, list[float]]
    videos: int
    wording: str = "template"  # the prompts' wording set (kinema.caption.wording)

    def share(self, attribute: str) -> list[float]:
        """Per time: (loss with the attribute swapped − true loss) / (empty-prompt loss − true loss)."""
        true, empty, swapped = self.loss["true"], self.loss["empty"], self.loss[attribute]
        return [(s - a) / (e - a) if e > a else float("nan") for a, e, s in zip(true, empty, swapped)]

    def table(self) -> str:
        attributes = [a for a in ATTRIBUTES if a in self.loss]
        lines = [
            "share of the whole prompt's worth lost by swapping one attribute (0% = the model ignores it)",
            f"{'t':<8}" + "".join(f"{a:>9}" for a in attributes) + f"{'loss':>9}{'empty':>9}",
        ]
        for i, t in enumerate(self.times):
            cells = "".join(f"{100 * self.share(a)[i]:>8.1f}%" for a in attributes)
            lines.append(f"{t:<8g}{cells}{self.loss['true'][i]:>9.4f}{self.loss['empty'][i]:>9.4f}")
        lines.append(f"videos: {self.videos}, wording: {self.wording}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        attributes = [a for a in ATTRIBUTES if a in self.loss]
        return {"times": list(self.times), "videos": self.videos, "wording": self.wording, "loss": self.loss,
                "share": {a: self.share(a) for a in attributes}}


@torch.no_grad()
def text_sensitivity(
    pipe: Pipeline, scenes: Sequence[SceneTruth], times: Sequence[float] = (0.5, 0.8, 0.95), seed: int = 0,
    batch: int = 16,
    wording: WordingSet = "template",
) -> SensitivityReport:
    """Render `scenes`, encode them with the pipeline's VAE, and measure the DiT's loss per prompt kind.

    Attributes whose swap cannot change the prompt (motion and camera of still images) are left out.

    Args:
        scenes: toy-world scenes, all of one frame count and size.
        times: flow times t in (0, 1) (1 = pure noise).
        seed: the noise, shared by every prompt kind.
        batch: clips per forward.
        wording: the prompts' wording set; clip i's prompt and its counterfactuals are worded with the
            same draws (seed + i), so they differ only in the swapped attribute's words.
    """
    from kinema.pixels import to_model_range

    if not scenes:
        raise ValueError("text_sensitivity needs at least one scene")
    if any(not 0.0 < t < 1.0 for t in times):
        raise ValueError(f"times must lie in (0, 1), got {list(times)}")
    def prompt(scene: SceneTruth, i: int) -> str:
        return scene_prompt(scene, wording, random.Random(seed + i))

    prompts = {"true": [prompt(s, i) for i, s in enumerate(scenes)], "empty": [""] * len(scenes)}
    for attribute in ATTRIBUTES:
        swapped = [prompt(counterfactual(s, attribute), i) for i, s in enumerate(scenes)]
        if swapped != prompts["true"]:
            prompts[attribute] = swapped

    # 1. Latents: the posterior mean of every render, scaled as the DiT sees them.
    dtype = next(pipe.vae.parameters()).dtype
    latents = torch.cat([
        pipe.vae.encode(to_model_range(render_batch(scenes[i : i + batch])).to(pipe.device, dtype)).mean
        for i in range(0, len(scenes), batch)
    ]) * pipe.vae.cfg.scaling_factor  # (N, C, T', H', W')
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(seed)).to(latents)
    target = velocity_target(latents, noise)

    # 2. The loss of every prompt kind at every time, same latents and noise.
    texts = {kind: pipe.encode_text(p) for kind, p in prompts.items()}
    loss: dict[str, list[float]] = {kind: [] for kind in prompts}
    for t in tqdm(times, desc="sensitivity", unit="t", leave=False):
        t_all = torch.full((len(scenes),), float(t), device=latents.device)
        x_t = interpolate(latents, noise, t_all)
        for kind, text in texts.items():
            total = 0.0
            for i in range(0, len(scenes), batch):
                part = slice(i, i + batch)
                v = pipe.velocity(x_t[part], t_all[part], text[part], pipe.defaults.guidance)
                total += torch.nn.functional.mse_loss(v.float(), target[part].float(), reduction="sum").item()
            loss[kind].append(total / target.numel())
    return SensitivityReport(tuple(float(t) for t in times), loss, len(scenes), wording)
