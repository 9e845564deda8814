"""The DiT as the velocity field of the flow ODE: flow time t ∈ [0, 1] in, velocity out, with guidance.

Every caller (the pipeline, the trainers, distillation) goes through these functions, so the
conventions live in one place:
- the DiT's timestep and guidance embeddings take values × 1000 (the reference's and diffusers'
  convention: HunyuanVideoPipeline feeds the scheduler's timesteps, t × 1000, and guidance × 1000);
- classifier-free guidance runs the conditional and unconditional branches as one batch.

`dit_velocity` is one forward; `cfg_velocity` adds classifier-free guidance (with or without embedded
guidance, as the pipeline needs); `guided_velocity` applies one guidance scale the way the model
takes it, embedded or classifier-free (the trainers' teachers and students).

Shape legend: B batch, C latent channels, T/H/W latent frames/height/width.
"""

from __future__ import annotations

from torch import Tensor, nn

from kinema.flow import classifier_free_guidance
from kinema.models.dit import DiT
from kinema.models.text import TextEmbedding

TIME_SCALE = 1000.0


def dit_velocity(model: nn.Module, x: Tensor, t: Tensor, text: TextEmbedding, guidance: Tensor | None = None) -> Tensor:
    """The velocity `model` predicts for latents x (B, C, T, H, W) at flow times t (B,).

    `model` is a DiT or anything that wraps one with its forward (DDP, FSDP, a compiled module);
    `guidance` (B,) is the embedded guidance scale for models with a guidance embedding, else None.
    """
    g = None if guidance is None else guidance * TIME_SCALE
    return model(x, t * TIME_SCALE, text.states, text.mask, text.pooled, g)


def cfg_velocity(
    model: nn.Module, x: Tensor, t: Tensor, cond: TextEmbedding, uncond: TextEmbedding, scale: Tensor | float,
    guidance: Tensor | None = None,
) -> Tensor:
    """Classifier-free guidance v_u + s·(v_c − v_u), both branches from one batched forward.

    `scale` is a float or one per sample (B,); `guidance` (B,) is the embedded guidance both branches
    read (guidance-embedded models with CFG on top), else None.
    """
    both = TextEmbedding.cat([cond, uncond])
    g = None if guidance is None else guidance.repeat(2)
    v_cond, v_uncond = dit_velocity(model, x.repeat(2, *[1] * (x.dim() - 1)), t.repeat(2), both, g).chunk(2)
    if isinstance(scale, Tensor):
        scale = scale.to(v_cond.dtype).view(-1, *[1] * (x.dim() - 1))
    return classifier_free_guidance(v_cond, v_uncond, scale)


def guided_velocity(
    dit: DiT, x: Tensor, t: Tensor, cond: TextEmbedding, uncond: TextEmbedding, scale: Tensor | float
) -> Tensor:
    """The velocity sampling uses at guidance `scale` (a float or one per sample, (B,)).

    A guidance-embedded DiT reads the scale as its guidance input (one forward); any other DiT gets
    classifier-free guidance v_u + s·(v_c − v_u) from one batched forward of both prompts.
    """
    if dit.cfg.guidance_embed:
        g = scale if isinstance(scale, Tensor) else t.new_full(t.shape, scale)
        return dit_velocity(dit, x, t, cond, g)
    return cfg_velocity(dit, x, t, cond, uncond, scale)
