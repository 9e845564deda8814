"""Training the diffusion transformer with flow matching, in progressive stages over buckets.

    kinema train configs/toy/dit.yaml [--resume]

Skeleton: setup (latent cache, text encoder, model) -> loop over stages -> checkpoint -> export a
pipeline folder (dit/, vae/, pipeline.json) that `kinema generate` loads.

Each stage lists aspect-ratio × frame-count buckets (height × width × frames in pixels; frames 1 =
images, which the causal VAE encodes alone). Every micro-batch comes from one bucket; with
`grad_accum` > 1 the micro-batches of one optimizer step cycle through the stage's buckets, so every
global batch mixes scales (HunyuanVideo §4.3's mixed-scale training) without padding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from kinema.caption.schema import Caption, PromptDropout, caption_to_prompt
from kinema.data.manifest import manifest_file
from kinema.flow import TimeSampler, flow_matching_loss, noisy_inputs
from kinema.models.checkpoints import load_vae
from kinema.models.sizes import build_dit
from kinema.models.text import TextEmbedding, build_text_encoder
from kinema.options import SamplingDefaults
from kinema.pipeline_folder import PipelineSpec, save_pipeline
from kinema.train.checkpoint import EMA, latest_checkpoint, step_generator
from kinema.train.data import Clip, LatentCache, PromptCache, bucket_name, encode_bucket, load_captions, load_clips
from kinema.train.distributed import (
    Parallel,
    ParallelConfig,
    init_parallel,
    load_training_checkpoint,
    save_training_checkpoint,
)
from kinema.config import load_yaml
from kinema.train.runtime import Logger, lr_at, start_run


@dataclass(frozen=True)
class Bucket:
    """Samples of `height` × `width` pixels and `frames` frames (1: images), drawn with relative `weight`."""

    height: int
    width: int
    frames: int
    batch_size: int
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.height % 16 or self.width % 16:
            raise ValueError(f"bucket sizes must be multiples of 16, got {self.height}×{self.width}")
        if (self.frames - 1) % 4:
            raise ValueError(f"bucket frames must be 4k+1 (1 for images), got {self.frames}")

    @property
    def name(self) -> str:
        return bucket_name(self.height, self.width, self.frames)


@dataclass(frozen=True)
class DiTStage:
    name: str
    steps: int
    buckets: list[Bucket]
    grad_accum: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1 or self.grad_accum < 1 or not self.buckets:
            raise ValueError(f"stage {self.name!r} needs steps ≥ 1, grad_accum ≥ 1 and at least one bucket")


@dataclass(frozen=True)
class TimeRecipe:
    kind: Literal["uniform", "logit_normal"] = "logit_normal"
    mean: float = 0.0
    std: float = 1.0
    shift: float = 1.0


@dataclass(frozen=True)
class DiTRecipe:
    """A DiT training run."""

    run_dir: str
    dataset: str
    vae: str
    stages: list[DiTStage]
    model: str = "toy"
    text_encoder: str = "minilm"
    output: str | None = None
    lr: float = 3e-4
    warmup: int = 200
    cooldown: int = 0  # linear learning-rate decay over the last `cooldown` steps
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float | None = 0.999
    time: TimeRecipe = field(default_factory=TimeRecipe)
    text_dropout: float = 0.1
    prompt_variants: int = 4  # cached prompts per clip: the full one, then random field dropout
    # How often each caption field is left out of the variants. Short prompts matter: a word among 40
    # tokens is learned several times more slowly than among 9 (benchmarks/RESULTS.md, "What makes the motion words learnable").
    prompt_dropout: PromptDropout = field(default_factory=PromptDropout)
    seed: int = 0
    max_clips: int | None = None
    checkpoint_every: int = 250
    log_every: int = 10
    threads: int | None = None
    gradient_checkpointing: bool = False
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)
    # Embedded guidance fed while training a guidance-embedded model (e.g. fine-tuning the released
    # cfg-distilled 13B DiT, whose guidance input the reference sets to 6.0); None for models without one.
    guidance: float | None = None
    parallel: ParallelConfig = field(default_factory=ParallelConfig)  # under torchrun (kinema.train.distributed)

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a DiT recipe needs at least one stage")
        if self.prompt_variants < 1:
            raise ValueError(f"prompt_variants must be at least 1, got {self.prompt_variants}")
        if not 0.0 <= self.text_dropout < 1.0:
            raise ValueError(f"text_dropout must be in [0, 1), got {self.text_dropout}")

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def stage_at(self, step: int) -> DiTStage:
        for stage in self.stages:
            if step < stage.steps:
                return stage
            step -= stage.steps
        return self.stages[-1]


def fit_to_bucket(video: np.ndarray, bucket: Bucket) -> np.ndarray:
    """Resize (area) so the frames cover the bucket, centre-crop, keep the first `frames` frames.

    (T, H, W, 3) uint8 -> (frames, height, width, 3) uint8.
    """
    t, h, w = video.shape[:3]
    if t < bucket.frames:
        raise ValueError(f"a clip of {t} frames cannot fill a {bucket.frames}-frame bucket")
    scale = max(bucket.height / h, bucket.width / w)
    rh, rw = max(bucket.height, round(h * scale)), max(bucket.width, round(w * scale))
    y0, x0 = (rh - bucket.height) // 2, (rw - bucket.width) // 2
    out = np.empty((bucket.frames, bucket.height, bucket.width, 3), dtype=np.uint8)
    for i in range(bucket.frames):
        frame = video[i] if (rh, rw) == (h, w) else cv2.resize(video[i], (rw, rh), interpolation=cv2.INTER_AREA)
        out[i] = frame[y0 : y0 + bucket.height, x0 : x0 + bucket.width]
    return out


def prompt_variants(caption_json: str, k: int, rng: random.Random, dropout: PromptDropout) -> list[str]:
    """K training prompts for one caption: the full prompt, then variants with fields dropped at random."""
    caption = Caption.model_validate_json(caption_json)
    return [caption_to_prompt(caption)] + [caption_to_prompt(caption, dropout, rng) for _ in range(k - 1)]


def encode_prompts(encoder: object, prompts: list[str], batch: int = 64) -> TextEmbedding:
    parts = [encoder.encode(prompts[i : i + batch]) for i in tqdm(range(0, len(prompts), batch), desc="encode text", leave=False)]
    return TextEmbedding(*(torch.cat([getattr(p, f) for p in parts]) for f in ("states", "mask", "pooled")))


def prompt_cache_key(recipe: DiTRecipe) -> str:
    """What a cache's prompts depend on: when it changes, the text is encoded again."""
    return json.dumps({
        "text_encoder": recipe.text_encoder, "variants": recipe.prompt_variants, "seed": recipe.seed,
        "dropout": dataclasses.asdict(recipe.prompt_dropout),
    }, sort_keys=True)


