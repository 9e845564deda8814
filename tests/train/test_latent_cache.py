"""The prompt side of the latent cache: prompt variants in the recipe's wording, and the key that says
when the cached text must be encoded again."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from kinema.caption.schema import PromptDropout
from kinema.config import ConfigError, from_dict
from kinema.toyworld.captions import scene_caption, scene_prompt
from kinema.toyworld.scene import WorldConfig, sample_scenes
from kinema.train.dit_recipe import DiTRecipe
from kinema.train.latent_cache import prompt_cache_key, prompt_variants, recipe_wording


def recipe(**fields: object) -> DiTRecipe:
    return from_dict(DiTRecipe, {
        "run_dir": "unused", "dataset": "unused", "vae": "unused",
        "stages": [{"name": "images", "steps": 1, "buckets": [{"height": 16, "width": 16, "frames": 1, "batch_size": 1}]}],
        **fields,
    })


def test_the_prompt_key_changes_with_the_wording_and_not_for_the_template():
    template, varied = recipe(), recipe(prompt_wording="varied")
    assert prompt_cache_key(template) != prompt_cache_key(varied)
    # The template's key is the key caches were made with before wordings existed: they stay valid.
    assert "wording" not in json.loads(prompt_cache_key(template))
    assert prompt_cache_key(dataclasses.replace(varied, prompt_wording="template")) == prompt_cache_key(template)


def test_an_unknown_prompt_wording_is_refused_in_one_sentence():
    with pytest.raises(ConfigError, match=r"prompt_wording must be one of \['template', 'varied'\], got 'held-out'"):
        recipe(prompt_wording="held-out")  # held-out wordings are for evaluation only
    assert recipe_wording(recipe(prompt_wording="varied")) == "train"


def test_varied_variants_start_with_the_template_prompt_and_then_vary():
    scene = sample_scenes(1, WorldConfig(), seed=2, split="train")[0]
    caption = scene_caption(scene).model_dump_json()
    variants = prompt_variants(caption, 6, random.Random(0), PromptDropout(), "train")
    assert variants[0] == scene_prompt(scene)
    assert len(set(variants)) == 6
    with pytest.raises(ValueError, match="held-out"):
        prompt_variants(caption, 2, random.Random(0), PromptDropout(), "held-out")
