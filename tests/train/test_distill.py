"""Guidance and step distillation on a tiny random teacher and a hand-made latent + prompt cache."""

import json
from pathlib import Path

import pytest
import torch

from kinema.config import ConfigError, from_dict
from kinema.flow import classifier_free_guidance, euler, sigma_schedule
from kinema.models import DiTConfig, VAEConfig, build_dit, build_vae
from kinema.models.checkpoints import load_dit
from kinema.models.velocity import guided_velocity
from kinema.options import SamplingDefaults
from kinema.pipeline import Pipeline
from kinema.pipeline_folder import PipelineSpec, save_pipeline
from kinema.train.distill import Distiller, DistillRecipe, build_student, distill, teacher_trajectories
from kinema.train.latent_cache import LatentBucket, LatentCache, PromptCache

LATENT = (4, 2, 4, 4)  # (C, T, H, W): 32×32×5 video through a 4×-spatial tiny VAE


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A tiny CFG teacher pipeline (prompt-dependent random weights) and its cache, side by side."""
    root = tmp_path_factory.mktemp("distill")
    torch.manual_seed(0)
    dit = build_dit(DiTConfig(
        in_channels=4, out_channels=4, heads=2, head_dim=16, depth_double=1, depth_single=1, depth_refiner=1,
        patch=(1, 2, 2), text_dim=384, pooled_dim=384, rope_dims=(4, 6, 6), guidance_embed=False,
    ))
    with torch.no_grad():
        for p in dit.parameters():  # adaLN-Zero starts at 0: perturb so the output depends on the prompt
            p.add_(torch.randn_like(p) * 0.05)
    vae = build_vae(VAEConfig(latent_channels=4, block_out_channels=(8, 8, 8), layers_per_block=1,
                              norm_num_groups=4, spatial_compression_ratio=4, scaling_factor=0.5))
    save_pipeline(root / "teacher", dit, vae,
                  PipelineSpec("minilm", SamplingDefaults(steps=4, cfg_scale=3.0, frames=5, height=32, width=32)))
    g = torch.Generator().manual_seed(0)
    n, k, length = 6, 2, 5
    real = torch.randint(2, length + 1, (n, k), generator=g)
    prompts = PromptCache(
        states=torch.randn(n, k, length, 384, generator=g), mask=torch.arange(length) < real[..., None],
        pooled=torch.randn(n, k, 384, generator=g), empty_states=torch.zeros(length, 384),
        empty_mask=torch.arange(length) < 1, empty_pooled=torch.zeros(384),
    )
    bucket = LatentBucket(torch.randn(n, *LATENT, generator=g), torch.rand(n, *LATENT, generator=g) * 0.1)
    LatentCache({"32x32x5": bucket}, prompts).save(root / "latents.safetensors")
    return root


def recipe(root: Path, run: Path, **overrides: object) -> DistillRecipe:
    base = {
        "run_dir": str(run), "teacher": str(root / "teacher"), "cache": str(root / "latents.safetensors"),
        "bucket": {"height": 32, "width": 32, "frames": 5, "batch_size": 3}, "steps": 4, "output": str(run / "out"),
        "lr": 1e-3, "warmup": 1, "checkpoint_every": 2, "log_every": 1,
        "guidance": {"low": 1.0, "high": 6.0, "shift": 3.0},
        "sampling": {"steps": 4, "shift": 3.0, "guidance": 3.0, "frames": 5, "height": 32, "width": 32},
    }
    return from_dict(DistillRecipe, {**base, **overrides})


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_guided_velocity_batches_the_two_forwards_of_cfg(teacher):
    r = recipe(teacher, teacher / "unused")
    model = build_student(r, teacher / "teacher").eval()  # guidance embedding added; the teacher itself for CFG below
    cfg_teacher = load_dit(teacher / "teacher" / "dit").eval()
    cache = LatentCache.load(teacher / "latents.safetensors")
    cond, uncond = cache.prompts.text(torch.tensor([0, 3]), torch.tensor([1, 0])), cache.prompts.empty(2)
    x, t, w = torch.randn(2, *LATENT), torch.tensor([0.9, 0.3]), torch.tensor([1.5, 4.0])
    with torch.no_grad():
        v = guided_velocity(cfg_teacher, x, t, cond, uncond, w)
        v_c = cfg_teacher(x, t * 1000, cond.states, cond.mask, cond.pooled)
        v_u = cfg_teacher(x, t * 1000, uncond.states, uncond.mask, uncond.pooled)
        torch.testing.assert_close(v, classifier_free_guidance(v_c, v_u, w.view(-1, 1, 1, 1, 1)), rtol=1e-5, atol=1e-6)
        # The fresh guidance embedding outputs 0: the untrained student is the teacher's conditional model.
        torch.testing.assert_close(guided_velocity(model, x, t, cond, uncond, w), v_c, rtol=1e-5, atol=1e-6)


def test_guidance_distillation_trains_resumes_and_exports(teacher, tmp_path):
    out = distill(recipe(teacher, tmp_path / "a"))
    straight = losses(tmp_path / "a")
    assert len(straight) == 4 and torch.isfinite(torch.tensor(straight)).all()
    pipe = Pipeline.from_pretrained(out)
    assert pipe.dit.cfg.guidance_embed and pipe.defaults.guidance == 3.0 and pipe.defaults.cfg_scale == 1.0
    assert pipe("a red circle moves to the right", seed=0).frames.shape == (5, 32, 32, 3)
    # Stopped after 2 steps, then resumed: the same losses as the uninterrupted run.
    distill(recipe(teacher, tmp_path / "b", steps=2))
    distill(recipe(teacher, tmp_path / "b"), resume=True)
    assert losses(tmp_path / "b") == pytest.approx(straight, rel=1e-5, abs=1e-7)


def test_teacher_trajectories_are_the_fine_euler_solution_and_survive_a_lost_chunk(teacher, tmp_path):
    spec = {"steps": 3, "shift": 3.0, "substeps": 2, "trajectories": 5, "cfg_scale": 2.0, "chunk": 2}
    r = recipe(teacher, tmp_path / "s", guidance=None, trajectory=spec,
               sampling={"steps": 3, "shift": 3.0, "frames": 5, "height": 32, "width": 32})
    model = load_dit(teacher / "teacher" / "dit").eval()
    cache = LatentCache.load(teacher / "latents.safetensors")
    traj = teacher_trajectories(r, model, cache)
    assert traj["states"].shape == (5, 4, *LATENT)
    assert len(list((tmp_path / "s" / "trajectories").glob("chunk-*.safetensors"))) == 3
    # The recorded end point is Euler over the concatenated fine schedule, from the recorded noise.
    coarse = sigma_schedule(3, 3.0)
    fine = torch.cat([torch.linspace(coarse[i].item(), coarse[i + 1].item(), 3)[:-1] for i in range(3)] + [coarse[-1:]])
    cond, uncond = cache.prompts.text(traj["idx"][:2], traj["variant"][:2]), cache.prompts.empty(2)
    w = torch.full((2,), 2.0)
    with torch.no_grad():
        end = euler(lambda x, t: guided_velocity(model, x, t, cond, uncond, w), traj["states"][:2, 0], fine)
    torch.testing.assert_close(traj["states"][:2, -1], end, rtol=1e-4, atol=1e-5)
    (tmp_path / "s" / "trajectories" / "chunk-00001.safetensors").unlink()  # a kill lost one chunk
    again = teacher_trajectories(r, model, cache)
    assert torch.equal(again["states"], traj["states"]) and torch.equal(again["idx"], traj["idx"])


def test_step_distillation_exports_a_few_step_pipeline(teacher, tmp_path):
    spec = {"steps": 3, "shift": 3.0, "substeps": 2, "trajectories": 4, "cfg_scale": 2.0, "chunk": 4}
    out = distill(recipe(teacher, tmp_path / "s", guidance=None, trajectory=spec, steps=3,
                         sampling={"steps": 3, "shift": 3.0, "frames": 5, "height": 32, "width": 32}))
    assert all(torch.isfinite(torch.tensor(losses(tmp_path / "s"))))
    pipe = Pipeline.from_pretrained(out)
    assert not pipe.dit.cfg.guidance_embed and pipe.defaults.steps == 3 and pipe.defaults.cfg_scale == 1.0


def test_recipes_need_exactly_one_method_and_a_consistent_student(teacher, tmp_path):
    with pytest.raises(ConfigError, match="exactly one"):
        recipe(teacher, tmp_path, guidance=None)
    with pytest.raises(ValueError, match="set sampling.guidance"):
        build_student(recipe(teacher, tmp_path, sampling={"steps": 4}), teacher / "teacher")
    with pytest.raises(FileNotFoundError, match="latents.safetensors"):
        distill(recipe(teacher, tmp_path / "r", cache=str(tmp_path / "latents.safetensors")))


def test_distillation_takes_the_prompts_of_the_rows_in_its_bucket(teacher, tmp_path):
    """A bucket that holds some rows only (a video bucket of a data set with image rows): the latents'
    prompts are their rows', and trajectories are drawn for those rows' prompts only."""
    full = LatentCache.load(teacher / "latents.safetensors")
    bucket = full.buckets["32x32x5"]
    rows = torch.tensor([5, 4, 3])  # none of them 0-2, the indices within the bucket
    LatentCache({"32x32x5": LatentBucket(bucket.mean[:3], bucket.std[:3], rows)}, full.prompts).save(
        tmp_path / "latents.safetensors")
    r = recipe(teacher, tmp_path / "g", cache=str(tmp_path / "latents.safetensors"))
    distiller = Distiller(r)
    asked = []
    text = distiller.cache.prompts.text
    distiller.cache.prompts.text = lambda idx, variant, empty=None: asked.append(idx) or text(idx, variant, empty)
    assert torch.isfinite(distiller.guidance_loss(torch.Generator().manual_seed(0)))
    assert set(asked[0].tolist()) <= {5, 4, 3}

    spec = {"steps": 2, "shift": 3.0, "substeps": 1, "trajectories": 8, "cfg_scale": 2.0, "chunk": 4}
    r = recipe(teacher, tmp_path / "s", cache=str(tmp_path / "latents.safetensors"), guidance=None, trajectory=spec,
               sampling={"steps": 2, "shift": 3.0, "frames": 5, "height": 32, "width": 32})
    model, cache = load_dit(teacher / "teacher" / "dit").eval(), LatentCache.load(tmp_path / "latents.safetensors")
    traj = teacher_trajectories(r, model, cache)
    assert set(traj["idx"].tolist()) <= {5, 4, 3} and len(set(traj["idx"].tolist())) > 1
