"""Ulysses sequence parallelism for the DiT: the ranks of a group each hold a share of every sample's tokens.

DeepSpeed-Ulysses (Jacobs et al. 2023): attention needs every token, but its heads are independent.
Before attention one all-to-all turns each rank's slice of the sequence with all heads, (B, H, S, Dh),
into the whole sequence with H/P heads, (B, H/P, P·S, Dh); after attention a second all-to-all turns it
back. Everything else in a block (projections, MLPs, norms, modulation, RoPE) works token by token and
runs on the local share alone, so activation memory falls by P.

Token layout. Video tokens (N) and text tokens (L) are each padded to a multiple of P and cut into P
equal contiguous chunks; rank r holds video chunk r and text chunk r, so in every block its sequence is
[video_r; text_r] and after the all-to-all a rank sees [video_0; text_0; video_1; text_1; ...] for its
heads. Attention does not care about the order of the keys and gives every query its own row, so with
the key mask gathered in that same order the result is the one-process result; padding tokens are masked
out as keys and dropped at the end. RoPE tables are padded and sliced like the video tokens.
(Departure from xDiT's HunyuanVideo port, which keeps all text tokens on every rank: sharding them too
keeps the attention function ignorant of text, so the dual- and single-stream blocks need no change.)

Gradients. The embeddings, the text refiner and the conditioning vector run in full on every rank (they
are small). Slicing a replicated tensor sends back a gradient for the slice only, and the final gather
hands each rank the gradient of its own tokens, so the parameter gradients of the ranks of a group sum to
the one-process gradient; DDP and FSDP do that sum (see kinema.train.distributed).

Shape legend: B batch, H heads, S local tokens, P group size, Dh head width, D width, N video tokens,
L text tokens.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import torch
import torch.distributed as dist
from torch import Tensor

from kinema.models.layers import attention

if TYPE_CHECKING:
    from kinema.models.dit import DiT


def _all_to_all(x: Tensor, group: dist.ProcessGroup | None) -> Tensor:
    """Even all-to-all over dim 0: chunk j of `x` goes to rank j; chunk r of the result came from rank r."""
    x = x.contiguous()
    out = torch.empty_like(x)  # (empty_like keeps a permuted input's strides: make it contiguous first)
    dist.all_to_all_single(out, x, group=group)
    return out


class _AllToAll(torch.autograd.Function):
    """`_all_to_all` with autograd. An even all-to-all is its own adjoint: the gradient travels back the same way."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, group: dist.ProcessGroup | None) -> Tensor:
        ctx.group = group
        return _all_to_all(x, group)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:
        return _all_to_all(grad, ctx.group), None


# torch 2.13 renamed all_gather_into_tensor (deprecated there); pyproject admits torch ≥ 2.5, which lacks the new name.
_all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


def _all_gather(x: Tensor, group: dist.ProcessGroup | None) -> Tensor:
    """(B, ...) from each of P ranks -> (P, B, ...) on every rank, in rank order."""
    p = dist.get_world_size(group)
    out = x.new_empty((p * x.shape[0], *x.shape[1:]))  # gloo wants the concatenated form
    _all_gather_single(out, x.contiguous(), group=group)
    return out.view(p, *x.shape)


