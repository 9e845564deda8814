"""Training the causal VAE: L1 (or MSE) + KL (+ adversarial late), a curriculum from short low-res to long high-res.

    kinema train-vae configs/toy/vae.yaml [--resume]

Skeleton: setup -> loop (stages in order) -> checkpoint -> export. Every random draw of step s comes
from generators seeded by (seed, s), so `--resume` continues with the same losses.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kinema.models.checkpoints import load_vae, save_model
from kinema.models.vae import CausalVAE, build_vae
from kinema.train.checkpoint import EMA, latest_checkpoint, load_checkpoint, save_checkpoint, step_generator
from kinema.train.data import load_clips, sample_windows, to_model_range
from kinema.config import load_yaml
from kinema.train.runtime import Logger, lr_at, start_run


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


@dataclass(frozen=True)
class VAERecipe:
    """A VAE training run."""

    run_dir: str
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
    cooldown: int = 0  # linear learning-rate decay over the last `cooldown` steps
    weight_decay: float = 0.0
    kl_weight: float = 1e-6
    reconstruction_loss: str = "l1"  # "l1", or "mse", which is what PSNR measures
    adversarial_weight: float = 0.0
    adversarial_start: int = 0  # step at which the discriminator joins (HunyuanVideo adds it late)
    ema_decay: float | None = None
    seed: int = 0
    max_clips: int | None = None
    checkpoint_every: int = 250
    log_every: int = 10
    threads: int | None = None
    eval_clips: int = 16  # held-out clips: reconstruction PSNR every `eval_every` steps and at the end
    eval_every: int = 200

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a VAE recipe needs at least one stage")
        if self.reconstruction_loss not in RECONSTRUCTION_LOSSES:
            choices = sorted(RECONSTRUCTION_LOSSES)
            raise ValueError(f"reconstruction_loss must be one of {choices}, got {self.reconstruction_loss!r}")
        if self.freeze_encoder and not self.init:
            raise ValueError("freeze_encoder needs init: the exported VAE whose encoder to keep")

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def stage_at(self, step: int) -> VAEStage:
        for stage in self.stages:
            if step < stage.steps:
                return stage
            step -= stage.steps
        return self.stages[-1]


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


def held_out_video(recipe: VAERecipe, clips: list) -> torch.Tensor:
    """Fixed evaluation windows: the last stage's size, as many frames as the clips allow (4k+1)."""
    stage = recipe.stages[-1]
    frames = min(stage.frames, min(c.video.shape[0] for c in clips))
    frames = (frames - 1) // 4 * 4 + 1
    windows = sample_windows(clips, len(clips), frames, stage.height, stage.width, 1, torch.Generator().manual_seed(recipe.seed))
    return to_model_range(windows)


@torch.no_grad()
def reconstruction_psnr(vae: CausalVAE, video: torch.Tensor) -> float:
    return psnr(vae.decode(vae.encode(video).mode()), video)


