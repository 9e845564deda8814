"""HunyuanVideo's diffusion transformer: dual-stream then single-stream blocks with full 3D attention.

Video latents are patchified into tokens; text token states are refined by a small transformer
conditioned on the timestep and their mean; the two streams first keep separate weights while
attending jointly (dual-stream blocks), then are concatenated and share weights (single-stream
blocks, attention and MLP in parallel). Every block is modulated (adaLN) by one conditioning vector:
timestep + pooled text (+ guidance strength for guidance-distilled models). 3D RoPE rotates video
tokens only; queries and keys are RMS-normalised.

Parameter names follow the official checkpoint (`double_blocks.{i}.img_attn_qkv`, `single_blocks.{i}.linear1`,
`txt_in.individual_token_refiner.blocks.{i}`, `final_layer.adaLN_modulation.1`), including its fused
q/k/v (and q/k/v/mlp) projections: one matmul instead of three or four.

Shape legend: B batch, C latent channels, T/H/W latent frames/height/width, N video tokens,
L text tokens, D width, Hd heads, Dh head width, P pooled text width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from kinema.models.layers import (
    MLP,
    MLPEmbedder,
    Modulation,
    QKNorm,
    TextProjection,
    TimestepEmbedder,
    attention,
    layer_norm,
    modulate,
    split_qkv,
)
from kinema.models.rope import apply_rope, grid_positions, rope_frequencies

if TYPE_CHECKING:
    from kinema.models.parallel import SequenceParallel

# attention(q, k, v (B, Hd, L, Dh), key_mask (B, L) | None) -> (B, L, D); sequence parallelism swaps it per block.
AttentionFn = Callable[[Tensor, Tensor, Tensor, Tensor | None], Tensor]


@dataclass(frozen=True)
class DiTConfig:
    """Architecture of the diffusion transformer (defaults: HYVideo-T/2-cfgdistill, 12.8B parameters)."""

    in_channels: int = 16
    out_channels: int = 16
    heads: int = 24
    head_dim: int = 128
    depth_double: int = 20
    depth_single: int = 40
    depth_refiner: int = 2
    mlp_ratio: float = 4.0
    patch: tuple[int, int, int] = (1, 2, 2)  # (time, height, width)
    text_dim: int = 4096  # LLaVA-Llama-3-8B hidden states
    pooled_dim: int = 768  # CLIP-L pooled output
    rope_dims: tuple[int, int, int] = (16, 56, 56)
    rope_theta: float = 256.0
    guidance_embed: bool = True
    # Departure from the reference (off for it): add a fixed 3D sin-cos table to the video tokens, as
    # DiT does. RoPE alone gives attention only relative positions; the table gives absolute ones
    # (its effect on the toy model: benchmarks/bench_toy_dit.py).
    absolute_positions: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch", tuple(self.patch))
        object.__setattr__(self, "rope_dims", tuple(self.rope_dims))
        if sum(self.rope_dims) != self.head_dim:
            raise ValueError(f"rope_dims {self.rope_dims} must sum to head_dim {self.head_dim}")
        if len(self.patch) != 3 or min(self.patch) < 1:
            raise ValueError(f"patch must be three positive sizes (t, h, w), got {self.patch}")

    @property
    def hidden(self) -> int:
        return self.heads * self.head_dim

    @property
    def mlp_hidden(self) -> int:
        return int(self.hidden * self.mlp_ratio)

    def to_dict(self) -> dict:
        return asdict(self)


class RefinerBlock(nn.Module):
    """Self-attention + SiLU MLP over text tokens, gated by the refiner's conditioning."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.heads = cfg.heads
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.self_attn_qkv = nn.Linear(d, 3 * d)
        self.self_attn_proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = MLP(d, 4 * d, nn.SiLU())  # ratio 4 whatever the blocks' mlp_ratio, as in the reference
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))

    def forward(self, x: Tensor, c: Tensor, key_mask: Tensor | None) -> Tensor:
        gate_attn, gate_mlp = self.adaLN_modulation(c)[:, None].chunk(2, dim=-1)  # 2 × (B, 1, D)
        q, k, v = split_qkv(self.self_attn_qkv(self.norm1(x)), self.heads)  # 3 × (B, Hd, L, Dh)
        x = x + gate_attn * self.self_attn_proj(attention(q, k, v, key_mask))
        return x + gate_mlp * self.mlp(self.norm2(x))