class _GatherForLoss(torch.autograd.Function):
    """All-gather whose backward keeps this rank's slice of the gradient.

    Meant for a result every rank of the group then uses identically (the velocity a loss is computed on,
    the same loss on every rank): each rank's incoming gradient is then already the whole gradient, and its
    own slice is exactly the gradient of its own tokens. (An ordinary all-gather would sum P copies.)
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, group: dist.ProcessGroup | None) -> Tensor:
        ctx.rank = dist.get_rank(group)
        return _all_gather(x, group)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:
        return grad[ctx.rank].contiguous(), None


def _pad_tokens(x: Tensor, extra: int, dim: int, value: float | bool = 0) -> Tensor:
    """Append `extra` positions filled with `value` along `dim`."""
    if extra == 0:
        return x
    shape = list(x.shape)
    shape[dim] = extra
    return torch.cat([x, x.new_full(shape, value)], dim=dim)


class SequenceParallel:
    """Ulysses sequence parallelism over one process group (default: all processes).

    `shard` gives this rank its share of the tokens, `attention` replaces the blocks' attention and
    `gather` reassembles the output tokens on every rank. Install it into a DiT with
    `enable_sequence_parallel`; the model's inputs and outputs stay those of one process.
    """

    def __init__(self, group: dist.ProcessGroup | None = None) -> None:
        if not dist.is_initialized():
            raise RuntimeError("sequence parallelism needs torch.distributed: launch with torchrun")
        self.group = group
        self.size = dist.get_world_size(group)
        self.rank = dist.get_rank(group)

    def _chunk(self, x: Tensor, dim: int) -> Tensor:
        """This rank's chunk of `x`, whose size along `dim` is a multiple of P."""
        return x.chunk(self.size, dim=dim)[self.rank]

    def shard(
        self, img: Tensor, txt: Tensor, rope: tuple[Tensor, Tensor], key_mask: Tensor | None
    ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor], Tensor | None]:
        """This rank's video and text tokens, their RoPE rows and their key mask.

        Args:
            img: (B, N, D) video tokens; txt: (B, L, D) text tokens; rope: 2 × (N, Dh) cos and sin;
            key_mask: (B, N+L) True for real keys, or None when all are real.
        Returns:
            img (B, N'/P, D), txt (B, L'/P, D), rope 2 × (N'/P, Dh), key_mask (B, (N'+L')/P) or None,
            where N' and L' are N and L rounded up to multiples of P.
        """
        b, n, _ = img.shape
        pad_n, pad_l = -n % self.size, -txt.shape[1] % self.size
        if key_mask is None and (pad_n or pad_l):
            key_mask = torch.ones(b, n + txt.shape[1], dtype=torch.bool, device=img.device)
        if key_mask is not None:
            video_mask = self._chunk(_pad_tokens(key_mask[:, :n], pad_n, 1, False), 1)
            text_mask = self._chunk(_pad_tokens(key_mask[:, n:], pad_l, 1, False), 1)
            key_mask = torch.cat([video_mask, text_mask], dim=1)  # (B, (N'+L')/P)
        img = self._chunk(_pad_tokens(img, pad_n, 1), 1)  # (B, N'/P, D)
        txt = self._chunk(_pad_tokens(txt, pad_l, 1), 1)  # (B, L'/P, D)
        cos, sin = (self._chunk(_pad_tokens(t, pad_n, 0), 0) for t in rope)  # 2 × (N'/P, Dh)
        return img, txt, (cos, sin), key_mask

    def gather(self, x: Tensor, n: int) -> Tensor:
        """Every rank's video tokens, on every rank: (B, N'/P, F) -> (B, N, F) (padding dropped).

        The backward keeps this rank's slice: use the result the same way on every rank of the group.
        """
        parts = _GatherForLoss.apply(x, self.group)  # (P, B, N'/P, F)
        return parts.transpose(0, 1).flatten(1, 2)[:, :n].contiguous()  # (B, N, F)

    def attention(self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None) -> Tensor:
        """Attention over the whole sequence from this rank's share of it: a drop-in for `layers.attention`.

        Args:
            q, k, v: (B, H, S, Dh), this rank's S tokens, the same S on every rank; H divisible by P.
            key_mask: (B, S) True for this rank's real keys, or None (then None on every rank).
        Returns:
            (B, S, H·Dh), the attention output of this rank's tokens.
        """
        p = self.size
        b, h, s, dh = q.shape
        if h % p:
            raise ValueError(f"{h} attention heads cannot be split over {p} sequence-parallel ranks")
        # 1. Sequence -> heads: send head group j to rank j, receive every rank's tokens for our heads.
        qkv = torch.stack([q, k, v]).view(3, b, p, h // p, s, dh).permute(2, 0, 1, 3, 4, 5)  # (P, 3, B, H/P, S, Dh)
        qkv = _AllToAll.apply(qkv, self.group)  # (P, 3, B, H/P, S, Dh), chunk r from rank r
        q, k, v = qkv.permute(1, 2, 3, 0, 4, 5).reshape(3, b, h // p, p * s, dh)  # 3 × (B, H/P, P·S, Dh)
        if key_mask is not None:
            masks = _all_gather(key_mask.to(torch.uint8), self.group)  # (P, B, S), same order as the keys
            key_mask = masks.transpose(0, 1).reshape(b, p * s).bool()  # (B, P·S)

        # 2. Attention for our heads over the whole sequence.
        out = attention(q, k, v, key_mask)  # (B, P·S, H/P·Dh)

        # 3. Heads -> sequence: send rank r its tokens, receive every head group for ours.
        out = out.reshape(b, p, s, h // p, dh).transpose(0, 1)  # (P, B, S, H/P, Dh), chunk r for rank r
        out = _AllToAll.apply(out, self.group)  # (P, B, S, H/P, Dh), chunk j = head group j
        return out.permute(1, 2, 0, 3, 4).reshape(b, s, h * dh)  # (B, S, H·Dh)


def _attention_blocks(model: DiT) -> list[torch.nn.Module]:
    # The text refiner keeps plain attention: it runs on the whole prompt on every rank, before sharding.
    return [*model.double_blocks, *model.single_blocks]


def enable_sequence_parallel(model: DiT, group: dist.ProcessGroup | None = None) -> SequenceParallel:
    """Split every sample's tokens over `group` (default: all processes) for this DiT's forward passes.

    The model's inputs and outputs are unchanged: each rank passes the whole batch and gets the whole
    velocity; each computes attention for H/P heads and everything else for 1/P of the tokens.

    Raises:
        ValueError: if the model's heads cannot be split evenly over the group.
    """
    sp = SequenceParallel(group)
    if model.cfg.heads % sp.size:
        raise ValueError(f"the model's {model.cfg.heads} attention heads cannot be split over {sp.size} "
                         "sequence-parallel ranks: use a degree that divides the number of heads")
    model.sequence_parallel = sp
    for block in _attention_blocks(model):
        block.attention = sp.attention
    return sp


def disable_sequence_parallel(model: DiT) -> None:
    """Back to one process's attention over all tokens."""
    model.sequence_parallel = None
    for block in _attention_blocks(model):
        block.attention = attention


@contextmanager
def sequence_parallel(model: DiT, group: dist.ProcessGroup | None = None) -> Iterator[SequenceParallel]:
    """`with sequence_parallel(model): ...` enables sequence parallelism for the block, then removes it."""
    sp = enable_sequence_parallel(model, group)
    try:
        yield sp
    finally:
        disable_sequence_parallel(model)