def data_cache_key(recipe: DiTRecipe) -> str | None:
    """What a cache's latents depend on: the data set's manifest, `max_clips` and the VAE's files, by
    content. None when the data set is not there (a cache made elsewhere is then taken as it is)."""
    manifest = manifest_file(recipe.dataset)
    if not manifest.is_file():
        return None
    vae = Path(recipe.vae)
    digest = hashlib.sha256(str(recipe.max_clips).encode())
    for file in [manifest, *sorted(f for f in (vae.rglob("*") if vae.is_dir() else [vae]) if f.is_file())]:
        with open(file, "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


@torch.no_grad()
def build_prompt_cache(recipe: DiTRecipe, captions: list[str]) -> PromptCache:
    """K prompt variants per caption (the recipe's caption-field dropout) and the empty prompt, encoded."""
    rng = random.Random(recipe.seed)
    k = recipe.prompt_variants
    texts = [p for c in captions for p in prompt_variants(c, k, rng, recipe.prompt_dropout)]
    emb = encode_prompts(build_text_encoder(recipe.text_encoder), texts + [""])
    n = len(captions)
    return PromptCache(
        states=emb.states[:-1].reshape(n, k, *emb.states.shape[1:]),
        mask=emb.mask[:-1].reshape(n, k, -1),
        pooled=emb.pooled[:-1].reshape(n, k, -1),
        empty_states=emb.states[-1], empty_mask=emb.mask[-1], empty_pooled=emb.pooled[-1],
    )


@torch.no_grad()
def build_latent_cache(recipe: DiTRecipe, clips: list[Clip], vae: torch.nn.Module, data_key: str = "") -> LatentCache:
    """Encode every clip into every bucket the recipe uses, and K prompt variants per clip.

    `data_key`: what the clips and VAE are (`data_cache_key`), stored with the cache."""
    buckets = {b.name: b for stage in recipe.stages for b in stage.buckets}
    latents = {
        name: encode_bucket(vae, np.stack([fit_to_bucket(c.video, b) for c in clips]), name)
        for name, b in buckets.items()
    }
    prompts = build_prompt_cache(recipe, [c.caption for c in clips])
    return LatentCache(latents, prompts, prompt_cache_key(recipe), data_key)


def ensure_latent_cache(recipe: DiTRecipe, path: Path, vae: torch.nn.Module, parallel: Parallel) -> LatentCache:
    """The run's cache: reused when it fits the recipe, its text re-encoded when only the prompt settings
    changed, built again (on rank 0) when it lacks a bucket or the data set or the VAE changed."""
    needed = {b.name for stage in recipe.stages for b in stage.buckets}
    prompt_key, data_key = prompt_cache_key(recipe), data_cache_key(recipe)

    def latents_fit(cache: LatentCache) -> bool:
        return needed <= set(cache.buckets) and data_key in (None, cache.data_key)

    def fits(cache: LatentCache) -> bool:
        return latents_fit(cache) and cache.prompt_key == prompt_key

    cache = LatentCache.load(path) if path.is_file() else None
    if cache is not None and not latents_fit(cache):
        cache = None
    if parallel.is_main and cache is None:
        cache = build_latent_cache(recipe, load_clips(recipe.dataset, limit=recipe.max_clips), vae, data_key or "")
        cache.save(path)
    elif parallel.is_main and not fits(cache):  # only the prompt settings changed: the text alone
        cache.prompts = build_prompt_cache(recipe, load_captions(recipe.dataset, limit=recipe.max_clips))
        cache.prompt_key = prompt_key
        cache.save(path)
    parallel.barrier()
    return cache if cache is not None and fits(cache) else LatentCache.load(path)


class DiTTrainer:
    """State and one optimisation step of a DiT run; `train_dit` drives it."""

    def __init__(self, recipe: DiTRecipe, cache: LatentCache, vae_scale: float, parallel: Parallel | None = None) -> None:
        self.recipe = recipe
        self.cache = cache
        self.scale = vae_scale
        self.parallel = parallel or Parallel()
        torch.manual_seed(recipe.seed)
        self.model = build_dit(recipe.model).train()
        self.model.gradient_checkpointing = recipe.gradient_checkpointing
        self.net = self.parallel.wrap(self.model)  # what forward runs through: the model, or DDP / FSDP2 of it
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, betas=(0.9, 0.99)
        )
        self.ema = EMA(self.model, recipe.ema_decay) if recipe.ema_decay else None
        self.time = TimeSampler(recipe.time.kind, recipe.time.mean, recipe.time.std, recipe.time.shift)

    def text(self, idx: Tensor, g: torch.Generator) -> TextEmbedding:
        """A random cached prompt variant per sample; the empty prompt with probability text_dropout (for CFG)."""
        p = self.cache.prompts
        variant = torch.randint(p.states.shape[1], (len(idx),), generator=g)
        drop = torch.rand(len(idx), generator=g) < self.recipe.text_dropout  # (B,)
        states = torch.where(drop[:, None, None], p.empty_states, p.states[idx, variant])  # (B, L, D)
        mask = torch.where(drop[:, None], p.empty_mask, p.mask[idx, variant])  # (B, L)
        pooled = torch.where(drop[:, None], p.empty_pooled, p.pooled[idx, variant])  # (B, P)
        return TextEmbedding(states, mask, pooled)

    def micro_batch_loss(self, bucket: Bucket, g: torch.Generator) -> Tensor:
        data = self.cache.buckets[bucket.name]
        idx = torch.randint(len(data.mean), (bucket.batch_size,), generator=g)
        latents = (data.mean[idx] + data.std[idx] * torch.randn(data.mean[idx].shape, generator=g)) * self.scale
        text = self.text(idx, g)
        t = self.time.sample(bucket.batch_size, g)
        x_t, noise = noisy_inputs(latents, t, g)
        # Every rank drew the whole batch (same generator, same numbers); it trains on its share.
        guidance = torch.full_like(t, 1000.0 * (self.recipe.guidance or 0.0))
        x_t, t, latents, noise, states, mask, pooled, guidance = self.parallel.shard_batch(
            x_t, t, latents, noise, text.states, text.mask, text.pooled, guidance)
        velocity = self.net(x_t, t * 1000, states, mask, pooled, guidance if self.recipe.guidance is not None else None)
        return flow_matching_loss(velocity, latents, noise)

    def step(self, step: int) -> dict[str, float]:
        """One optimizer step: `grad_accum` micro-batches, all randomness from (seed, step)."""
        stage = self.recipe.stage_at(step)
        g = step_generator(self.recipe.seed, step)
        weights = torch.tensor([b.weight for b in stage.buckets])
        first = int(torch.multinomial(weights, 1, generator=g))
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(step, self.recipe.lr, self.recipe.warmup, self.recipe.total_steps, self.recipe.cooldown)
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


