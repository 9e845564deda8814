"""The DiT's latent + prompt cache: every row of the data (video clips and images) encoded once by the
frozen VAE into every bucket of the recipe it fits, and K prompt variants per row encoded once by the
text encoder.

    cache = ensure_latent_cache(recipe, run_dir / "latents.safetensors", vae, parallel)
    bucket = cache.buckets["32x32x9"]
    x0 = bucket.sample(idx, generator, scale)                        # (B, C, T, H, W) latents
    text = cache.prompts.text(bucket.rows[idx], variant)             # a TextEmbedding, B prompts

A video row fits every bucket its length allows (its first frame fills the image buckets); an image
row, a clip of one frame, fits only the image buckets (frames 1). So a bucket holds the latents of the
rows that fit it, and `rows` says which row each one is: its prompts are that row's.

The cache is one safetensors file ("HxWxF/mean", "HxWxF/std", "HxWxF/rows" per bucket, "prompts/..."),
stored with two keys that say what it was made from: `prompt_key` (text encoder, variants, seed,
caption-field dropout, wording) and `data_key` (the data sets' manifests, `max_clips` and the VAE's
files, by content). A run reuses the cache when both fit, re-encodes only the text when only the prompt
settings changed, and encodes everything again otherwise. Distillation reads the teacher run's cache as
it is. A cache written before image rows were read has no "rows": every row is in every bucket, in order.

Shape legend: N rows (clips and images), N_b the rows that fit a bucket, K prompt variants, C latent
channels, T/H/W latent frames/height/width, L text tokens, D token width, P pooled width.
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
from kinema.data.manifest import manifest_file, read_manifest
from kinema.fsutil import save_safetensors
from kinema.models.text import TextEmbedding, TextEncoder, build_text_encoder
from kinema.pixels import to_model_range
from kinema.train.data import VIDEOS_AND_IMAGES, Clip, load_captions, load_clips
from kinema.train.distributed import Parallel
from kinema.train.dit_recipe import Bucket, DiTRecipe


@dataclass
class LatentBucket:
    """Cached VAE posteriors of the rows that fit one aspect-ratio × frame-count bucket, fitted to it."""

    mean: Tensor  # (N_b, C, T, H, W) unscaled
    std: Tensor  # (N_b, C, T, H, W)
    rows: Tensor | None = None  # (N_b,) long: the row (PromptCache index) of each latent; None: 0..N_b-1

    def __post_init__(self) -> None:
        if self.rows is None:  # every row, in order: a videos-only cache, or one written before image rows
            self.rows = torch.arange(len(self.mean))

    def __len__(self) -> int:
        return len(self.mean)

    def sample(self, idx: Tensor, generator: torch.Generator, scale: float) -> Tensor:
        """Latents `idx` (B,) of this bucket (their rows: `rows[idx]`) drawn from their posteriors,
        mean + std·ε, times the VAE's `scale`: (B, C, T, H, W)."""
        mean, std = self.mean[idx], self.std[idx]
        return (mean + std * torch.randn(mean.shape, generator=generator)) * scale


