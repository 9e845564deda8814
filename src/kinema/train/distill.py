"""Fewer forwards per video: guidance distillation and step distillation of a trained pipeline.

    kinema distill configs/toy/distill-guidance.yaml [--resume]
    kinema distill configs/toy/distill-steps.yaml [--resume]

- Guidance distillation (Meng et al. 2023, stage one; how HunyuanVideo's released DiT was made): a
  student with a guidance embedding learns the teacher's classifier-free-guided velocity
  v_u + w·(v_c − v_u) for w drawn from a range, so one forward per step replaces two.
- Step distillation (trajectory distillation, a one-round form of progressive distillation): the
  teacher integrates the flow ODE finely between the points of an n-step schedule, from noise, for a
  fixed set of prompts; the student learns to cross each interval in one Euler step, i.e. its
  velocity at x_i must equal (x_{i+1} − x_i) / (t_{i+1} − t_i). Teacher trajectories are computed
  once, in chunks written atomically, so a killed run keeps what it finished.

Both read the teacher run's latent + prompt cache (the training prompts, already encoded) and write a
pipeline folder whose sampling defaults (steps, shift, guidance) `kinema generate` uses. `Distiller` is
the set-up (teacher, student, cache, trajectories), one step and the export; kinema.train.loop runs it,
resumable with the same losses. Teacher and student are called through kinema.models.velocity.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor
from tqdm import tqdm

from kinema.config import load_yaml
from kinema.flow import TimeSampler, euler, noisy_inputs, sigma_schedule
from kinema.fsutil import save_safetensors
from kinema.models.checkpoints import load_dit, load_vae
from kinema.models.dit import DiT
from kinema.models.text import TextEmbedding
from kinema.models.velocity import dit_velocity, guided_velocity
from kinema.options import SamplingDefaults
from kinema.pipeline_folder import PipelineSpec, read_pipeline_spec, save_pipeline
from kinema.train.checkpoint import EMA, ExtraState, step_generator
from kinema.train.dit_recipe import Bucket, check_bucket
from kinema.train.latent_cache import LatentCache
from kinema.train.loop import RunRecipe, begin_step, optimizer_step, run, start_run


@dataclass(frozen=True)
class GuidanceDistillation:
    """Targets: the teacher's CFG velocity at w ~ U[low, high], at t drawn as the sampler visits them."""

    low: float = 1.0
    high: float = 8.0
    shift: float = 7.0  # t uniform, then time-shifted like the sampling schedule

    def __post_init__(self) -> None:
        if not 1.0 <= self.low <= self.high:
            raise ValueError(f"guidance range needs 1 ≤ low ≤ high, got [{self.low}, {self.high}]")


@dataclass(frozen=True)
class StepDistillation:
    """Targets: one Euler step per interval of an n-step schedule, from `substeps` teacher steps."""

    steps: int = 8
    shift: float = 17.0
    substeps: int = 6
    trajectories: int = 512
    cfg_scale: float = 4.0  # the teacher's guidance: CFG, or its embedded guidance if it has one
    chunk: int = 32  # trajectories per file (and per teacher batch)

    def __post_init__(self) -> None:
        if min(self.steps, self.substeps, self.trajectories, self.chunk) < 1 or self.cfg_scale < 1:
            raise ValueError("step distillation needs steps, substeps, trajectories, chunk ≥ 1 and cfg_scale ≥ 1")


@dataclass(frozen=True, kw_only=True)
class DistillRecipe(RunRecipe):
    """A distillation run: exactly one of `guidance` and `trajectory` (with `RunRecipe`'s run folder,
    seed, schedule and cadence)."""

    teacher: str  # pipeline folder
    cache: str  # the teacher run's latent + prompt cache (runs/.../latents.safetensors)
    bucket: Bucket  # the latent size distilled on (and, for trajectories, their batch size)
    steps: int
    output: str
    sampling: SamplingDefaults
    guidance: GuidanceDistillation | None = None
    trajectory: StepDistillation | None = None
    init: str | None = None  # the student's starting weights (a pipeline folder); default: the teacher's
    lr: float = 1e-4
    warmup: int = 50
    checkpoint_every: int = 100
    ema_decay: float | None = 0.99
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if (self.guidance is None) == (self.trajectory is None):
            raise ValueError("a distillation recipe needs exactly one of `guidance:` and `trajectory:`")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")

    @property
    def total_steps(self) -> int:
        return self.steps