def train_dit(
    recipe: DiTRecipe, resume: bool = False, recipe_path: Path | None = None, max_steps: int | None = None,
    parallel: Parallel | None = None,
) -> Path | None:
    """Run (or resume) a DiT recipe. Returns the exported pipeline folder once the run is complete.

    `max_steps` stops early (after checkpointing) without exporting, e.g. to split a run over sessions.
    `parallel` is this process's place in a torchrun job (`init_parallel`); None: one lone process.
    """
    parallel = parallel or Parallel()
    run_dir = start_run(recipe.run_dir, recipe.threads, recipe_path, parallel.is_main)

    # 1. Setup: the frozen VAE encodes every clip into every bucket once (latent caching, on rank 0).
    vae = load_vae(recipe.vae)
    cache = ensure_latent_cache(recipe, run_dir / "latents.safetensors", vae, parallel)
    trainer = DiTTrainer(recipe, cache, vae.cfg.scaling_factor, parallel)
    step = 0
    found = latest_checkpoint(run_dir) if resume else None
    if found is not None:
        step = load_training_checkpoint(parallel, found, trainer.model, trainer.optimizer, trainer.ema)["step"]
        if parallel.is_main:
            print(f"resumed {run_dir} at step {step} from {found.name}")
    stop = recipe.total_steps if max_steps is None else min(recipe.total_steps, max_steps)
    log = Logger(run_dir, recipe.total_steps, step, "train", rank=parallel.rank)

    # 2. Loop.
    while step < stop:
        scalars = trainer.step(step)
        step += 1
        log.step(step, scalars, every=recipe.log_every)
        if step % recipe.checkpoint_every == 0 or step == stop:
            save_training_checkpoint(parallel, run_dir, step, trainer.model, trainer.optimizer, trainer.ema, {"kind": "dit"})
    log.close()
    if step < recipe.total_steps:
        return None

    # 3. Export the pipeline: EMA weights, the VAE, the text encoder name and sampling defaults.
    model = trainer.model.eval()
    if trainer.ema is not None:
        trainer.ema.copy_to(model)
    output = Path(recipe.output) if recipe.output else run_dir / "pipeline"
    model = parallel.full_model(model)  # FSDP's shards gathered on rank 0; None on the other ranks
    if model is not None:
        save_pipeline(output, model, vae, PipelineSpec(recipe.text_encoder, recipe.sampling))
        print(f"wrote {output}")
    parallel.barrier()
    return output


def main_train_dit(config: str, resume: bool, max_steps: int | None = None) -> int:
    recipe = load_yaml(DiTRecipe, config)
    parallel = init_parallel(recipe.parallel)  # the processes torchrun started, or this one alone
    try:
        train_dit(recipe, resume=resume, recipe_path=Path(config), max_steps=max_steps, parallel=parallel)
    finally:
        parallel.close()
    return 0