def train_vae(recipe: VAERecipe, resume: bool = False, recipe_path: Path | None = None) -> Path:
    """Run (or resume) a VAE training recipe; returns the exported VAE folder."""
    run_dir = start_run(recipe.run_dir, recipe.threads, recipe_path)

    # 1. Setup: data, model, optimizer, state.
    clips = load_clips(recipe.dataset, limit=recipe.max_clips)
    eval_clips, clips = clips[: recipe.eval_clips], clips[recipe.eval_clips :]
    if not clips:
        raise ValueError(f"dataset {recipe.dataset} has no clips left for training after {recipe.eval_clips} for evaluation")
    torch.manual_seed(recipe.seed)
    vae = (load_vae(recipe.init) if recipe.init else build_vae(recipe.model)).train()
    if recipe.freeze_encoder:
        vae.encoder.requires_grad_(False)
        vae.quant_conv.requires_grad_(False)
    trained = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=recipe.lr, weight_decay=recipe.weight_decay, betas=(0.9, 0.99))
    disc = PatchDiscriminator() if recipe.adversarial_weight > 0 else None
    disc_opt = torch.optim.AdamW(disc.parameters(), lr=recipe.lr, betas=(0.5, 0.9)) if disc is not None else None
    ema = EMA(vae, recipe.ema_decay) if recipe.ema_decay else None
    step = 0
    found = latest_checkpoint(run_dir) if resume else None
    if found is not None:
        state = load_checkpoint(found, vae, opt, ema)
        if disc is not None and (found / "discriminator.pt").is_file():
            saved = torch.load(found / "discriminator.pt", weights_only=True)
            disc.load_state_dict(saved["model"])
            disc_opt.load_state_dict(saved["optimizer"])
        step = state["step"]
        print(f"resumed {run_dir} at step {step} from {found.name}")
    log = Logger(run_dir, recipe.total_steps, step, "train-vae")
    held_out = held_out_video(recipe, eval_clips) if eval_clips else None

    # 2. Loop.
    while step < recipe.total_steps:
        stage = recipe.stage_at(step)
        g = step_generator(recipe.seed, step)
        video = to_model_range(sample_windows(clips, stage.batch_size, stage.frames, stage.height, stage.width, stage.max_stride, g))
        out = vae(video, sample=True, generator=step_generator(recipe.seed, step, stream=1))
        rec = RECONSTRUCTION_LOSSES[recipe.reconstruction_loss](out.reconstruction, video)
        # KL summed over latent elements, per pixel: with kl_weight 1e-6 this is LDM's NLL_sum + 1e-6·KL_sum.
        kl = out.posterior.kl().mean() / video[0].numel()
        loss = rec + recipe.kl_weight * kl
        adv = torch.zeros(())
        if disc is not None and step >= recipe.adversarial_start:
            adv = -disc(out.reconstruction).mean()  # hinge generator loss
            loss = loss + recipe.adversarial_weight * adv
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe.lr, recipe.warmup, recipe.total_steps, recipe.cooldown)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        if disc is not None and step >= recipe.adversarial_start:
            d_loss = F.relu(1 - disc(video)).mean() + F.relu(1 + disc(out.reconstruction.detach())).mean()
            disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            disc_opt.step()
        if ema is not None:
            ema.update(vae)
        step += 1
        scalars = {"loss": loss.item(), recipe.reconstruction_loss: rec.item(), "kl": kl.item(), "adv": adv.item(),
                   "grad_norm": grad_norm.item()}
        if held_out is not None and step % recipe.eval_every == 0:
            vae.eval()
            scalars["eval_psnr"] = reconstruction_psnr(vae, held_out)
            vae.train()
        log.step(step, scalars, every=recipe.log_every)
        if step % recipe.checkpoint_every == 0 or step == recipe.total_steps:
            path = save_checkpoint(run_dir, step, vae, opt, ema, {"kind": "vae"})
            if disc is not None:
                torch.save({"model": disc.state_dict(), "optimizer": disc_opt.state_dict()}, path / "discriminator.pt")
    log.close()

    # 3. Export: EMA weights if kept, the measured scaling factor (kept with a frozen encoder), held-out PSNR.
    vae.eval()
    if ema is not None:
        ema.copy_to(vae)
    if held_out is not None:
        scale = vae.cfg.scaling_factor if recipe.freeze_encoder else measure_scaling_factor(vae, held_out)
        value = reconstruction_psnr(vae, held_out)
        print(f"held-out reconstruction PSNR {value:.2f} dB on {len(eval_clips)} clips; latent scaling factor {scale:.4f}")
        vae.cfg = dataclasses.replace(vae.cfg, scaling_factor=scale)
    output = Path(recipe.output) if recipe.output else run_dir / "vae"
    save_model(vae, "vae", output)
    print(f"wrote {output}")
    return output


def main_train_vae(config: str, resume: bool) -> int:
    recipe = load_yaml(VAERecipe, config)
    train_vae(recipe, resume=resume, recipe_path=Path(config))
    return 0
