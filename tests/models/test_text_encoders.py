"""Text encoders: the packaged MiniLM (real weights, offline) and the HunyuanVideo LLM + CLIP pair, the
latter with tiny random models built here and checked against diffusers' HunyuanVideoPipeline."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from kinema.models.text import (
    HunyuanTextConfig,
    HunyuanTextEncoder,
    MiniLMConfig,
    MiniLMEncoder,
    build_text_encoder,
    measure_crop_start,
)

PROMPTS = ["a red circle moves to the right", "a blue square moves up. the camera pans left.", "a white star"]


# --------------------------------------------------------------------------------------------------- MiniLM


@pytest.fixture(scope="module")
def minilm(monkeypatch_module):
    return build_text_encoder("minilm")


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")  # the weights come from the installed package, never the network
    yield mp
    mp.undo()


def test_minilm_shapes_mask_and_padding(minilm):
    emb = minilm.encode(PROMPTS)
    assert emb.states.shape == (3, 32, 384) and emb.states.dtype == torch.float32
    assert emb.mask.shape == (3, 32) and emb.mask.dtype == torch.bool
    assert emb.pooled.shape == (3, 384)
    lengths = [len(minilm.tokenizer(p)["input_ids"]) for p in PROMPTS]
    assert emb.mask.sum(1).tolist() == [min(n, 32) for n in lengths]
    assert (emb.states[~emb.mask] == 0).all()
    torch.testing.assert_close(emb.pooled.norm(dim=-1), torch.ones(3))
    assert (minilm.dim, minilm.pooled_dim, minilm.max_length) == (384, 384, 32)


def test_minilm_pooled_is_the_sentence_transformers_embedding(minilm):
    from sentence_transformers import SentenceTransformer

    from kinema.models.text import minilm_path

    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(PROMPTS, convert_to_tensor=True)
    torch.testing.assert_close(minilm.encode(PROMPTS).pooled, reference, atol=1e-5, rtol=1e-5)


def test_minilm_a_prompt_does_not_depend_on_its_batch(minilm):
    alone = minilm.encode(PROMPTS[:1])
    together = minilm.encode([PROMPTS[0], "a much longer prompt " * 9])
    torch.testing.assert_close(alone.states[0], together.states[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone.pooled[0], together.pooled[0], atol=1e-5, rtol=1e-4)
    long = together.mask[1]
    assert long.all()  # truncated to L, every kept token real


def test_minilm_understands_paraphrases(minilm):
    p = minilm.encode(["a red circle moves to the right", "a red disc is moving rightwards", "a blue square moves up"]).pooled
    assert float(p[0] @ p[1]) > float(p[0] @ p[2])


def test_encode_rejects_a_bare_string(minilm):
    with pytest.raises(ValueError, match="list of prompt strings"):
        minilm.encode("a red circle")


def test_minilm_config_is_validated():
    with pytest.raises(ValueError, match="context_length"):
        MiniLMConfig(max_length=64, context_length=32)


# ------------------------------------------------------------------------------------------ HunyuanVideo pair

SPECIALS = ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|pad|>", "<unk>"]


def _tokenizer(folder: Path, words: list[str], bos: str, eos: str | None) -> None:
    """A word-level fast tokenizer with Llama-3's special tokens; BOS (and EOS) added to every text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + sorted(set(words)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.add_special_tokens(SPECIALS)
    single = f"{bos} $A" + (f" {eos}" if eos else "")
    specials = [(bos, vocab[bos])] + ([(eos, vocab[eos])] if eos else [])
    tok.post_processor = processors.TemplateProcessing(single=single, special_tokens=specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos or "<|eot_id|>", pad_token="<|pad|>", unk_token="<unk>",
        model_max_length=512,
    )
    fast.save_pretrained(folder)


@pytest.fixture(scope="module")
def hunyuan_folder(tmp_path_factory):
    """A diffusers-layout HunyuanVideo text-encoder folder with tiny random Llama (3 layers) and CLIP."""
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    from kinema.models.text import HUNYUAN_VIDEO_TEMPLATE

    root = tmp_path_factory.mktemp("hunyuan")
    words = re.findall(r"\w+|[^\w\s]", HUNYUAN_VIDEO_TEMPLATE.replace("{}", "") + " " + " ".join(PROMPTS))
    _tokenizer(root / "tokenizer", words, "<|begin_of_text|>", None)
    _tokenizer(root / "tokenizer_2", words, "<|begin_of_text|>", "<|eot_id|>")
    vocab = len(SPECIALS) + len(set(words))
    torch.manual_seed(0)
    llm = LlamaModel(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, pad_token_id=4))
    llm.save_pretrained(root / "text_encoder")
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=vocab, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                                        num_attention_heads=4, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=4))
    clip.save_pretrained(root / "text_encoder_2")
    return root


@pytest.fixture(scope="module")
def hunyuan(hunyuan_folder):
    return HunyuanTextEncoder(
        HunyuanTextConfig(
            llm_path=str(hunyuan_folder / "text_encoder"), clip_path=str(hunyuan_folder / "text_encoder_2"),
            llm_tokenizer_path=str(hunyuan_folder / "tokenizer"), clip_tokenizer_path=str(hunyuan_folder / "tokenizer_2"),
            max_length=24, crop_start=None,
        )
    )