def build_student(recipe: DistillRecipe, teacher_dir: Path) -> DiT:
    """The student: `init`'s weights (default the teacher's), given a guidance embedding if it is to learn one.

    A new embedding's output layer starts at zero, so the student begins as the teacher's conditional model.
    """
    model = load_dit(Path(recipe.init or teacher_dir) / "dit")
    if recipe.guidance is not None and not model.cfg.guidance_embed:
        student = DiT(replace(model.cfg, guidance_embed=True))
        missing, unexpected = student.load_state_dict(model.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("guidance_in.") for k in missing), (missing, unexpected)
        torch.nn.init.zeros_(student.guidance_in.mlp[2].weight)
        torch.nn.init.zeros_(student.guidance_in.mlp[2].bias)
        model = student
    if model.cfg.guidance_embed != (recipe.sampling.guidance is not None):
        need = "set sampling.guidance" if model.cfg.guidance_embed else "leave sampling.guidance unset (use cfg_scale)"
        raise ValueError(f"the student {'has' if model.cfg.guidance_embed else 'has no'} guidance embedding: {need}")
    return model.train()


@torch.no_grad()
def teacher_trajectories(recipe: DistillRecipe, teacher: DiT, cache: LatentCache) -> dict[str, Tensor]:
    """Teacher ODE solutions at the student schedule's points: states (N, n+1, C, T, H, W), the prompt rows
    idx (N,) (rows of the distillation bucket) and variant (N,).

    Written in chunks (`run_dir/trajectories/chunk-XXXXX.safetensors`, atomically); existing chunks are kept.
    """
    spec = recipe.trajectory
    folder = Path(recipe.run_dir) / "trajectories"
    folder.mkdir(parents=True, exist_ok=True)
    sigmas = sigma_schedule(spec.steps, spec.shift)
    bucket = cache.buckets[recipe.bucket.name]
    shape = bucket.mean.shape[1:]  # (C, T, H, W)
    # The prompts of the rows in the bucket: a video bucket's trajectories are not drawn for image captions.
    rows, n_variants = bucket.rows, cache.prompts.variants
    chunks = []
    for c in tqdm(range(-(-spec.trajectories // spec.chunk)), desc="teacher trajectories", unit="chunk"):
        path = folder / f"chunk-{c:05d}.safetensors"
        if not path.is_file():
            b = min(spec.chunk, spec.trajectories - c * spec.chunk)
            g = step_generator(recipe.seed, c, stream=2)
            idx = rows[torch.randint(len(rows), (b,), generator=g)]  # (b,) prompt rows
            variant = torch.randint(n_variants, (b,), generator=g)
            cond, uncond = cache.prompts.text(idx, variant), cache.prompts.empty(b)
            w = torch.full((b,), spec.cfg_scale)

            def velocity(x: Tensor, t: Tensor) -> Tensor:
                return guided_velocity(teacher, x, t, cond, uncond, w)

            x = torch.randn(b, *shape, generator=g)
            states = [x]
            for i in range(spec.steps):  # `substeps` Euler steps across each interval of the student's schedule
                x = euler(velocity, x, torch.linspace(sigmas[i].item(), sigmas[i + 1].item(), spec.substeps + 1))
                states.append(x)
            save_safetensors({"states": torch.stack(states, 1).contiguous(), "idx": idx, "variant": variant}, path)
        chunks.append(load_file(path))
    return {k: torch.cat([chunk[k] for chunk in chunks]) for k in ("states", "idx", "variant")}


class Distiller:
    """Teacher, student, data and one optimisation step of a distillation run; `run` drives it."""

    kind = "distill"

    def __init__(self, recipe: DistillRecipe) -> None:
        self.recipe = recipe
        teacher_dir = Path(recipe.teacher)
        cache_path = Path(recipe.cache)
        if not cache_path.is_file():
            raise FileNotFoundError(f"{cache_path} not found: distillation reads the latent + prompt cache that "
                                    "training the teacher writes (its run folder's latents.safetensors)")
        self.cache = LatentCache.load(cache_path)
        if recipe.bucket.name not in self.cache.buckets:
            raise ValueError(f"bucket {recipe.bucket.name} is not in {cache_path} (it has {sorted(self.cache.buckets)})")
        self.teacher = load_dit(teacher_dir / "dit").eval().requires_grad_(False)
        self.vae = load_vae(teacher_dir / "vae")
        check_bucket(recipe.bucket, self.vae.cfg, self.teacher.cfg, " (the distillation bucket)")
        self.text_encoder = read_pipeline_spec(teacher_dir).text_encoder
        self.scale = self.vae.cfg.scaling_factor
        torch.manual_seed(recipe.seed)
        self.model = build_student(recipe, teacher_dir)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=recipe.lr, betas=(0.9, 0.99), weight_decay=0.0)
        self.ema = EMA(self.model, recipe.ema_decay) if recipe.ema_decay else None
        self.extra: ExtraState = {}
        self.trajectories = (
            teacher_trajectories(recipe, self.teacher, self.cache) if recipe.trajectory else None
        )
        self.sigmas = sigma_schedule(recipe.trajectory.steps, recipe.trajectory.shift) if recipe.trajectory else None

    def student_velocity(self, x: Tensor, t: Tensor, text: TextEmbedding, w: Tensor) -> Tensor:
        """The student's velocity; a student with a guidance embedding reads the scale w (B,) there."""
        return dit_velocity(self.model, x, t, text, w if self.model.cfg.guidance_embed else None)

    def guidance_loss(self, g: torch.Generator) -> Tensor:
        spec, data, b = self.recipe.guidance, self.cache.buckets[self.recipe.bucket.name], self.recipe.bucket.batch_size
        idx = torch.randint(len(data), (b,), generator=g)  # latents of the bucket; their prompts: rows[idx]'s
        variant = torch.randint(self.cache.prompts.variants, (b,), generator=g)
        x0 = data.sample(idx, g, self.scale)  # (B, C, T, H, W)
        t = TimeSampler("uniform", shift=spec.shift).sample(b, g)
        x_t, _ = noisy_inputs(x0, t, g)
        w = spec.low + (spec.high - spec.low) * torch.rand(b, generator=g)
        cond, uncond = self.cache.prompts.text(data.rows[idx], variant), self.cache.prompts.empty(b)
        with torch.no_grad():
            target = guided_velocity(self.teacher, x_t, t, cond, uncond, w)
        return F.mse_loss(self.student_velocity(x_t, t, cond, w), target)

    def trajectory_loss(self, g: torch.Generator) -> Tensor:
        spec, traj, b = self.recipe.trajectory, self.trajectories, self.recipe.bucket.batch_size
        sigmas = self.sigmas
        j = torch.randint(len(traj["states"]), (b,), generator=g)
        i = torch.randint(spec.steps, (b,), generator=g)
        x, x_next = traj["states"][j, i], traj["states"][j, i + 1]  # (B, C, T, H, W)
        dt = (sigmas[i + 1] - sigmas[i]).view(-1, 1, 1, 1, 1)
        cond = self.cache.prompts.text(traj["idx"][j], traj["variant"][j])
        w = torch.full((b,), spec.cfg_scale)
        return F.mse_loss(self.student_velocity(x, sigmas[i], cond, w), (x_next - x) / dt)

    def step(self, step: int) -> dict[str, float]:
        r = self.recipe
        g = step_generator(r.seed, step)
        begin_step(self, r.lr_at(step))
        loss = self.guidance_loss(g) if r.guidance is not None else self.trajectory_loss(g)
        loss.backward()
        grad_norm = optimizer_step(self, self.model.parameters(), r.grad_clip)
        return {"loss": loss.item(), "grad_norm": grad_norm, "lr": self.optimizer.param_groups[0]["lr"]}

    def export(self, run_dir: Path) -> Path:
        """The student's pipeline folder: EMA weights, the teacher's VAE and text encoder, the recipe's
        sampling defaults."""
        student = self.model.eval()
        if self.ema is not None:
            self.ema.copy_to(student)
        spec = PipelineSpec(self.text_encoder, self.recipe.sampling)
        output = save_pipeline(self.recipe.output, student, self.vae, spec)
        print(f"wrote {output}")
        return output


def distill(recipe: DistillRecipe, resume: bool = False, recipe_path: Path | None = None) -> Path:
    """Run (or resume) a distillation recipe; returns the exported pipeline folder."""
    run_dir = start_run(recipe, recipe_path)
    return run(Distiller(recipe), recipe, run_dir, resume=resume)


def main_distill(config: str, resume: bool) -> int:
    recipe = load_yaml(DistillRecipe, config)
    distill(recipe, resume=resume, recipe_path=Path(config))
    return 0