class IndividualTokenRefiner(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(RefinerBlock(cfg) for _ in range(cfg.depth_refiner))

    def forward(self, x: Tensor, c: Tensor, key_mask: Tensor | None) -> Tensor:
        for block in self.blocks:
            x = block(x, c, key_mask)
        return x


class TokenRefiner(nn.Module):
    """Projects text states to the model width and refines them (the reference's `txt_in`)."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.input_embedder = nn.Linear(cfg.text_dim, cfg.hidden)
        self.t_embedder = TimestepEmbedder(cfg.hidden)
        self.c_embedder = TextProjection(cfg.text_dim, cfg.hidden)
        self.individual_token_refiner = IndividualTokenRefiner(cfg)

    def forward(self, text: Tensor, timestep: Tensor, key_mask: Tensor | None) -> Tensor:
        """(B, L, text_dim) -> (B, L, D)."""
        if key_mask is None:
            mean = text.mean(dim=1)
        else:
            m = key_mask[..., None].to(text.dtype)  # (B, L, 1)
            mean = (text * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)  # (B, text_dim)
        c = self.t_embedder(timestep) + self.c_embedder(mean)  # (B, D)
        x = self.input_embedder(text)  # (B, L, D)
        if key_mask is not None:
            # Keep every query row finite: an all-padding row would otherwise softmax over nothing.
            # Real tokens are unaffected (key 0 is real whenever a prompt has any token); as in the reference.
            key_mask = key_mask.clone()
            key_mask[:, 0] = True
        return self.individual_token_refiner(x, c, key_mask)


class DoubleStreamBlock(nn.Module):
    """Video and text tokens with their own weights, attending jointly."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        d, dh = cfg.hidden, cfg.head_dim
        self.heads = cfg.heads
        self.img_mod = Modulation(d, 6)
        self.img_attn_qkv = nn.Linear(d, 3 * d)
        self.img_attn_q_norm = QKNorm(dh)
        self.img_attn_k_norm = QKNorm(dh)
        self.img_attn_proj = nn.Linear(d, d)
        self.img_mlp = MLP(d, cfg.mlp_hidden, nn.GELU(approximate="tanh"))
        self.txt_mod = Modulation(d, 6)
        self.txt_attn_qkv = nn.Linear(d, 3 * d)
        self.txt_attn_q_norm = QKNorm(dh)
        self.txt_attn_k_norm = QKNorm(dh)
        self.txt_attn_proj = nn.Linear(d, d)
        self.txt_mlp = MLP(d, cfg.mlp_hidden, nn.GELU(approximate="tanh"))
        self.attention: AttentionFn = attention  # kinema.models.parallel installs Ulysses attention here

    def forward(
        self, img: Tensor, txt: Tensor, vec: Tensor, rope: tuple[Tensor, Tensor], key_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        i_shift1, i_scale1, i_gate1, i_shift2, i_scale2, i_gate2 = self.img_mod(vec)  # 6 × (B, 1, D)
        t_shift1, t_scale1, t_gate1, t_shift2, t_scale2, t_gate2 = self.txt_mod(vec)
        n = img.shape[1]

        # 1. Project each stream to q, k, v; normalise q/k; rotate video tokens.
        iq, ik, iv = split_qkv(self.img_attn_qkv(modulate(layer_norm(img), i_shift1, i_scale1)), self.heads)
        tq, tk, tv = split_qkv(self.txt_attn_qkv(modulate(layer_norm(txt), t_shift1, t_scale1)), self.heads)
        iq = apply_rope(self.img_attn_q_norm(iq), *rope)  # (B, Hd, N, Dh)
        ik = apply_rope(self.img_attn_k_norm(ik), *rope)
        tq, tk = self.txt_attn_q_norm(tq), self.txt_attn_k_norm(tk)  # (B, Hd, L, Dh)

        # 2. Joint attention over [video; text].
        q, k, v = (torch.cat(pair, dim=2) for pair in ((iq, tq), (ik, tk), (iv, tv)))  # (B, Hd, N+L, Dh)
        out = self.attention(q, k, v, key_mask)  # (B, N+L, D)
        img_attn, txt_attn = out[:, :n], out[:, n:]

        # 3. Gated residuals: attention, then MLP.
        img = img + i_gate1 * self.img_attn_proj(img_attn)
        img = img + i_gate2 * self.img_mlp(modulate(layer_norm(img), i_shift2, i_scale2))
        txt = txt + t_gate1 * self.txt_attn_proj(txt_attn)
        txt = txt + t_gate2 * self.txt_mlp(modulate(layer_norm(txt), t_shift2, t_scale2))
        return img, txt


class SingleStreamBlock(nn.Module):
    """Shared weights over [video; text]: attention and MLP computed in parallel from one projection."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.heads = cfg.heads
        self.split = (3 * d, cfg.mlp_hidden)
        self.linear1 = nn.Linear(d, 3 * d + cfg.mlp_hidden)
        self.linear2 = nn.Linear(d + cfg.mlp_hidden, d)
        self.q_norm = QKNorm(cfg.head_dim)
        self.k_norm = QKNorm(cfg.head_dim)
        self.modulation = Modulation(d, 3)
        self.attention: AttentionFn = attention  # kinema.models.parallel installs Ulysses attention here

    def forward(self, x: Tensor, vec: Tensor, rope: tuple[Tensor, Tensor], key_mask: Tensor | None, n: int) -> Tensor:
        shift, scale, gate = self.modulation(vec)  # 3 × (B, 1, D)
        qkv, mlp = self.linear1(modulate(layer_norm(x), shift, scale)).split(self.split, dim=-1)
        q, k, v = split_qkv(qkv, self.heads)  # 3 × (B, Hd, N+L, Dh)
        q, k = self.q_norm(q), self.k_norm(k)
        q = torch.cat([apply_rope(q[:, :, :n], *rope), q[:, :, n:]], dim=2)  # rotate video tokens only
        k = torch.cat([apply_rope(k[:, :, :n], *rope), k[:, :, n:]], dim=2)
        out = torch.cat([self.attention(q, k, v, key_mask), F.gelu(mlp, approximate="tanh")], dim=-1)
        return x + gate * self.linear2(out)


class FinalLayer(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.linear = nn.Linear(d, cfg.patch[0] * cfg.patch[1] * cfg.patch[2] * cfg.out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))

    def forward(self, x: Tensor, vec: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(vec)[:, None].chunk(2, dim=-1)  # 2 × (B, 1, D)
        return self.linear(modulate(layer_norm(x), shift, scale))


def trim_text_padding(text: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None]:
    """Drop trailing padding shared by the whole batch; return no mask when nothing is padded.

    Padded text tokens are masked out as keys everywhere and never reach the output, so removing
    columns that are padding in every row cannot change the video tokens: it only saves work.
    (Departure from the reference, which always attends over all 256 positions with a mask.)

    Args:
        text: (B, L, Dt) token states; mask: (B, L) bool/int, True for real tokens.
    Returns:
        text (B, L', Dt) and mask (B, L') or None when every kept position is real.
    """
    mask = mask.bool()
    lengths = mask.sum(dim=1)  # (B,)
    positions = torch.arange(mask.shape[1], device=mask.device)
    if not torch.equal(mask, positions[None] < lengths[:, None]):
        return text, mask  # padding is not trailing: keep the general masked path
    keep = max(int(lengths.max()), 1)
    text, mask = text[:, :keep], mask[:, :keep]
    return text, (None if bool(mask.all()) else mask)


def sincos_positions(grid: tuple[int, int, int], width: int, device: torch.device) -> Tensor:
    """Fixed absolute position table for a (T, H, W) token grid: (T·H·W, width), in t, h, w order.

    A quarter of the channels encode the frame, three eighths each the row and the column, each as
    sin/cos pairs at geometric frequencies (Vaswani et al. 2017; 2D in DiT, Peebles & Xie 2023).
    """
    side = 2 * ((width - width // 4) // 4)  # row and column channels, even
    dims = (width - 2 * side, side, side)  # the frame gets the rest: about a quarter
    positions = grid_positions(grid, device)  # (3, N)
    parts = []
    for pos, dim in zip(positions, dims):
        freqs = 1.0 / 100.0 ** (torch.arange(dim // 2, dtype=torch.float32, device=device) / (dim // 2))
        angle = torch.outer(pos, freqs)  # (N, dim/2)
        parts += [angle.sin(), angle.cos()]
    return torch.cat(parts, dim=1)  # (N, width)


class PatchEmbed(nn.Module):
    """Non-overlapping 3D patches -> tokens, one strided convolution (the reference's `img_in`)."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv3d(cfg.in_channels, cfg.hidden, kernel_size=cfg.patch, stride=cfg.patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, C, T, H, W) -> (B, N, D), N = T'·H'·W'


class DiT(nn.Module):
    """HunyuanVideo diffusion transformer, predicting the flow-matching velocity."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden
        self.img_in = PatchEmbed(cfg)
        self.txt_in = TokenRefiner(cfg)
        self.time_in = TimestepEmbedder(d)
        self.vector_in = MLPEmbedder(cfg.pooled_dim, d)
        self.guidance_in = TimestepEmbedder(d) if cfg.guidance_embed else None
        self.double_blocks = nn.ModuleList(DoubleStreamBlock(cfg) for _ in range(cfg.depth_double))
        self.single_blocks = nn.ModuleList(SingleStreamBlock(cfg) for _ in range(cfg.depth_single))
        self.final_layer = FinalLayer(cfg)
        self.gradient_checkpointing = False
        self.sequence_parallel: SequenceParallel | None = None  # set by kinema.models.parallel
        self._rope_cache: dict[tuple, tuple[Tensor, Tensor] | Tensor] = {}  # RoPE and absolute tables per grid
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier-uniform linears, zero biases, and adaLN-Zero: modulation and output layers start at 0,
        so every block begins as the identity (DiT, Peebles & Xie 2023)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.img_in.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for block in self.double_blocks:
            for mod in (block.img_mod, block.txt_mod):
                nn.init.zeros_(mod.linear.weight)
        for block in self.single_blocks:
            nn.init.zeros_(block.modulation.linear.weight)
        for refiner in self.txt_in.individual_token_refiner.blocks:
            nn.init.zeros_(refiner.adaLN_modulation[1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[1].weight)
        nn.init.zeros_(self.final_layer.linear.weight)

    def rope(self, grid: tuple[int, int, int], device: torch.device) -> tuple[Tensor, Tensor]:
        key = (grid, str(device))
        if key not in self._rope_cache:
            self._rope_cache[key] = rope_frequencies(grid, self.cfg.rope_dims, self.cfg.rope_theta, device)
        return self._rope_cache[key]

    def positions(self, grid: tuple[int, int, int], device: torch.device) -> Tensor:
        """The absolute position table of a token grid, (N, D), computed once per grid like the RoPE tables."""
        key = ("absolute", grid, str(device))
        if key not in self._rope_cache:
            self._rope_cache[key] = sincos_positions(grid, self.cfg.hidden, device)
        return self._rope_cache[key]

    def forward(
        self,
        latents: Tensor,
        timestep: Tensor,
        text_states: Tensor,
        text_mask: Tensor,
        pooled: Tensor,
        guidance: Tensor | None = None,
    ) -> Tensor:
        """Predict the velocity for noisy latents.

        Args:
            latents: (B, C, T, H, W) noisy latents; T, H, W divisible by the patch size.
            timestep: (B,) in [0, 1000] (flow time t × 1000).
            text_states: (B, L, text_dim) token states; text_mask: (B, L), True for real tokens.
            pooled: (B, pooled_dim) pooled text embedding.
            guidance: (B,) embedded guidance strength × 1000, required iff the model has a guidance embedding.
        Returns:
            (B, out_channels, T, H, W) velocity.
        """
        cfg = self.cfg
        b, _, t, h, w = latents.shape
        pt, ph, pw = cfg.patch
        if t % pt or h % ph or w % pw:
            raise ValueError(f"latent size (T={t}, H={h}, W={w}) must be divisible by the patch size {cfg.patch}")
        if (guidance is None) == cfg.guidance_embed:
            need = "needs" if cfg.guidance_embed else "has no guidance embedding and takes no"
            raise ValueError(f"this model {need} a `guidance` tensor (embedded guidance scale × 1000)")
        grid = (t // pt, h // ph, w // pw)
        dtype = self.img_in.proj.weight.dtype

        # 1. Conditioning vector: timestep + pooled text (+ guidance).
        vec = self.time_in(timestep) + self.vector_in(pooled.to(dtype))  # (B, D)
        if self.guidance_in is not None:
            vec = vec + self.guidance_in(guidance)

        # 2. Text tokens: drop shared trailing padding, then refine.
        text, text_key_mask = trim_text_padding(text_states.to(dtype), text_mask)
        txt = self.txt_in(text, timestep, text_key_mask)  # (B, L, D)

        # 3. Patchify the latents into video tokens.
        img = self.img_in(latents.to(dtype))  # (B, N, D)
        if cfg.absolute_positions:
            img = img + self.positions(grid, img.device).to(dtype)
        n = img.shape[1]
        rope = self.rope(grid, img.device)  # 2 × (N, Dh)
        key_mask = None
        if text_key_mask is not None:
            key_mask = torch.cat([text_key_mask.new_ones(b, n), text_key_mask], dim=1)  # (B, N+L)
        sp = self.sequence_parallel
        if sp is not None:  # keep this rank's share of the video and text tokens (kinema.models.parallel)
            img, txt, rope, key_mask = sp.shard(img, txt, rope, key_mask)
            n = img.shape[1]

        # 4. Dual-stream blocks, then single-stream blocks over the concatenation.
        for block in self.double_blocks:
            img, txt = self._run(block, img, txt, vec, rope, key_mask)
        x = torch.cat([img, txt], dim=1)  # (B, N+L, D)
        for block in self.single_blocks:
            x = self._run(block, x, vec, rope, key_mask, n)

        # 5. Output projection and unpatchify.
        x = self.final_layer(x[:, :n], vec)  # (B, N, pt·ph·pw·C)
        if sp is not None:
            x = sp.gather(x, grid[0] * grid[1] * grid[2])  # every rank's video tokens
        x = x.view(b, *grid, cfg.out_channels, pt, ph, pw)  # (B, T', H', W', C, pt, ph, pw)
        x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)  # (B, C, T', pt, H', ph, W', pw)
        return x.reshape(b, cfg.out_channels, t, h, w)

    def _run(self, block: nn.Module, *args: Tensor | tuple | int | None) -> Tensor | tuple[Tensor, Tensor]:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)
