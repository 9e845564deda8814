"""Training the causal VAE: L1 (or MSE) + KL (+ adversarial late), a curriculum from short low-res to long high-res.

    kinema train-vae configs/toy/vae.yaml [--resume]

`VAETrainer` is the set-up (clips, a held-out set, the VAE, its optimizer, the PatchGAN discriminator
when the recipe has an adversarial weight), one step and the export (EMA weights and the measured
latent scaling factor); kinema.train.loop runs it: stages in order, checkpoints (the discriminator and
its optimizer inside each one), resume with the same losses, since every random draw of step s comes
from generators seeded by (seed, s).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kinema.config import load_yaml
from kinema.models.checkpoints import load_vae, save_model
from kinema.models.vae import CausalVAE, build_vae
from kinema.pixels import to_model_range
from kinema.train.checkpoint import EMA, ExtraState, step_generator
from kinema.train.data import Clip, load_clips, sample_windows
from kinema.train.loop import RunRecipe, begin_step, optimizer_step, run, stage_at, start_run

RECONSTRUCTION_LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss}


@dataclass(frozen=True)
class VAEStage:
    """One curriculum stage: `steps` steps on windows of `frames` × `height` × `width`."""

    steps: int
    frames: int
    height: int
    width: int
    batch_size: int
    max_stride: int = 8

    def __post_init__(self) -> None:
        if (self.frames - 1) % 4:
            raise ValueError(f"stage frames must be 4k+1, got {self.frames}")
        if self.height % 8 or self.width % 8:
            raise ValueError(f"stage height/width must be multiples of 8, got {self.height}×{self.width}")
        if min(self.steps, self.batch_size, self.max_stride) < 1:
            raise ValueError("stage steps, batch_size and max_stride must be positive")


@dataclass(frozen=True, kw_only=True)
class VAERecipe(RunRecipe):
    """A VAE training run (with `RunRecipe`'s run folder, seed, schedule and cadence)."""

    dataset: str
    stages: list[VAEStage]
    model: str = "toy"
    output: str | None = None  # where the final VAE is exported in kinema format
    init: str | None = None  # start from this exported VAE (its config replaces `model`)
    # Train the decoder only: the latent space and its scaling factor stay as `init` made them, so a DiT
    # trained on `init`'s latents stays valid with the new decoder.
    freeze_encoder: bool = False
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.0
    kl_weight: float = 1e-6
    reconstruction_loss: str = "l1"  # "l1", or "mse", which is what PSNR measures
    adversarial_weight: float = 0.0
    adversarial_start: int = 0  # step at which the discriminator joins (HunyuanVideo adds it late)
    ema_decay: float | None = None
    max_clips: int | None = None
    eval_clips: int = 16  # held-out clips: reconstruction PSNR every `eval_every` steps and at the end
    eval_every: int = 200

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a VAE recipe needs at least one stage")
        if self.reconstruction_loss not in RECONSTRUCTION_LOSSES:
            choices = sorted(RECONSTRUCTION_LOSSES)
            raise ValueError(f"reconstruction_loss must be one of {choices}, got {self.reconstruction_loss!r}")
        if self.eval_clips < 0:
            raise ValueError(f"eval_clips must be 0 or more, got {self.eval_clips}")
        if self.freeze_encoder and not self.init:
            raise ValueError("freeze_encoder needs init: the exported VAE whose encoder to keep")

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def stage_at(self, step: int) -> VAEStage:
        return stage_at(self.stages, step)


class PatchDiscriminator(nn.Module):
    """A small 3D PatchGAN: real/fake logits per space-time patch (hinge loss)."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv3d(3, c, 3, stride=(1, 2, 2), padding=1), nn.LeakyReLU(0.2),
            nn.Conv3d(c, 2 * c, 3, stride=(2, 2, 2), padding=1), nn.GroupNorm(8, 2 * c), nn.LeakyReLU(0.2),
            nn.Conv3d(2 * c, 2 * c, 3, stride=1, padding=1), nn.GroupNorm(8, 2 * c), nn.LeakyReLU(0.2),
            nn.Conv3d(2 * c, 1, 3, stride=1, padding=1),
        )

    def forward(self, video: Tensor) -> Tensor:
        return self.net(video)


def psnr(a: Tensor, b: Tensor) -> float:
    """PSNR in dB of two videos in [−1, 1] (peak-to-peak 2)."""
    mse = F.mse_loss(a.clamp(-1, 1), b.clamp(-1, 1)).item()
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


@torch.no_grad()
def measure_scaling_factor(vae: CausalVAE, videos: Tensor) -> float:
    """1 / std of the posterior means: the factor that gives the DiT unit-variance latents."""
    return 1.0 / vae.encode(videos).mean.std().item()


def held_out_video(recipe: VAERecipe, clips: list[Clip]) -> Tensor:
    """The evaluation windows: every held-out clip once, its first frames (the last stage's count, or as
    many as the shortest clip allows, 4k+1), centre-cropped to the last stage's size.

    Returns:
        (N, 3, T, H, W) in [−1, 1].
    """
    stage = recipe.stages[-1]
    frames = min(stage.frames, min(c.video.shape[0] for c in clips))
    frames = (frames - 1) // 4 * 4 + 1
    windows = []
    for clip in clips:
        h, w = clip.video.shape[1:3]
        if h < stage.height or w < stage.width:
            raise ValueError(f"held-out clip {clip.id} ({h}×{w}) is smaller than the last stage's {stage.height}×{stage.width}")
        y0, x0 = (h - stage.height) // 2, (w - stage.width) // 2
        windows.append(clip.video[:frames, y0 : y0 + stage.height, x0 : x0 + stage.width])
    return to_model_range(np.stack(windows))


def held_out_count(recipe: VAERecipe, clips: int) -> int:
    """How many of the data set's `clips` to hold out: `eval_clips`, or on a smaller set all but one (said
    in one line on stderr), so a small curated set still trains and is still measured.

    Raises:
        ValueError: a set of fewer than 2 clips when `eval_clips` asks for any.
    """
    wanted = recipe.eval_clips
    if wanted == 0:
        return 0
    if clips < 2:
        raise ValueError(f"dataset {recipe.dataset} has {clips} usable video clip: the VAE trainer needs at least 2 "
                         f"(one to evaluate on, one to train on), or eval_clips: 0")
    if wanted < clips:
        return wanted
    print(f"evaluating on {clips - 1} of the {clips} clips of {recipe.dataset}; eval_clips is {wanted}",
          file=sys.stderr)
    return clips - 1


@torch.no_grad()
def reconstruction_psnr(vae: CausalVAE, video: Tensor) -> float:
    return psnr(vae.decode(vae.encode(video).mode()), video)


class VAETrainer:
    """Set-up (data, VAE, optimizer, discriminator) and one optimisation step of a VAE run; `run` drives it."""

    kind = "vae"

    def __init__(self, recipe: VAERecipe) -> None:
        self.recipe = recipe
        clips = load_clips(recipe.dataset, limit=recipe.max_clips)
        n_eval = held_out_count(recipe, len(clips))
        eval_clips, self.clips = clips[:n_eval], clips[n_eval:]
        torch.manual_seed(recipe.seed)
        self.model = (load_vae(recipe.init) if recipe.init else build_vae(recipe.model)).train()
        if recipe.freeze_encoder:
            self.model.encoder.requires_grad_(False)
            self.model.quant_conv.requires_grad_(False)
        self.trained = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.trained, lr=recipe.lr, weight_decay=recipe.weight_decay, betas=(0.9, 0.99)
        )
        self.discriminator = PatchDiscriminator() if recipe.adversarial_weight > 0 else None
        self.extra: ExtraState = {}
        if self.discriminator is not None:
            self.disc_optimizer = torch.optim.AdamW(self.discriminator.parameters(), lr=recipe.lr, betas=(0.5, 0.9))
            self.extra = {"discriminator": {"model": self.discriminator, "optimizer": self.disc_optimizer}}
        self.ema = EMA(self.model, recipe.ema_decay) if recipe.ema_decay else None
        self.eval_clips = len(eval_clips)
        self.held_out = held_out_video(recipe, eval_clips) if eval_clips else None

    def step(self, step: int) -> dict[str, float]:
        """One optimizer step of the VAE (and of the discriminator once it has joined)."""
        r, vae = self.recipe, self.model
        stage = r.stage_at(step)
        g = step_generator(r.seed, step)
        windows = sample_windows(self.clips, stage.batch_size, stage.frames, stage.height, stage.width, stage.max_stride, g)
        video = to_model_range(windows)  # (B, 3, T, H, W)
        out = vae(video, sample=True, generator=step_generator(r.seed, step, stream=1))
        rec = RECONSTRUCTION_LOSSES[r.reconstruction_loss](out.reconstruction, video)
        # KL summed over latent elements, per pixel: with kl_weight 1e-6 this is LDM's NLL_sum + 1e-6·KL_sum.
        kl = out.posterior.kl().mean() / video[0].numel()
        loss = rec + r.kl_weight * kl
        adversarial = self.discriminator is not None and step >= r.adversarial_start
        adv = torch.zeros(())
        if adversarial:
            adv = -self.discriminator(out.reconstruction).mean()  # hinge generator loss
            loss = loss + r.adversarial_weight * adv
        begin_step(self, r.lr_at(step))
        loss.backward()
        grad_norm = optimizer_step(self, self.trained, 1.0)
        if adversarial:
            real, fake = self.discriminator(video), self.discriminator(out.reconstruction.detach())
            d_loss = F.relu(1 - real).mean() + F.relu(1 + fake).mean()  # hinge discriminator loss
            self.disc_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.disc_optimizer.step()
        scalars = {"loss": loss.item(), r.reconstruction_loss: rec.item(), "kl": kl.item(), "adv": adv.item(),
                   "grad_norm": grad_norm, "lr": self.optimizer.param_groups[0]["lr"]}
        if self.held_out is not None and (step + 1) % r.eval_every == 0:
            vae.eval()
            scalars["eval_psnr"] = reconstruction_psnr(vae, self.held_out)
            vae.train()
        return scalars

    def export(self, run_dir: Path) -> Path:
        """The VAE in kinema's format: EMA weights if kept, the measured latent scaling factor (kept with a
        frozen encoder); prints the held-out PSNR."""
        r, vae = self.recipe, self.model.eval()
        if self.ema is not None:
            self.ema.copy_to(vae)
        if self.held_out is not None:
            scale = vae.cfg.scaling_factor if r.freeze_encoder else measure_scaling_factor(vae, self.held_out)
            value = reconstruction_psnr(vae, self.held_out)
            print(f"held-out reconstruction PSNR {value:.2f} dB on {self.eval_clips} clips; "
                  f"latent scaling factor {scale:.4f}")
            vae.cfg = dataclasses.replace(vae.cfg, scaling_factor=scale)
        output = Path(r.output) if r.output else run_dir / "vae"
        save_model(vae, "vae", output)
        print(f"wrote {output}")
        return output


def train_vae(recipe: VAERecipe, resume: bool = False, recipe_path: Path | None = None) -> Path:
    """Run (or resume) a VAE training recipe; returns the exported VAE folder."""
    run_dir = start_run(recipe, recipe_path)
    return run(VAETrainer(recipe), recipe, run_dir, resume=resume)


def main_train_vae(config: str, resume: bool) -> int:
    recipe = load_yaml(VAERecipe, config)
    train_vae(recipe, resume=resume, recipe_path=Path(config))
    return 0
