"""Text to video: text encoding, flow sampling with guidance, VAE decoding.

    from kinema import Pipeline
    from kinema.options import SamplingOptions

    pipe = Pipeline.from_pretrained()                             # the shipped toy model
    video = pipe("a red circle moves to the right", seed=0)        # the checkpoint's defaults
    video = pipe("a blue star moves up", SamplingOptions(steps=8, seed=3))
    videos = pipe.generate(prompts, [SamplingOptions(seed=s) for s in seeds])   # one batch
    video.save("out.mp4")                                         # out.mp4 + out.png (contact sheet)

A request is one `SamplingOptions` (kinema.options: the nine options, validated when it is made);
unset fields take the checkpoint's `SamplingDefaults`, and the pipeline adds the checks that depend on
the model (frame and size units, a guidance embedding). The pipeline folder (`pipeline.json`, `dit/`,
`vae/`) is `kinema.pipeline_folder`'s; the DiT is called through `kinema.models.velocity` and the
flow ODE solved by `kinema.flow.euler`. `kinema generate`, `kinema serve` and `kinema eval` all go
through this class. Nothing here imports `kinema.train`.

Shape legend: B batch, C latent channels, T/H/W latent frames/height/width.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from kinema.flow import euler, sigma_schedule
from kinema.media import contact_sheet, write_mp4, write_png
from kinema.models.checkpoints import load_dit, load_vae
from kinema.models.dit import DiT
from kinema.models.text import TextEmbedding, TextEncoder, build_text_encoder
from kinema.models.tiling import TilingConfig
from kinema.models.vae import CausalVAE
from kinema.models.velocity import cfg_velocity, dit_velocity
from kinema.options import SamplingDefaults, SamplingOptions
from kinema.pipeline_folder import default_checkpoint, is_pipeline_folder, read_pipeline_spec
from kinema.pixels import from_model_range

DEFAULT_GUIDANCE = 6.0  # embedded guidance when neither the request nor the checkpoint gives one (the reference's)


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


class Pipeline:
    """HunyuanVideo-style text-to-video generation with any kinema DiT/VAE/text-encoder triple.

    Attributes:
        tiling: how videos larger than one tile are decoded (None: always whole).
    """

    def __init__(self, dit: DiT, vae: CausalVAE, text_encoder: TextEncoder, defaults: SamplingDefaults) -> None:
        self.dit = dit.eval()
        self.vae = vae.eval()
        self.text_encoder = text_encoder
        self.defaults = defaults
        self.tiling: TilingConfig | None = TilingConfig()

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike | None = None, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> Pipeline:
        """Load a pipeline folder (default: the shipped toy model).

        Raises:
            FileNotFoundError: the folder is not a pipeline folder.
            kinema.config.ConfigError: its pipeline.json does not describe a pipeline.
        """
        folder = Path(path) if path is not None else default_checkpoint()
        if path is None and not is_pipeline_folder(folder):
            raise FileNotFoundError(
                f"the shipped toy model is missing from {folder}: train it with the recipes in configs/toy "
                "(README, 'Train'), or pass a pipeline folder with --checkpoint"
            )
        spec = read_pipeline_spec(folder)
        dit = load_dit(folder / "dit", dtype=dtype, device=device)
        vae = load_vae(folder / "vae", dtype=dtype, device=device)
        return cls(dit, vae, build_text_encoder(spec.text_encoder), spec.defaults)

    @property
    def device(self) -> torch.device:
        return next(self.dit.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.dit.parameters()).dtype

    def resolve(self, options: SamplingOptions) -> SamplingOptions:
        """`options` with every unset field taken from the checkpoint's defaults, checked against the model.

        Raises:
            ValueError: frames, height or width do not fit the VAE and patch size, or guidance is asked
                of a model without a guidance embedding.
        """
        o = options.resolve(self.defaults)
        ct = self.vae.cfg.temporal_compression_ratio
        unit = self.vae.cfg.spatial_compression_ratio * self.dit.cfg.patch[1]
        if (o.frames - 1) % ct:
            raise ValueError(f"frames must be {ct}k+1 (1, {ct + 1}, {2 * ct + 1}, ...), got {o.frames}")
        if o.height % unit or o.width % unit:
            raise ValueError(f"height and width must be positive multiples of {unit}, got {o.height}×{o.width}")
        if o.guidance is not None and not self.dit.cfg.guidance_embed:
            raise ValueError("this model has no guidance embedding: use cfg_scale for guidance")
        if o.guidance is None and self.dit.cfg.guidance_embed:
            o = dataclasses.replace(o, guidance=DEFAULT_GUIDANCE)
        return o

    def encode_text(self, prompts: list[str]) -> TextEmbedding:
        """Encode prompts with the pipeline's text encoder, on the DiT's device and dtype."""
        return self.text_encoder.encode(prompts).to(self.device, self.dtype)

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        options: SamplingOptions | Sequence[SamplingOptions] = SamplingOptions(),
        progress: bool = False,
    ) -> list[GeneratedVideo]:
        """Generate one video per prompt, in one batch; sample i is a function of (prompts[i], its options) alone.

        Args:
            prompts: what each video shows.
            options: one `SamplingOptions` for every prompt, or one per prompt. A batch shares its
                schedule and size, so per-prompt options may differ in seed and negative prompt only.
            progress: show a progress bar over the sampling steps.
        Raises:
            ValueError: bad options (see `resolve`), or per-prompt options that do not fit one batch.
        """
        if isinstance(prompts, str) or not prompts:
            raise ValueError("generate takes a non-empty list of prompts")
        b = len(prompts)
        each = [options] * b if isinstance(options, SamplingOptions) else list(options)
        if len(each) != b:
            raise ValueError(f"give one SamplingOptions for all prompts or one per prompt ({b}), got {len(each)}")
        each = [self.resolve(o) for o in each]
        o = each[0]
        if any(dataclasses.replace(x, seed=o.seed, negative_prompt=o.negative_prompt) != o for x in each):
            raise ValueError("a batch shares steps, shift, guidance and size: per-prompt options may differ "
                             "in seed and negative prompt only")

        # 1. Text: the prompts, and the negative prompts for classifier-free guidance.
        use_cfg = o.cfg_scale > 1.0
        text = self.encode_text(list(prompts) + [x.negative_prompt for x in each] if use_cfg else list(prompts))
        cond, uncond = text[:b], text[b:]

        # 2. Noise, one generator per sample so batching never changes a sample.
        vcfg = self.vae.cfg
        shape = (vcfg.latent_channels, (o.frames - 1) // vcfg.temporal_compression_ratio + 1,
                 o.height // vcfg.spatial_compression_ratio, o.width // vcfg.spatial_compression_ratio)
        noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(x.seed)) for x in each])
        noise = noise.to(self.device, self.dtype)  # (B, C, T, H, W)

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            g = None if o.guidance is None else t.new_full(t.shape, o.guidance)
            if use_cfg:
                return cfg_velocity(self.dit, x, t, cond, uncond, o.cfg_scale, g)
            return dit_velocity(self.dit, x, t, cond, g)

        # 3. Solve the flow ODE from noise to latents, then decode.
        bar = tqdm(total=o.steps, desc="sampling", unit="step", disable=not progress, leave=False)
        latents = euler(velocity, noise, sigma_schedule(o.steps, o.shift), callback=lambda i, x: bar.update(1))
        bar.close()
        pixels = from_model_range(self.decode(latents))  # (B, T', H', W', 3) uint8
        return [GeneratedVideo(pixels[i], self.defaults.fps, prompts[i], each[i].seed) for i in range(b)]

    def __call__(
        self, prompt: str, options: SamplingOptions = SamplingOptions(), *, seed: int | None = None,
        progress: bool = False,
    ) -> GeneratedVideo:
        """Generate one video; unset options take the checkpoint's defaults.

        `seed`, when given, replaces `options.seed`: `pipe(prompt, seed=3)`, or one setting over many
        seeds, `pipe(prompt, options, seed=i)`.
        """
        if seed is not None:
            options = dataclasses.replace(options, seed=seed)
        return self.generate([prompt], options, progress)[0]

    def velocity(self, latents: Tensor, t: Tensor, text: TextEmbedding, guidance: float | None = None) -> Tensor:
        """The DiT's conditional velocity for scaled latents (B, C, T, H, W) at flow times t (B,) in [0, 1].

        `text` comes from `encode_text`. Guidance-embedded models read `guidance` (default 6.0, the
        reference's); other models ignore it.
        """
        g = None
        if self.dit.cfg.guidance_embed:
            g = t.new_full(t.shape, DEFAULT_GUIDANCE if guidance is None else guidance)
        return dit_velocity(self.dit, latents, t, text, g)

    def decode(self, latents: Tensor) -> Tensor:
        """Decode scaled latents (B, C, T, H, W) into video in [−1, 1] (not clamped), (B, 3, T', H', W').

        Videos larger than one tile (`self.tiling`; reference: 256 px, 64+1 frames) decode tile by tile,
        which bounds peak memory so that 720p × 129 frames decodes on one device; smaller ones decode
        whole, which is faster and exact.
        """
        vcfg = self.vae.cfg
        frames = (latents.shape[2] - 1) * vcfg.temporal_compression_ratio + 1
        side = max(latents.shape[3:]) * vcfg.spatial_compression_ratio
        tiles = self.tiling
        if tiles is not None and side <= tiles.tile_size and frames <= tiles.tile_frames + 1:
            tiles = None
        unscaled = (latents / vcfg.scaling_factor).to(next(self.vae.parameters()).dtype)
        return self.vae.decode(unscaled, tiling=tiles)
