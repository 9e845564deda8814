"""A DiT training recipe (the YAML of `kinema train`): stages of aspect-ratio × frame-count buckets.

Each stage lists buckets (height × width × frames in pixels; frames 1 = images, which the causal VAE
encodes alone). Every micro-batch comes from one bucket; with `grad_accum` > 1 the micro-batches of one
optimizer step cycle through the stage's buckets, so every global batch mixes scales (HunyuanVideo
§4.3's mixed-scale training) without padding.

Which sizes a bucket may have depends on the VAE and the DiT, which the recipe only names: `check_bucket`
checks them against the VAE's compression and the DiT's patch size once both are known, at the start
of a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kinema.caption.schema import PromptDropout
from kinema.data.buckets import bucket_name
from kinema.flow import TimeSampler
from kinema.models.dit import DiTConfig
from kinema.models.sizes import DIT_SIZES
from kinema.models.vae import VAEConfig
from kinema.options import SamplingDefaults
from kinema.train.distributed import ParallelConfig
from kinema.train.loop import RunRecipe, stage_at


@dataclass(frozen=True)
class Bucket:
    """Samples of `height` × `width` pixels and `frames` frames (1: images), drawn with relative `weight`."""

    height: int
    width: int
    frames: int
    batch_size: int
    weight: float = 1.0

    def __post_init__(self) -> None:
        if min(self.height, self.width, self.frames, self.batch_size) < 1 or self.weight <= 0:
            raise ValueError(f"bucket {self.name} needs height, width, frames and batch_size ≥ 1 and weight > 0")

    @property
    def name(self) -> str:
        """"HxWxF", the bucket's key in the latent cache."""
        return bucket_name(self.height, self.width, self.frames)


def check_bucket(bucket: Bucket, vae: VAEConfig, dit: DiTConfig, where: str = "") -> None:
    """Check that the VAE and the DiT can take `bucket`'s size: the VAE compresses frames 4k+1 into k+1
    latent frames and height × width by its spatial factor, and the DiT's patches must tile the latents.

    Raises:
        ValueError: naming the bucket (and `where`, e.g. " in stage 'images'") and the unit it breaks.
    """
    s, ct = vae.spatial_compression_ratio, vae.temporal_compression_ratio
    pt, ph, pw = dit.patch
    if bucket.height % (s * ph) or bucket.width % (s * pw):
        raise ValueError(
            f"bucket {bucket.name}{where}: height must be a multiple of {s * ph} and width of {s * pw} "
            f"(the VAE's {s}× spatial compression × the DiT's {ph}×{pw} patches)"
        )
    if (bucket.frames - 1) % ct or ((bucket.frames - 1) // ct + 1) % pt:
        latent = "" if pt == 1 else f" with k+1 a multiple of the DiT's {pt}-frame patches"
        raise ValueError(
            f"bucket {bucket.name}{where}: frames must be {ct}k+1{latent} (1 for images; the VAE's {ct}× "
            f"temporal compression)"
        )


@dataclass(frozen=True)
class DiTStage:
    name: str
    steps: int
    buckets: list[Bucket]
    grad_accum: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1 or self.grad_accum < 1 or not self.buckets:
            raise ValueError(f"stage {self.name!r} needs steps ≥ 1, grad_accum ≥ 1 and at least one bucket")


@dataclass(frozen=True, kw_only=True)
class DiTRecipe(RunRecipe):
    """A DiT training run (with `RunRecipe`'s run folder, seed, schedule and cadence)."""

    vae: str
    stages: list[DiTStage]
    # The data: one data set folder, or several joined in order (e.g. rendered clips and a folder of
    # curated images). Video and image rows are both read; image rows fill only the image buckets.
    dataset: str | None = None
    datasets: list[str] = field(default_factory=list)
    # A named DiT size (kinema.models.sizes). None: "toy", or with `init` the checkpoint's architecture,
    # which a named size must equal.
    model: str | None = None
    # Start from this DiT checkpoint (any format load_dit reads: a kinema pipeline or model folder, a
    # diffusers folder, the official mp_rank_00_model_states.pt) instead of fresh weights. It seeds step 0
    # of a fresh run only: --resume continues from the run's own checkpoint (kinema.train.dit).
    init: str | None = None
    text_encoder: str = "minilm"
    output: str | None = None
    lr: float = 3e-4
    warmup: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float | None = 0.999
    time: TimeSampler = field(default_factory=TimeSampler)  # how training draws flow times t
    text_dropout: float = 0.1
    prompt_variants: int = 4  # cached prompts per clip: the full one, then random field dropout
    # How often each caption field is left out of the variants. Short prompts matter: a word among 40
    # tokens is learned several times more slowly than among 9 (benchmarks/RESULTS.md, "What makes the motion words learnable").
    prompt_dropout: PromptDropout = field(default_factory=PromptDropout)
    # Variants after the first: the template, or random train wordings (kinema.caption.wording).
    prompt_wording: Literal["template", "varied"] = "template"
    max_clips: int | None = None  # at most this many rows of each data set (the first, in manifest order)
    gradient_checkpointing: bool = False
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)
    # Embedded guidance fed while training a guidance-embedded model (e.g. fine-tuning the released
    # cfg-distilled 13B DiT, whose guidance input the reference sets to 6.0); None for models without one.
    guidance: float | None = None
    parallel: ParallelConfig = field(default_factory=ParallelConfig)  # under torchrun (kinema.train.distributed)

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a DiT recipe needs at least one stage")
        if (self.dataset is None) == (not self.datasets):
            raise ValueError("a DiT recipe needs exactly one of dataset: (a folder) and datasets: (a list of folders)")
        if self.model is not None and self.model not in DIT_SIZES:
            raise ValueError(f"model {self.model!r} is not a DiT size; choose one of {sorted(DIT_SIZES)}")
        if self.prompt_variants < 1:
            raise ValueError(f"prompt_variants must be at least 1, got {self.prompt_variants}")
        if not 0.0 <= self.text_dropout < 1.0:
            raise ValueError(f"text_dropout must be in [0, 1), got {self.text_dropout}")

    @property
    def data(self) -> list[str]:
        """The data set folders the run reads, in order (`dataset`, or `datasets`)."""
        return [self.dataset] if self.dataset is not None else list(self.datasets)

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    @property
    def buckets(self) -> dict[str, Bucket]:
        """Every bucket of every stage, by name."""
        return {b.name: b for stage in self.stages for b in stage.buckets}

    def stage_at(self, step: int) -> DiTStage:
        return stage_at(self.stages, step)

    def check_buckets(self, vae: VAEConfig, dit: DiTConfig) -> None:
        """`check_bucket` for every bucket of every stage."""
        for stage in self.stages:
            for bucket in stage.buckets:
                check_bucket(bucket, vae, dit, f" in stage {stage.name!r}")
