"""Training the diffusion transformer with flow matching, in progressive stages over buckets.

    kinema train configs/toy/dit.yaml [--resume] [--max-steps N] [--nproc N]

The recipe is kinema.train.dit_recipe's `DiTRecipe`. Set-up: the frozen VAE (its compression and the
DiT's patch size check the recipe's buckets first), the latent + prompt cache (kinema.train.latent_cache,
built once on rank 0), the DiT and its optimizer; `DiTTrainer.step` is one optimizer step over the
stage's buckets; kinema.train.loop runs it (resume, checkpoints, stages) and `DiTTrainer.export` writes
a pipeline folder (dit/, vae/, pipeline.json) that `kinema generate` loads. Under torchrun every rank
draws the whole batch and trains on its share (kinema.train.distributed).

A recipe's `init` starts the DiT (and its EMA) from a checkpoint instead of fresh weights: fine-tuning,
or a long run split into stages that each end in an export the next starts from. The weights are
loaded before the model is wrapped or sharded; `--resume` ignores them and continues from the run's own
checkpoint, so init only seeds step 0 of a fresh run.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import torch
from torch import Tensor

from kinema.config import load_yaml
from kinema.flow import flow_matching_loss, noisy_inputs
from kinema.models import vae_convert
from kinema.models.checkpoints import OFFICIAL_DIT_FILE, CheckpointError, load_dit, load_vae, locate, read_torch_file
from kinema.models.dit import DiT, DiTConfig
from kinema.models.dit_convert import dit_config_from_diffusers, dit_config_from_official
from kinema.models.sizes import build_dit, dit_config
from kinema.models.text import TextEmbedding
from kinema.models.vae import CausalVAE, VAEConfig
from kinema.models.velocity import dit_velocity
from kinema.pipeline_folder import PipelineSpec, save_pipeline
from kinema.train.checkpoint import EMA, ExtraState, latest_checkpoint, step_generator
from kinema.train.distributed import Parallel, init_parallel
from kinema.train.dit_recipe import Bucket, DiTRecipe
from kinema.train.latent_cache import LatentCache, ensure_latent_cache, latent_scale_warning
from kinema.train.loop import begin_step, optimizer_step, run, start_run


def _differences(ours: object, theirs: object) -> str:
    """'field a vs b, ...' for the fields in which two dataclasses of one type differ."""
    return ", ".join(
        f"{f.name} {getattr(ours, f.name)} vs {getattr(theirs, f.name)}"
        for f in dataclasses.fields(ours) if getattr(ours, f.name) != getattr(theirs, f.name)
    )


def dit_architecture(recipe: DiTRecipe) -> DiTConfig:
    """The architecture of the DiT a recipe trains, without reading any weights.

    Without `init`: the named size `model` ("toy" when unset). With `init`: the checkpoint's own config
    (kinema, diffusers), which a set `model` must equal. An official .pt has no config and its shapes do
    not tell every field (the RoPE split of heads not 128 wide, absolute positions): there a set `model`
    is the architecture, which the weights must fit when they are loaded (`load_init`).

    Raises:
        FileNotFoundError: `init` does not exist.
        ValueError: `model` names another architecture than `init`'s, or an official `init` whose
            architecture its shapes do not tell and no `model` is set.
    """
    named = dit_config(recipe.model) if recipe.model is not None else None
    if recipe.init is None:
        return named or dit_config("toy")
    try:
        fmt, where = locate(recipe.init, "dit")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"the recipe's init {recipe.init} does not exist: expected a DiT checkpoint (a kinema pipeline or "
            f"model folder, a diffusers folder, or an official {OFFICIAL_DIT_FILE})"
        ) from None
    if fmt == "official":
        if named is not None:
            return named
        try:
            return dit_config_from_official(read_torch_file(where))
        except ValueError as e:
            raise ValueError(
                f"init {recipe.init}: {e}; in a recipe, set model: to the checkpoint's named size"
            ) from None
    meta = json.loads((where / "config.json").read_text())
    recorded = DiTConfig(**meta["config"]) if fmt == "kinema" else dit_config_from_diffusers(meta)
    if named is not None and named != recorded:
        raise ValueError(
            f"the recipe's model {recipe.model!r} is not the architecture of init {recipe.init} "
            f"({_differences(named, recorded)}); leave model unset to train init's"
        )
    return recorded


def load_init(recipe: DiTRecipe, cfg: DiTConfig) -> DiT:
    """The recipe's `init` checkpoint as a DiT of architecture `cfg` (`dit_architecture`), in float32.

    Raises:
        CheckpointError: the weights do not fit `cfg` (naming the recipe's `model` when it set `cfg`).
    """
    try:
        # float32 like a fresh model: the optimizer and EMA keep full precision (bf16 is a parallel: setting)
        return load_dit(recipe.init, dtype=torch.float32, config=cfg)
    except CheckpointError as e:
        if recipe.model is None:
            raise
        raise CheckpointError(f"init {recipe.init} does not fit the recipe's model {recipe.model!r}: {e}") from None


def _vae_config(path: str) -> VAEConfig:
    """The config of the VAE checkpoint at `path` (any format load_vae reads), without its weights."""
    fmt, where = locate(path, "vae")
    meta = json.loads((where / "config.json").read_text())
    if fmt == "kinema":
        return VAEConfig(**meta["config"])
    if fmt == "diffusers":
        return vae_convert.vae_config_from_diffusers(meta)
    return vae_convert.vae_config_from_official(meta)


def check_init_latents(recipe: DiTRecipe, vae: CausalVAE) -> str | None:
    """A one-line warning when `init` is a pipeline folder whose VAE is not like the recipe's `vae` (another
    config or scaling factor): its DiT learned other latents, which a fine-tune rarely wants. None if alike."""
    if recipe.init is None or not (Path(recipe.init) / "vae").is_dir():
        return None
    try:
        theirs = _vae_config(recipe.init)
    except (KeyError, TypeError, ValueError):  # CheckpointError is a ValueError
        return None  # no readable VAE beside the DiT: nothing to compare
    if theirs == vae.cfg:
        return None
    return (
        f"warning: init {recipe.init} was trained on the latents of another VAE than the recipe's vae "
        f"{recipe.vae} ({_differences(vae.cfg, theirs)}); a DiT fine-tuned on other latents than it learned "
        "is rarely wanted"
    )


class DiTTrainer:
    """The DiT, its optimizer and EMA, and one optimisation step of a DiT run; `run` drives it."""

    kind = "dit"

    def __init__(
        self, recipe: DiTRecipe, cache: LatentCache, vae: CausalVAE, parallel: Parallel | None = None,
        start: DiT | DiTConfig | None = None,
    ) -> None:
        """`start`: the DiT to train (the recipe's init, loaded) or the architecture of fresh weights drawn
        from the recipe's seed; None: fresh weights of the recipe's named size."""
        self.recipe = recipe
        self.cache = cache
        self.vae = vae
        self.scale = vae.cfg.scaling_factor
        self.parallel = parallel or Parallel()
        torch.manual_seed(recipe.seed)
        model = start if isinstance(start, DiT) else build_dit(start or recipe.model or "toy")
        self.model = model.train()  # loaded before wrap: DDP broadcasts it, FSDP2 shards it
        self.model.gradient_checkpointing = recipe.gradient_checkpointing
        self.net = self.parallel.wrap(self.model)  # what forward runs through: the model, or DDP / FSDP2 of it
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, betas=(0.9, 0.99)
        )
        self.ema = EMA(self.model, recipe.ema_decay) if recipe.ema_decay else None
        self.extra: ExtraState = {}

    def text(self, rows: Tensor, g: torch.Generator) -> TextEmbedding:
        """A random cached prompt variant of each row (B,); the empty prompt with probability text_dropout (for CFG)."""
        variant = torch.randint(self.cache.prompts.variants, (len(rows),), generator=g)
        drop = torch.rand(len(rows), generator=g) < self.recipe.text_dropout  # (B,)
        return self.cache.prompts.text(rows, variant, empty=drop)

    def micro_batch_loss(self, bucket: Bucket, g: torch.Generator) -> Tensor:
        data = self.cache.buckets[bucket.name]
        idx = torch.randint(len(data), (bucket.batch_size,), generator=g)  # latents of this bucket
        latents = data.sample(idx, g, self.scale)  # (B, C, T, H, W)
        text = self.text(data.rows[idx], g)  # their rows' prompts (image rows sit only in image buckets)
        t = self.recipe.time.sample(bucket.batch_size, g)
        x_t, noise = noisy_inputs(latents, t, g)
        # Every rank drew the whole batch (same generator, same numbers); it trains on its share.
        x_t, t, latents, noise = self.parallel.shard_batch(x_t, t, latents, noise)
        text = self.parallel.shard_text(text)
        guidance = None if self.recipe.guidance is None else torch.full_like(t, self.recipe.guidance)
        velocity = dit_velocity(self.net, x_t, t, text, guidance)
        return flow_matching_loss(velocity, latents, noise)

    def step(self, step: int) -> dict[str, float]:
        """One optimizer step: `grad_accum` micro-batches, all randomness from (seed, step)."""
        stage = self.recipe.stage_at(step)
        g = step_generator(self.recipe.seed, step)
        weights = torch.tensor([b.weight for b in stage.buckets])
        first = int(torch.multinomial(weights, 1, generator=g))
        begin_step(self, self.recipe.lr_at(step))
        total = 0.0
        for k in range(stage.grad_accum):
            bucket = stage.buckets[(first + k) % len(stage.buckets)]  # cycle: every global batch mixes buckets
            loss = self.micro_batch_loss(bucket, g) / stage.grad_accum
            (loss * self.parallel.loss_scale).backward()
            total += loss.item()
        grad_norm = optimizer_step(self, self.model.parameters(), self.recipe.grad_clip)
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
        FileNotFoundError: `init` does not exist.
        ValueError: a bucket the VAE or the DiT cannot take, a `model` that is not `init`'s architecture,
            a `guidance` the DiT has no input for or lacks (all before any latent is encoded), or `init`
            weights that do not fit (CheckpointError).
    """
    parallel = parallel or Parallel()
    run_dir = start_run(recipe, recipe_path, parallel.is_main)
    architecture = dit_architecture(recipe)
    if architecture.guidance_embed != (recipe.guidance is not None):
        raise ValueError(
            "the DiT has a guidance embedding (a cfg-distilled model): set the recipe's guidance: (the reference "
            "feeds 6.0)" if architecture.guidance_embed else "the DiT has no guidance embedding: leave guidance: unset"
        )  # checked here, not deep in the first forward
    vae = load_vae(recipe.vae)
    recipe.check_buckets(vae.cfg, architecture)
    start: DiT | DiTConfig = architecture
    if recipe.init is not None and not (resume and latest_checkpoint(run_dir) is not None):
        start = load_init(recipe, architecture)  # a resumed run's own checkpoint replaces init's weights
        warning = check_init_latents(recipe, vae)
        if warning and parallel.is_main:
            print(warning, file=sys.stderr)
    # The frozen VAE encodes every row into every bucket it fits once (latent caching, on rank 0).
    cache = ensure_latent_cache(recipe, run_dir / "latents.safetensors", vae, parallel)
    warning = latent_scale_warning(cache, vae.cfg.scaling_factor, recipe.vae)
    if warning and parallel.is_main:
        print(warning, file=sys.stderr)
    trainer = DiTTrainer(recipe, cache, vae, parallel, start)
    return run(trainer, recipe, run_dir, resume=resume, max_steps=max_steps, parallel=parallel)


def main_train_dit(config: str, resume: bool, max_steps: int | None = None) -> int:
    recipe = load_yaml(DiTRecipe, config)
    parallel = init_parallel(recipe.parallel)  # the processes torchrun started, or this one alone
    try:
        train_dit(recipe, resume=resume, recipe_path=Path(config), max_steps=max_steps, parallel=parallel)
    finally:
        parallel.close()
    return 0
