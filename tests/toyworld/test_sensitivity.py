"""kinema.toyworld.sensitivity: counterfactual prompts and the loss each prompt kind costs a DiT."""

import json
import math

import pytest
import torch

from kinema.cli import main
from kinema.flow.path import interpolate, velocity_target
from kinema.models import DiTConfig, VAEConfig, build_dit, build_vae
from kinema.options import SamplingDefaults
from kinema.pipeline import Pipeline
from kinema.pipeline_folder import PipelineSpec, save_pipeline
from kinema.pixels import to_model_range
from kinema.toyworld.captions import parse_prompt, scene_prompt
from kinema.toyworld.judge import ATTRIBUTES
from kinema.toyworld.render import render_batch
from kinema.toyworld.scene import WorldConfig, sample_scenes
from kinema.toyworld.sensitivity import SensitivityReport, counterfactual, text_sensitivity

WORLD = WorldConfig(height=32, width=32, frames=5)


def _named(prompt: str) -> dict[str, object]:
    spec = parse_prompt(prompt)
    color, shape, motion = spec.objects[0]
    return {"color": color, "shape": shape, "motion": motion, "camera": spec.camera}


@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_a_counterfactual_prompt_names_another_value_of_that_attribute_only(attribute):
    for scene in sample_scenes(30, WORLD, seed=1, split="all"):
        before, after = _named(scene_prompt(scene)), _named(scene_prompt(counterfactual(scene, attribute)))
        assert after[attribute] != before[attribute]
        assert {k: v for k, v in after.items() if k != attribute} == {k: v for k, v in before.items() if k != attribute}
        assert len({o.color for o in counterfactual(scene, attribute).objects}) == len(scene.objects)


@pytest.mark.parametrize("wording", ["train", "held-out"])
def test_in_a_varied_wording_a_counterfactual_prompt_differs_in_that_attribute_s_words_only(wording):
    """`text_sensitivity` words a clip's prompt and its counterfactuals with the same draws (seed + i)."""
    import random

    for i, scene in enumerate(sample_scenes(30, WORLD, seed=2, split="all")):
        # Swaps that change one word (camera swaps and still -> right change a phrase and its length).
        attributes = ("color", "shape") + (("motion",) if scene.objects[0].motion != "still" else ())
        for attribute in attributes:
            before = scene_prompt(scene, wording, random.Random(i)).split()
            after = scene_prompt(counterfactual(scene, attribute), wording, random.Random(i)).split()
            assert len(before) == len(after) and sum(a != b for a, b in zip(before, after)) == 1, (before, after)


def test_unknown_attribute_is_refused():
    with pytest.raises(ValueError, match="unknown attribute 'size'"):
        counterfactual(sample_scenes(1, WORLD)[0], "size")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(0)
    dit = build_dit(DiTConfig(
        in_channels=4, out_channels=4, heads=2, head_dim=16, depth_double=1, depth_single=1, depth_refiner=1,
        patch=(1, 2, 2), text_dim=384, pooled_dim=384, rope_dims=(4, 6, 6), guidance_embed=False,
    ))
    with torch.no_grad():
        for p in dit.parameters():  # a model whose output depends on the prompt (adaLN-Zero starts at 0)
            p.add_(torch.randn_like(p) * 0.05)
    vae = build_vae(VAEConfig(latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                              norm_num_groups=4, scaling_factor=0.7))
    defaults = SamplingDefaults(steps=2, frames=5, height=32, width=32)
    return save_pipeline(tmp_path_factory.mktemp("pipe") / "tiny", dit, vae, PipelineSpec("minilm", defaults))


def test_report_is_the_loss_of_each_prompt_on_the_same_latents_and_noise(folder):
    pipe = Pipeline.from_pretrained(folder)
    scenes = sample_scenes(3, WORLD, seed=2)
    report = text_sensitivity(pipe, scenes, times=(0.3, 0.9), seed=5, batch=2)
    assert set(report.loss) == {"true", "empty", *ATTRIBUTES} and report.videos == 3

    # The same number by hand, for the motion swap at t = 0.9.
    with torch.no_grad():
        x0 = pipe.vae.encode(to_model_range(render_batch(scenes))).mean * 0.7
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
        t = torch.full((3,), 0.9)
        text = pipe.encode_text([scene_prompt(counterfactual(s, "motion")) for s in scenes])
        v = pipe.velocity(interpolate(x0, noise, t), t, text)
        by_hand = torch.nn.functional.mse_loss(v, velocity_target(x0, noise)).item()
    assert report.loss["motion"][1] == pytest.approx(by_hand, rel=1e-5)

    whole = text_sensitivity(pipe, scenes, times=(0.3, 0.9), seed=5).loss  # batching changes nothing but rounding
    assert all(whole[k] == pytest.approx(v, rel=1e-5) for k, v in report.loss.items())


def test_share_is_the_swap_cost_over_the_whole_prompt_cost():
    report = SensitivityReport((0.5, 0.9), {"true": [1.0, 2.0], "empty": [3.0, 2.0], "motion": [1.5, 2.5]}, videos=1)
    share = report.share("motion")
    assert share[0] == pytest.approx(0.25)
    assert math.isnan(share[1])  # the prompt is worth nothing at t = 0.9: no share to give


def test_still_images_report_only_color_and_shape(folder):
    pipe = Pipeline.from_pretrained(folder)
    scenes = sample_scenes(2, WorldConfig(height=32, width=32, frames=1))
    report = text_sensitivity(pipe, scenes, times=(0.5,))
    assert set(report.loss) == {"true", "empty", "color", "shape"}
    with pytest.raises(ValueError, match=r"times must lie in \(0, 1\)"):
        text_sensitivity(pipe, scenes, times=(1.0,))


def test_cli_writes_the_report(folder, tmp_path, capsys):
    argv = ["eval", "sensitivity", "--checkpoint", str(folder), "-n", "2", "--size", "32", "--frames", "5", "--times", "0.5",
            "--motions", "left,right", "--out", str(tmp_path)]
    assert main(argv) == 0
    report = json.loads((tmp_path / "sensitivity.json").read_text())
    assert report["videos"] == 2 and report["times"] == [0.5] and set(report["share"]) == set(ATTRIBUTES)
    assert "motion" in capsys.readouterr().out and report["wording"] == "template"
    assert main(argv + ["--wording", "held-out"]) == 0
    assert json.loads((tmp_path / "sensitivity.json").read_text())["wording"] == "held-out"
    assert main(["eval", "sensitivity", "--checkpoint", str(folder), "--times", "0.5,1"]) == 2
