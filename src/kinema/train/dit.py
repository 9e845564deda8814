"""Training the diffusion transformer with flow matching, in progressive stages over buckets.

    kinema train configs/toy/dit.yaml [--resume] [--max-steps N] [--nproc N]

The recipe is kinema.train.dit_recipe's `DiTRecipe`. Set-up: the frozen VAE (its compression and the
DiT's patch size check the recipe's buckets first), the latent + prompt cache (kinema.train.latent_cache,
built once on rank 0), the DiT and its optimizer; `DiTTrainer.step` is one optimizer step over the
stage's buckets; kinema.train.loop runs it (resume, checkpoints, stages) and `DiTTrainer.export` writes
a pipeline folder (dit/, vae/, pipeline.json) that `kinema generate` loads. Under torchrun every rank
draws the whole batch and trains on its share (kinema.train.distributed).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from kinema.config import load_yaml
from kinema.flow import flow_matching_loss, noisy_inputs
from kinema.models.checkpoints import load_vae
from kinema.models.sizes import build_dit, dit_config
from kinema.models.text import TextEmbedding
from kinema.models.vae import CausalVAE
from kinema.models.velocity import dit_velocity
from kinema.pipeline_folder import PipelineSpec, save_pipeline
from kinema.train.checkpoint import EMA, ExtraState, step_generator
from kinema.train.distributed import Parallel, init_parallel
from kinema.train.dit_recipe import Bucket, DiTRecipe
from kinema.train.latent_cache import LatentCache, ensure_latent_cache
from kinema.train.loop import run, start_run


class DiTTrainer:
    """The DiT, its optimizer and EMA, and one optimisation step of a DiT run; `run` drives it."""

    kind = "dit"

    def __init__(self, recipe: DiTRecipe, cache: LatentCache, vae: CausalVAE, parallel: Parallel | None = None) -> None:
        self.recipe = recipe
        self.cache = cache
        self.vae = vae
        self.scale = vae.cfg.scaling_factor
        self.parallel = parallel or Parallel()
        torch.manual_seed(recipe.seed)
        self.model = build_dit(recipe.model).train()
        self.model.gradient_checkpointing = recipe.gradient_checkpointing
        self.net = self.parallel.wrap(self.model)  # what forward runs through: the model, or DDP / FSDP2 of it
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, betas=(0.9, 0.99)
        )
        self.ema = EMA(self.model, recipe.ema_decay) if recipe.ema_decay else None
        self.extra: ExtraState = {}

    def text(self, idx: Tensor, g: torch.Generator) -> TextEmbedding:
        """A random cached prompt variant per sample; the empty prompt with probability text_dropout (for CFG)."""
        variant = torch.randint(self.cache.prompts.variants, (len(idx),), generator=g)
        drop = torch.rand(len(idx), generator=g) < self.recipe.text_dropout  # (B,)
        return self.cache.prompts.text(idx, variant, empty=drop)

    def micro_batch_loss(self, bucket: Bucket, g: torch.Generator) -> Tensor:
        data = self.cache.buckets[bucket.name]
        idx = torch.randint(len(data), (bucket.batch_size,), generator=g)
        latents = data.sample(idx, g, self.scale)  # (B, C, T, H, W)
        text = self.text(idx, g)
        t = self.recipe.time.sample(bucket.batch_size, g)
        x_t, noise = noisy_inputs(latents, t, g)
        # Every rank drew the whole batch (same generator, same numbers); it trains on its share.
        x_t, t, latents, noise, *text = self.parallel.shard_batch(
            x_t, t, latents, noise, text.states, text.mask, text.pooled)
        guidance = None if self.recipe.guidance is None else torch.full_like(t, self.recipe.guidance)
        velocity = dit_velocity(self.net, x_t, t, TextEmbedding(*text), guidance)
        return flow_matching_loss(velocity, latents, noise)

    def step(self, step: int) -> dict[str, float]:
        """One optimizer step: `grad_accum` micro-batches, all randomness from (seed, step)."""
        stage = self.recipe.stage_at(step)
        g = step_generator(self.recipe.seed, step)
        weights = torch.tensor([b.weight for b in stage.buckets])
        first = int(torch.multinomial(weights, 1, generator=g))
        for group in self.optimizer.param_groups:
            group["lr"] = self.recipe.lr_at(step)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for k in range(stage.grad_accum):
            bucket = stage.buckets[(first + k) % len(stage.buckets)]  # cycle: every global batch mixes buckets
            loss = self.micro_batch_loss(bucket, g) / stage.grad_accum
            (loss * self.parallel.loss_scale).backward()
            total += loss.item()
        grad_norm = self.parallel.clip_grad_norm(self.model.parameters(), self.recipe.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return {"loss": self.parallel.mean(total), "grad_norm": grad_norm, "lr": self.optimizer.param_groups[0]["lr"]}

    def export(self, run_dir: Path) -> Path:
        """The pipeline folder (rank 0 writes it): EMA weights, the VAE, the text encoder name and sampling defaults."""
        model = self.model.eval()
        if self.ema is not None:
            self.ema.copy_to(model)
        output = Path(self.recipe.output) if self.recipe.output else run_dir / "pipeline"
        model = self.parallel.full_model(model)  # FSDP's shards gathered on rank 0; None on the other ranks
        if model is not None:
            save_pipeline(output, model, self.vae, PipelineSpec(self.recipe.text_encoder, self.recipe.sampling))
            print(f"wrote {output}")
        self.parallel.barrier()
        return output


def train_dit(
    recipe: DiTRecipe, resume: bool = False, recipe_path: Path | None = None, max_steps: int | None = None,
    parallel: Parallel | None = None,
) -> Path | None:
    """Run (or resume) a DiT recipe. Returns the exported pipeline folder once the run is complete.

    `max_steps` stops early (after checkpointing) without exporting, e.g. to split a run over sessions.
    `parallel` is this process's place in a torchrun job (`init_parallel`); None: one lone process.

    Raises:
        ValueError: a bucket the VAE or the DiT cannot take (before any latent is encoded).
    """
    parallel = parallel or Parallel()
    run_dir = start_run(recipe, recipe_path, parallel.is_main)
    vae = load_vae(recipe.vae)
    recipe.check_buckets(vae.cfg, dit_config(recipe.model))
    # The frozen VAE encodes every clip into every bucket once (latent caching, on rank 0).
    cache = ensure_latent_cache(recipe, run_dir / "latents.safetensors", vae, parallel)
    trainer = DiTTrainer(recipe, cache, vae, parallel)
    return run(trainer, recipe, run_dir, resume=resume, max_steps=max_steps, parallel=parallel)


def main_train_dit(config: str, resume: bool, max_steps: int | None = None) -> int:
    recipe = load_yaml(DiTRecipe, config)
    parallel = init_parallel(recipe.parallel)  # the processes torchrun started, or this one alone
    try:
        train_dit(recipe, resume=resume, recipe_path=Path(config), max_steps=max_steps, parallel=parallel)
    finally:
        parallel.close()
    return 0