def test_hunyuan_crop_removes_exactly_the_template(hunyuan):
    emb = hunyuan.encode(PROMPTS)
    assert emb.states.shape == (3, 24, 32) and emb.mask.shape == (3, 24) and emb.pooled.shape == (3, 24)
    # After the crop, the real tokens are the prompt's own plus the template's closing <|eot_id|>.
    for prompt, n in zip(PROMPTS, emb.mask.sum(1).tolist()):
        assert n == len(hunyuan.tokenizer(prompt, add_special_tokens=False)["input_ids"]) + 1
    assert hunyuan.crop_start == measure_crop_start(hunyuan.tokenizer, hunyuan.config.template)
    assert hunyuan.crop_start > 50  # the long system instruction is cropped off


def test_hunyuan_matches_diffusers_hunyuan_video_pipeline(hunyuan):
    from diffusers import HunyuanVideoPipeline

    fake = SimpleNamespace(
        tokenizer=hunyuan.tokenizer, text_encoder=hunyuan.llm, tokenizer_2=hunyuan.clip_tokenizer,
        text_encoder_2=hunyuan.clip, _execution_device=torch.device("cpu"),
    )
    template = {"template": hunyuan.config.template, "crop_start": hunyuan.crop_start}
    states, mask = HunyuanVideoPipeline._get_llama_prompt_embeds(
        fake, PROMPTS, template, device=torch.device("cpu"), dtype=torch.float32, max_sequence_length=24
    )
    pooled = HunyuanVideoPipeline._get_clip_prompt_embeds(fake, PROMPTS, device=torch.device("cpu"), dtype=torch.float32)
    emb = hunyuan.encode(PROMPTS)
    torch.testing.assert_close(emb.states, states)
    assert torch.equal(emb.mask, mask.bool())
    torch.testing.assert_close(emb.pooled, pooled)


def test_hunyuan_states_come_from_the_third_to_last_layer(hunyuan):
    ids = hunyuan.tokenizer([hunyuan.config.template.format(PROMPTS[0])], return_tensors="pt")
    hidden = hunyuan.llm(**ids, output_hidden_states=True).hidden_states  # embeddings + 3 layers
    emb = hunyuan.encode(PROMPTS[:1])
    n = int(emb.mask.sum())
    torch.testing.assert_close(emb.states[0, :n], hidden[-3][0, hunyuan.crop_start : hunyuan.crop_start + n], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(emb.states[0, :n], hidden[-1][0, hunyuan.crop_start : hunyuan.crop_start + n])


def test_build_text_encoder_reads_a_hunyuan_video_folder(hunyuan_folder):
    encoder = build_text_encoder(str(hunyuan_folder), max_length=16)
    assert isinstance(encoder, HunyuanTextEncoder)
    emb = encoder.encode(PROMPTS[:1])
    assert emb.states.shape == (1, 16, 32) and emb.pooled.shape == (1, 24)


def test_build_text_encoder_names_what_it_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="unknown text encoder"):
        build_text_encoder(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="exactly one"):
        HunyuanTextConfig(llm_path="a", clip_path="b", template="no placeholder")


def test_minilm_encoder_from_a_sentence_encoder_folder(monkeypatch_module):
    from kinema.models.text import minilm_path

    encoder = build_text_encoder(str(minilm_path()), max_length=8)
    assert isinstance(encoder, MiniLMEncoder) and encoder.encode(PROMPTS[:1]).states.shape == (1, 8, 384)


def test_build_text_encoder_reads_the_official_layout(hunyuan_folder, tmp_path):
    """Tencent's ckpts/: text_encoder/ a LlamaForCausalLM and text_encoder_2/ a full CLIP model, each with
    its tokenizer inside the model folder."""
    import shutil

    from transformers import AutoModel, CLIPConfig, CLIPModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    llm_cfg = LlamaConfig.from_pretrained(hunyuan_folder / "text_encoder")
    causal = LlamaForCausalLM(llm_cfg)
    causal.save_pretrained(tmp_path / "text_encoder")
    shutil.copytree(hunyuan_folder / "tokenizer", tmp_path / "text_encoder", dirs_exist_ok=True)
    text_cfg = AutoModel.from_pretrained(hunyuan_folder / "text_encoder_2").config
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 8, "patch_size": 4}
    clip = CLIPModel(CLIPConfig(text_config=text_cfg.to_dict(), vision_config=vision, projection_dim=8))
    clip.save_pretrained(tmp_path / "text_encoder_2")
    shutil.copytree(hunyuan_folder / "tokenizer_2", tmp_path / "text_encoder_2", dirs_exist_ok=True)

    encoder = build_text_encoder(str(tmp_path), max_length=16)
    assert encoder.crop_start == 95  # the reference's, for the Llama-3 tokenizer; this tiny one measures its own
    encoder = HunyuanTextEncoder(dataclasses.replace(encoder.config, crop_start=None))
    emb = encoder.encode(PROMPTS[:2])
    # The causal LM's backbone and the CLIP model's text tower are what was loaded.
    ids = encoder.tokenizer([encoder.config.template.format(PROMPTS[0])], return_tensors="pt")
    hidden = causal.model(**ids, output_hidden_states=True).hidden_states[-3][0, encoder.crop_start :]
    n = int(emb.mask[0].sum())
    torch.testing.assert_close(emb.states[0, :n], hidden[:n], atol=1e-5, rtol=1e-4)
    clip_ids = encoder.clip_tokenizer(PROMPTS[:2], max_length=77, padding="max_length", return_tensors="pt").input_ids
    torch.testing.assert_close(emb.pooled, clip.text_model(input_ids=clip_ids).pooler_output, atol=1e-5, rtol=1e-4)
