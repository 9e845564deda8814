"""Text to video: text encoding, flow sampling with guidance, VAE decoding.

    from kinema import Pipeline
    pipe = Pipeline.from_pretrained()                 # the shipped toy model
    video = pipe("a red circle moves to the right", seed=0)
    video.save("out.mp4")                             # out.mp4 + out.png (contact sheet)

A pipeline folder holds `pipeline.json` (text encoder, sampling defaults), `dit/` and `vae/` in kinema's
checkpoint format. `kinema generate`, `kinema serve` and `kinema eval` all go through this class.

Shape legend: B batch, C latent channels, T/H/W latent frames/height/width.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from kinema.flow import classifier_free_guidance, euler, sigma_schedule
from kinema.media import contact_sheet, write_mp4, write_png
from kinema.models.checkpoints import load_dit, load_vae, save_model
from kinema.models.dit import DiT
from kinema.models.text import TextEmbedding, build_text_encoder
from kinema.models.tiling import TilingConfig
from kinema.models.vae import CausalVAE
from kinema.train.dit import SamplingDefaults

PIPELINE_FILE = "pipeline.json"


def default_checkpoint() -> Path:
    """The shipped toy model: `checkpoints/toy` at the root of the kinema source tree."""
    return Path(__file__).resolve().parents[2] / "checkpoints" / "toy"


@dataclass(frozen=True)
class GeneratedVideo:
    """A generated clip: (T, H, W, 3) uint8 RGB frames and how they were made."""

    frames: np.ndarray
    fps: float
    prompt: str
    seed: int

    def save(self, path: str | os.PathLike) -> tuple[Path, Path]:
        """Write the mp4 and a contact-sheet PNG beside it (same name, .png); returns both paths."""
        mp4 = write_mp4(path, self.frames, self.fps)
        png = write_png(Path(path).with_suffix(".png"), contact_sheet(self.frames))
        return mp4, png


def save_pipeline(folder: str | os.PathLike, dit: DiT, vae: CausalVAE, text_encoder: str, defaults: SamplingDefaults) -> Path:
    """Write a pipeline folder atomically (a temporary folder renamed into place)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        save_model(dit, "dit", tmp / "dit")
        save_model(vae, "vae", tmp / "vae")
        meta = {"format": "kinema-pipeline", "text_encoder": text_encoder, "defaults": dataclasses.asdict(defaults)}
        (tmp / PIPELINE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


class Pipeline:
    """HunyuanVideo-style text-to-video generation with any kinema DiT/VAE/text-encoder triple."""

    def __init__(self, dit: DiT, vae: CausalVAE, text_encoder: object, defaults: SamplingDefaults) -> None:
        self.dit = dit.eval()
        self.vae = vae.eval()
        self.text_encoder = text_encoder
        self.defaults = defaults
        self.tiling: TilingConfig | None = TilingConfig()  # None: always decode whole videos

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike | None = None, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> Pipeline:
        """Load a pipeline folder (default: the shipped toy model)."""
        folder = Path(path) if path is not None else default_checkpoint()
        meta_path = folder / PIPELINE_FILE
        if path is None and not meta_path.is_file():
            raise FileNotFoundError(
                f"the shipped toy model is missing from {folder}: train it with the recipes in configs/toy "
                "(README, 'Train'), or pass a pipeline folder with --checkpoint"
            )
        if not meta_path.is_file():
            raise FileNotFoundError(f"{folder} is not a kinema pipeline folder: it has no {PIPELINE_FILE}")
        meta = json.loads(meta_path.read_text())
        defaults = SamplingDefaults(**meta.get("defaults", {}))
        dit = load_dit(folder / "dit", dtype=dtype, device=device)
        vae = load_vae(folder / "vae", dtype=dtype, device=device)
        return cls(dit, vae, build_text_encoder(meta["text_encoder"]), defaults)

    @property
    def device(self) -> torch.device:
        return next(self.dit.parameters()).device

    def _check(self, frames: int, height: int, width: int, steps: int, cfg_scale: float) -> None:
        ct = self.vae.cfg.temporal_compression_ratio
        unit = self.vae.cfg.spatial_compression_ratio * self.dit.cfg.patch[1]
        if frames < 1 or (frames - 1) % ct:
            raise ValueError(f"frames must be {ct}k+1 (1, {ct + 1}, {2 * ct + 1}, ...), got {frames}")
        if height < unit or width < unit or height % unit or width % unit:
            raise ValueError(f"height and width must be positive multiples of {unit}, got {height}×{width}")
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        if cfg_scale < 1:
            raise ValueError(f"cfg_scale must be at least 1 (1 disables classifier-free guidance), got {cfg_scale}")

    def encode_text(self, prompts: list[str]) -> TextEmbedding:
        """Encode prompts with the pipeline's text encoder, on the DiT's device and dtype."""
        emb = self.text_encoder.encode(prompts)
        dtype = next(self.dit.parameters()).dtype
        return TextEmbedding(emb.states.to(self.device, dtype), emb.mask.to(self.device), emb.pooled.to(self.device, dtype))

    @torch.no_grad()
    def generate(
        self,
        prompts: list[str],
        seeds: list[int],
        negative_prompt: str = "",
        steps: int | None = None,
        shift: float | None = None,
        cfg_scale: float | None = None,
        guidance: float | None = None,
        frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        progress: bool = False,
    ) -> list[GeneratedVideo]:
        """Generate one video per prompt; sample i is a function of (prompts[i], seeds[i]) alone."""
        d = self.defaults
        steps = steps or d.steps
        shift = shift if shift is not None else d.shift_for(steps)
        cfg_scale = cfg_scale if cfg_scale is not None else d.cfg_scale
        guidance = guidance if guidance is not None else d.guidance
        frames, height, width = frames or d.frames, height or d.height, width or d.width
        self._check(frames, height, width, steps, cfg_scale)
        if len(prompts) != len(seeds):
            raise ValueError("give one seed per prompt")
        if guidance is not None and not self.dit.cfg.guidance_embed:
            raise ValueError("this model has no guidance embedding: use cfg_scale for guidance")

        # 1. Text: the prompts, and the negative prompt for classifier-free guidance.
        b = len(prompts)
        use_cfg = cfg_scale > 1.0
        text = self.encode_text(prompts + [negative_prompt] * b if use_cfg else prompts)

        # 2. Noise, one generator per sample so batching never changes a sample.
        vcfg = self.vae.cfg
        shape = (vcfg.latent_channels, (frames - 1) // vcfg.temporal_compression_ratio + 1,
                 height // vcfg.spatial_compression_ratio, width // vcfg.spatial_compression_ratio)
        noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds])
        dtype = next(self.dit.parameters()).dtype
        noise = noise.to(self.device, dtype)  # (B, C, T, H, W)

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            if not use_cfg:
                return self.velocity(x, t, text, guidance)
            v_cond, v_uncond = self.velocity(torch.cat([x, x]), torch.cat([t, t]), text, guidance).chunk(2)
            return classifier_free_guidance(v_cond, v_uncond, cfg_scale)

        # 3. Solve the flow ODE from noise to latents, then decode.
        bar = tqdm(total=steps, desc="sampling", unit="step", disable=not progress, leave=False)
        latents = euler(velocity, noise, sigma_schedule(steps, shift), callback=lambda i, x: bar.update(1))
        bar.close()
        video = self._decode((latents / vcfg.scaling_factor).to(next(self.vae.parameters()).dtype), frames, height, width)
        pixels = video.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
        pixels = pixels.permute(0, 2, 3, 4, 1).cpu().numpy()  # (B, T, H, W, 3)
        fps = d.fps
        return [GeneratedVideo(pixels[i], fps, prompts[i], seeds[i]) for i in range(b)]

    def velocity(self, latents: Tensor, t: Tensor, text: TextEmbedding, guidance: float | None = None) -> Tensor:
        """The DiT's velocity for scaled latents (B, C, T, H, W) at flow times t (B,) in [0, 1].

        `text` comes from `encode_text`. Guidance-embedded models read `guidance` (default 6.0, the
        reference's); other models ignore it.
        """
        g = None
        if self.dit.cfg.guidance_embed:
            g = torch.full_like(t, 1000.0 * (6.0 if guidance is None else guidance))
        return self.dit(latents, t * 1000, text.states, text.mask, text.pooled, g)

    def _decode(self, latents: Tensor, frames: int, height: int, width: int) -> Tensor:
        """Decode latents, tiled in space and time when the video is larger than one tile.

        Tiling bounds peak memory by the tile (reference: 256 px, 64+1 frames), so 720p × 129 frames
        decodes on one device; small videos decode whole, which is faster and exact.
        """
        tiles = self.tiling
        if tiles is None or (max(height, width) <= tiles.tile_size and frames <= tiles.tile_frames + 1):
            return self.vae.decode(latents)
        saved, self.vae.tiling = self.vae.tiling, tiles
        try:
            return self.vae.decode(latents)
        finally:
            self.vae.tiling = saved

    def __call__(
        self,
        prompt: str,
        seed: int = 0,
        negative_prompt: str = "",
        steps: int | None = None,
        shift: float | None = None,
        cfg_scale: float | None = None,
        guidance: float | None = None,
        frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        progress: bool = False,
    ) -> GeneratedVideo:
        """Generate one video; unset options take the checkpoint's defaults (see `generate`)."""
        return self.generate(
            [prompt], [seed], negative_prompt, steps, shift, cfg_scale, guidance, frames, height, width, progress
        )[0]
