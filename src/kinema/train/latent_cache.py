"""The DiT's latent + prompt cache: every clip encoded once by the frozen VAE into every bucket of the
recipe, and K prompt variants per clip encoded once by the text encoder.

    cache = ensure_latent_cache(recipe, run_dir / "latents.safetensors", vae, parallel)
    x0 = cache.buckets["32x32x9"].sample(idx, generator, scale)      # (B, C, T, H, W) latents
    text = cache.prompts.text(idx, variant)                          # a TextEmbedding, B prompts

The cache is one safetensors file ("HxWxF/mean", "HxWxF/std" per bucket, "prompts/..."), stored with
two keys that say what it was made from: `prompt_key` (text encoder, variants, seed, caption-field
dropout, wording) and `data_key` (the data set's manifest, `max_clips` and the VAE's files, by content). A run
reuses the cache when both fit, re-encodes only the text when only the prompt settings changed, and
encodes everything again otherwise. Distillation reads the teacher run's cache as it is.

Shape legend: N clips, K prompt variants, C latent channels, T/H/W latent frames/height/width, L text
tokens, D token width, P pooled width.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from kinema.caption.schema import Caption, PromptDropout, caption_to_prompt
from kinema.caption.wording import WordingSet
from kinema.data.manifest import manifest_file
from kinema.fsutil import save_safetensors
from kinema.models.text import TextEmbedding, TextEncoder, build_text_encoder
from kinema.pixels import to_model_range
from kinema.train.data import Clip, load_captions, load_clips
from kinema.train.distributed import Parallel
from kinema.train.dit_recipe import Bucket, DiTRecipe


@dataclass
class LatentBucket:
    """Cached VAE posteriors of every clip fitted to one aspect-ratio × frame-count bucket."""

    mean: Tensor  # (N, C, T, H, W) unscaled
    std: Tensor  # (N, C, T, H, W)

    def __len__(self) -> int:
        return len(self.mean)

    def sample(self, idx: Tensor, generator: torch.Generator, scale: float) -> Tensor:
        """Latents of clips `idx` (B,) drawn from their posteriors, mean + std·ε, times the VAE's `scale`:
        (B, C, T, H, W)."""
        mean, std = self.mean[idx], self.std[idx]
        return (mean + std * torch.randn(mean.shape, generator=generator)) * scale


@dataclass
class PromptCache:
    """K encoded prompt variants per clip (different caption fields dropped), and the empty prompt.

    Encoding text costs about a third of a toy DiT step on a CPU, so it is done once, up front.
    """

    states: Tensor  # (N, K, L, D)
    mask: Tensor  # (N, K, L) bool
    pooled: Tensor  # (N, K, P)
    empty_states: Tensor  # (L, D)
    empty_mask: Tensor  # (L,)
    empty_pooled: Tensor  # (P,)

    @classmethod
    def from_embedding(cls, emb: TextEmbedding, clips: int, variants: int) -> PromptCache:
        """From `clips` × `variants` encoded prompts, clip by clip, followed by the empty prompt."""
        n, k = clips, variants
        return cls(
            states=emb.states[:-1].reshape(n, k, *emb.states.shape[1:]),
            mask=emb.mask[:-1].reshape(n, k, -1),
            pooled=emb.pooled[:-1].reshape(n, k, -1),
            empty_states=emb.states[-1], empty_mask=emb.mask[-1], empty_pooled=emb.pooled[-1],
        )

    @property
    def variants(self) -> int:
        """K."""
        return self.states.shape[1]

    def text(self, idx: Tensor, variant: Tensor, empty: Tensor | None = None) -> TextEmbedding:
        """Prompt `variant` (B,) of clips `idx` (B,); the empty prompt where `empty` (B,) bool is True."""
        states, mask, pooled = self.states[idx, variant], self.mask[idx, variant], self.pooled[idx, variant]
        if empty is not None:
            states = torch.where(empty[:, None, None], self.empty_states, states)  # (B, L, D)
            mask = torch.where(empty[:, None], self.empty_mask, mask)  # (B, L)
            pooled = torch.where(empty[:, None], self.empty_pooled, pooled)  # (B, P)
        return TextEmbedding(states, mask, pooled)

    def empty(self, batch: int) -> TextEmbedding:
        """The empty prompt `batch` times (classifier-free guidance's unconditional side)."""
        return TextEmbedding(self.empty_states[None], self.empty_mask[None], self.empty_pooled[None]).expand(batch)


@dataclass
class LatentCache:
    """Everything a DiT step reads, precomputed: latents per bucket and text per clip, aligned by clip index."""

    buckets: dict[str, LatentBucket]
    prompts: PromptCache
    prompt_key: str = ""  # how the prompts were made (`prompt_cache_key`); "" = unknown
    data_key: str = ""  # what the latents were made from (`data_cache_key`); "" = unknown

    def save(self, path: Path) -> None:
        tensors = {f"{name}/{k}": getattr(b, k).contiguous() for name, b in self.buckets.items() for k in ("mean", "std")}
        tensors.update({f"prompts/{k}": v.contiguous() for k, v in vars(self.prompts).items()})
        save_safetensors(tensors, path, metadata={"prompt_key": self.prompt_key, "data_key": self.data_key})

    @classmethod
    def load(cls, path: Path) -> LatentCache:
        from safetensors import safe_open

        with safe_open(path, "pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            keys = f.metadata() or {}
        names = sorted({k.split("/")[0] for k in tensors if not k.startswith("prompts/")})
        buckets = {n: LatentBucket(tensors[f"{n}/mean"], tensors[f"{n}/std"]) for n in names}
        prompts = PromptCache(**{k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("prompts/")})
        return cls(buckets, prompts, keys.get("prompt_key", ""), keys.get("data_key", ""))


# ------------------------------------------------------------------------------------------- building


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


@torch.no_grad()
def encode_bucket(vae: torch.nn.Module, videos: np.ndarray, name: str, batch: int = 16) -> LatentBucket:
    """Encode (N, T, H, W, 3) uint8 videos with the VAE into posterior moments."""
    means, stds = [], []
    for i in tqdm(range(0, len(videos), batch), desc=f"encode {name}", unit="batch", leave=False):
        posterior = vae.encode(to_model_range(videos[i : i + batch]))
        means.append(posterior.mean)
        stds.append(torch.exp(0.5 * posterior.logvar))
    return LatentBucket(torch.cat(means), torch.cat(stds))


# The recipe's `prompt_wording` -> the wording set the variants after the first are drawn from.
PROMPT_WORDINGS: dict[str, WordingSet] = {"template": "template", "varied": "train"}


def prompt_variants(
    caption_json: str, k: int, rng: random.Random, dropout: PromptDropout, wording: WordingSet = "template"
) -> list[str]:
    """K training prompts for one caption: the full template prompt, then variants with fields dropped at
    random, in `wording` ("train": a random train wording each; never "held-out", which evaluation keeps)."""
    if wording == "held-out":
        raise ValueError("training prompts must not use the held-out wordings; use 'template' or 'train'")
    caption = Caption.model_validate_json(caption_json)
    return [caption_to_prompt(caption)] + [caption_to_prompt(caption, dropout, rng, wording) for _ in range(k - 1)]


def recipe_wording(recipe: DiTRecipe) -> WordingSet:
    """The wording set of the recipe's `prompt_wording` ("template" or "varied", checked when the recipe is read)."""
    return PROMPT_WORDINGS[recipe.prompt_wording]


def encode_prompts(encoder: TextEncoder, prompts: list[str], batch: int = 64) -> TextEmbedding:
    """Encode many prompts, `batch` at a time, into one embedding."""
    steps = tqdm(range(0, len(prompts), batch), desc="encode text", leave=False)
    return TextEmbedding.cat([encoder.encode(prompts[i : i + batch]) for i in steps])


def prompt_cache_key(recipe: DiTRecipe) -> str:
    """What a cache's prompts depend on: when it changes, the text is encoded again."""
    key = {
        "text_encoder": recipe.text_encoder, "variants": recipe.prompt_variants, "seed": recipe.seed,
        "dropout": dataclasses.asdict(recipe.prompt_dropout),
    }
    if recipe.prompt_wording != "template":  # absent for the template, so caches made before it stay valid
        key["wording"] = recipe.prompt_wording
    return json.dumps(key, sort_keys=True)


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
    """K prompt variants per caption (the recipe's caption-field dropout and wording) and the empty prompt,
    encoded."""
    rng = random.Random(recipe.seed)
    k, wording = recipe.prompt_variants, recipe_wording(recipe)
    texts = [p for c in captions for p in prompt_variants(c, k, rng, recipe.prompt_dropout, wording)]
    emb = encode_prompts(build_text_encoder(recipe.text_encoder), texts + [""])
    return PromptCache.from_embedding(emb, len(captions), k)


@torch.no_grad()
def build_latent_cache(recipe: DiTRecipe, clips: list[Clip], vae: torch.nn.Module, data_key: str = "") -> LatentCache:
    """Encode every clip into every bucket the recipe uses, and K prompt variants per clip.

    `data_key`: what the clips and VAE are (`data_cache_key`), stored with the cache."""
    latents = {
        name: encode_bucket(vae, np.stack([fit_to_bucket(c.video, b) for c in clips]), name)
        for name, b in recipe.buckets.items()
    }
    prompts = build_prompt_cache(recipe, [c.caption for c in clips])
    return LatentCache(latents, prompts, prompt_cache_key(recipe), data_key)


def ensure_latent_cache(recipe: DiTRecipe, path: Path, vae: torch.nn.Module, parallel: Parallel) -> LatentCache:
    """The run's cache: reused when it fits the recipe, its text re-encoded when only the prompt settings
    changed, built again (on rank 0) when it lacks a bucket or the data set or the VAE changed."""
    needed = set(recipe.buckets)
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