@dataclass
class PromptCache:
    """K encoded prompt variants per row (different caption fields dropped), and the empty prompt.

    Encoding text costs about a third of a toy DiT step on a CPU, so it is done once, up front.
    """

    states: Tensor  # (N, K, L, D)
    mask: Tensor  # (N, K, L) bool
    pooled: Tensor  # (N, K, P)
    empty_states: Tensor  # (L, D)
    empty_mask: Tensor  # (L,)
    empty_pooled: Tensor  # (P,)

    @classmethod
    def from_embedding(cls, emb: TextEmbedding, rows: int, variants: int) -> PromptCache:
        """From `rows` × `variants` encoded prompts, row by row, followed by the empty prompt."""
        n, k = rows, variants
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
        """Prompt `variant` (B,) of rows `idx` (B,); the empty prompt where `empty` (B,) bool is True."""
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
    """Everything a DiT step reads, precomputed: latents per bucket and text per row; a bucket's `rows`
    align the two."""

    buckets: dict[str, LatentBucket]
    prompts: PromptCache
    prompt_key: str = ""  # how the prompts were made (`prompt_cache_key`); "" = unknown
    data_key: str = ""  # what the latents were made from (`data_cache_key`); "" = unknown

    def save(self, path: Path) -> None:
        tensors = {
            f"{name}/{k}": getattr(b, k).contiguous()
            for name, b in self.buckets.items()
            for k in ("mean", "std", "rows")
        }
        tensors.update({f"prompts/{k}": v.contiguous() for k, v in vars(self.prompts).items()})
        save_safetensors(tensors, path, metadata={"prompt_key": self.prompt_key, "data_key": self.data_key})

    @classmethod
    def load(cls, path: Path) -> LatentCache:
        from safetensors import safe_open

        with safe_open(path, "pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            keys = f.metadata() or {}
        names = sorted({k.split("/")[0] for k in tensors if not k.startswith("prompts/")})
        # No "rows" (a cache written before image rows were read): every row, in order.
        buckets = {n: LatentBucket(tensors[f"{n}/mean"], tensors[f"{n}/std"], tensors.get(f"{n}/rows")) for n in names}
        prompts = PromptCache(**{k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("prompts/")})
        return cls(buckets, prompts, keys.get("prompt_key", ""), keys.get("data_key", ""))


def latent_std(cache: LatentCache, scale: float) -> float:
    """The std of the cached posterior means of every bucket, times the VAE's scaling factor."""
    means = torch.cat([b.mean.flatten() for b in cache.buckets.values()])
    return means.float().std().item() * scale


# The range of scaled latent std a DiT trains well on: a trained VAE's factor gives about 1 (it is measured
# as 1 / std), while an untrained VAE's latents can be far off and give DiT losses of 1e5.
LATENT_STD_RANGE = (0.5, 2.0)


def latent_scale_warning(cache: LatentCache, scale: float, vae: str) -> str | None:
    """One line when the scaled latents' std is outside `LATENT_STD_RANGE`; None when it is inside."""
    std = latent_std(cache, scale)
    low, high = LATENT_STD_RANGE
    if low <= std <= high:
        return None
    return (f"warning: latents have std {std:.3g} after the VAE's scaling factor {scale:.4g} ({vae}): "
            f"was the VAE trained? (a DiT expects about 1)")


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


def rows_fitting(clips: list[Clip], bucket: Bucket) -> list[int]:
    """The rows long enough for `bucket`: every row for an image bucket, the videos of ≥ `frames` frames
    for a video bucket (an image row is one frame).

    Raises:
        ValueError: naming the bucket, when no row fits it.
    """
    rows = [i for i, c in enumerate(clips) if len(c.video) >= bucket.frames]
    if not rows:
        longest = max(len(c.video) for c in clips)
        raise ValueError(
            f"bucket {bucket.name}: no row of the data fits it (it needs clips of at least {bucket.frames} frames; "
            f"the longest has {longest}); remove the bucket or add longer videos"
        )
    return rows


@torch.no_grad()
def encode_bucket(
    vae: torch.nn.Module, videos: np.ndarray, rows: list[int], name: str, batch: int = 16
) -> LatentBucket:
    """Encode (N_b, T, H, W, 3) uint8 videos, those of `rows`, with the VAE into posterior moments."""
    means, stds = [], []
    for i in tqdm(range(0, len(videos), batch), desc=f"encode {name}", unit="batch", leave=False):
        posterior = vae.encode(to_model_range(videos[i : i + batch]))
        means.append(posterior.mean)
        stds.append(torch.exp(0.5 * posterior.logvar))
    return LatentBucket(torch.cat(means), torch.cat(stds), torch.tensor(rows, dtype=torch.long))


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
    """What a cache's latents depend on: the data sets' manifests, `max_clips` and the VAE's files, by
    content. None when a data set is not there (a cache made elsewhere is then taken as it is)."""
    manifests = [manifest_file(d) for d in recipe.data]
    if not all(m.is_file() for m in manifests):
        return None
    vae = Path(recipe.vae)
    digest = hashlib.sha256(str(recipe.max_clips).encode())
    if any((read_manifest(m)["kind"] == "image").any() for m in manifests):
        # Caches made before image rows were read hold the videos only: with image rows the key differs.
        # (Without them it is the key it always was, so those caches stay valid.)
        digest.update(b"image rows")
    for file in [*manifests, *sorted(f for f in (vae.rglob("*") if vae.is_dir() else [vae]) if f.is_file())]:
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


def load_rows(recipe: DiTRecipe) -> list[Clip]:
    """The rows the DiT trains on: video and image rows of each data set (at most `max_clips` each), in order.

    Raises:
        ValueError: a data set with uncaptioned rows (checked before any media is decoded).
    """
    load_row_captions(recipe)
    return [c for d in recipe.data for c in load_clips(d, limit=recipe.max_clips, kinds=VIDEOS_AND_IMAGES)]


def load_row_captions(recipe: DiTRecipe) -> list[str]:
    """The captions of `load_rows`, in the same order, without decoding any media."""
    return [c for d in recipe.data for c in load_captions(d, limit=recipe.max_clips, kinds=VIDEOS_AND_IMAGES)]


@torch.no_grad()
def build_latent_cache(recipe: DiTRecipe, clips: list[Clip], vae: torch.nn.Module, data_key: str = "") -> LatentCache:
    """Encode every row (clip or image) into every bucket of the recipe it fits, and K prompt variants per row.

    `data_key`: what the clips and VAE are (`data_cache_key`), stored with the cache.

    Raises:
        ValueError: a bucket no row fits (before anything is encoded).
    """
    fitting = {name: rows_fitting(clips, b) for name, b in recipe.buckets.items()}
    latents = {
        name: encode_bucket(vae, np.stack([fit_to_bucket(clips[i].video, b) for i in rows]), rows, name)
        for (name, b), rows in zip(recipe.buckets.items(), fitting.values(), strict=True)
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
        cache = build_latent_cache(recipe, load_rows(recipe), vae, data_key or "")
        cache.save(path)
    elif parallel.is_main and not fits(cache):  # only the prompt settings changed: the text alone
        cache.prompts = build_prompt_cache(recipe, load_row_captions(recipe))
        cache.prompt_key = prompt_key
        cache.save(path)
    parallel.barrier()
    return cache if cache is not None and fits(cache) else LatentCache.load(path)
