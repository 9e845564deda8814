"""Probe: how fast does the toy DiT learn the shape word on images? A learning curve, judged as it trains.

    python benchmarks/probe_toy_shape.py --steps 4000 --eval-every 800 -n 96
    python benchmarks/probe_toy_shape.py --prompts world --steps 2400      # the world's full prompts
    python benchmarks/probe_toy_shape.py --backgrounds plain --steps 800   # one-color backgrounds

Trains the toy DiT from scratch on rendered single 64×64 frames with one object each, encoded by the
shipped VAE: batch 64, AdamW, linear warm-up, logit-normal t shifted ×3, 10% empty prompts, EMA. Every
`--eval-every` steps the EMA weights draw `-n` fresh training-split frames (Euler, 30 steps, shift 3,
CFG 4) and kinema's judge scores color and shape. One line per evaluation goes to stdout and, with
`--results`, to benchmarks/RESULTS.md's table format.

Prompts: `short` is "a red square"; `world` is the toy world's full prompt of a still (caption_to_prompt
of the scene's caption); `video` trains on the first frame of clips with their clips' description and
camera phrase, which is what the DiT trainer's image buckets see.
"""

from __future__ import annotations

import argparse
import copy
import random
import time

import numpy as np
import torch

import kinema.toyworld.render as render
from kinema.caption.schema import PromptDropout, caption_to_prompt
from kinema.flow import TimeSampler, classifier_free_guidance, euler, flow_matching_loss, interpolate, sigma_schedule
from kinema.models.checkpoints import load_vae
from kinema.models.sizes import build_dit
from kinema.models.text import build_text_encoder
from kinema.pipeline_folder import default_checkpoint
from kinema.toyworld.captions import scene_caption
from kinema.toyworld.judge import judge
from kinema.toyworld.scene import TINTS, WorldConfig, sample_scenes


def prompt_of(scene, style: str) -> str:
    o = scene.objects[0]
    if style == "short":
        return f"a {o.color} {o.shape}"
    if style == "video":  # what the DiT trainer gives an image bucket: its clip's description and camera
        return caption_to_prompt(scene_caption(scene), TERSE, random.Random(0))
    return caption_to_prompt(scene_caption(scene))


TERSE = PromptDropout(dense=0.0, background=1.0, style=1.0, shot_type=1.0, lighting=1.0, atmosphere=1.0, camera_motion=0.0)


def flat_backgrounds() -> None:
    """Replace the world's textured backgrounds by their tint."""
    textured = render.background_canvas

    def flat(scene):
        canvas = textured(scene)
        return np.broadcast_to(np.asarray(TINTS[scene.tint], np.uint8), canvas.shape).copy()

    render.background_canvas = flat


@torch.no_grad()
def evaluate(dit, vae, encoder, world, style: str, n: int) -> tuple[float, float, dict[str, list[int]]]:
    scenes = sample_scenes(n, world, seed=99, split="train")
    cond = encoder.encode([prompt_of(s, style) for s in scenes])
    empty = encoder.encode([""])
    c, s = vae.cfg.latent_channels, vae.cfg.spatial_compression_ratio
    noise = torch.stack([torch.randn(c, 1, 64 // s, 64 // s, generator=torch.Generator().manual_seed(i)) for i in range(n)])
    latents = []
    for i in range(0, n, 16):
        b = len(noise[i : i + 16])
        states = torch.cat([cond.states[i : i + b], empty.states.expand(b, -1, -1)])
        mask = torch.cat([cond.mask[i : i + b], empty.mask.expand(b, -1)])
        pooled = torch.cat([cond.pooled[i : i + b], empty.pooled.expand(b, -1)])

        def velocity(x, t):
            v_cond, v_uncond = dit(torch.cat([x, x]), torch.cat([t, t]) * 1000, states, mask, pooled, None).chunk(2)
            return classifier_free_guidance(v_cond, v_uncond, 4.0)

        latents.append(euler(velocity, noise[i : i + b], sigma_schedule(30, 3.0)))
    latents = torch.cat(latents)
    video = vae.decode(latents / vae.cfg.scaling_factor)
    pixels = video.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1).numpy()
    per: dict[str, list[int]] = {}
    color = shape = 0
    for scene, frames in zip(scenes, pixels):
        verdict = judge(frames, scene)
        color += verdict.color
        shape += verdict.shape
        right, total = per.setdefault(scene.objects[0].shape, [0, 0])
        per[scene.objects[0].shape] = [right + verdict.shape, total + 1]
    return color / n, shape / n, per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2400)
    ap.add_argument("--eval-every", type=int, default=800)
    ap.add_argument("-n", type=int, default=96, help="frames judged per evaluation")
    ap.add_argument("--prompts", choices=["short", "world", "video"], default="short",
                    help="short: 'a red square'; world: a still's full prompt; video: the first frame of a clip with "
                    "its clip's description and camera ('a red square moves up. the camera pans left.')")
    ap.add_argument("--backgrounds", choices=["textured", "plain"], default="textured")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--clips", type=int, default=4000)
    ap.add_argument("--vae", default=str(default_checkpoint() / "vae"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.backgrounds == "plain":
        flat_backgrounds()

    world = WorldConfig(frames=17 if args.prompts == "video" else 1, multi_object_fraction=0.0)
    scenes = sample_scenes(args.clips, world, seed=5, split="train")
    frames = np.concatenate([render.render_batch(scenes[i : i + 500])[:, :1] for i in range(0, args.clips, 500)])  # (N, 1, 64, 64, 3)
    vae = load_vae(args.vae).eval()
    with torch.no_grad():
        latents = torch.cat([
            vae.encode(torch.from_numpy(frames[i : i + 200]).permute(0, 4, 1, 2, 3).float() / 127.5 - 1).mode()
            for i in range(0, args.clips, 200)
        ]) * vae.cfg.scaling_factor  # (N, C, 1, h, w)
    encoder = build_text_encoder("minilm")
    prompts = [prompt_of(s, args.prompts) for s in scenes]
    vocab = sorted(set(prompts)) + [""]
    with torch.no_grad():
        text = encoder.encode(vocab)
    index = {p: i for i, p in enumerate(vocab)}
    prompt_ids = torch.tensor([index[p] for p in prompts])

    torch.manual_seed(0)
    dit = build_dit("toy").train()
    ema = copy.deepcopy(dit).eval().requires_grad_(False)
    opt = torch.optim.AdamW(dit.parameters(), lr=args.lr, weight_decay=0.0, betas=(0.9, 0.99))
    times = TimeSampler("logit_normal", 0.0, 1.0, 3.0)
    g = torch.Generator().manual_seed(0)
    start = time.time()
    for step in range(1, args.steps + 1):
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, step / 100) * min(1.0, (args.steps - step + 1) / 200)
        idx = torch.randint(args.clips, (args.batch,), generator=g)
        p = prompt_ids[idx].masked_fill(torch.rand(args.batch, generator=g) < 0.1, index[""])
        t = times.sample(args.batch, g)
        noise = torch.randn(latents[idx].shape, generator=g)
        pred = dit(interpolate(latents[idx], noise, t), t * 1000, text.states[p], text.mask[p], text.pooled[p], None)
        loss = flow_matching_loss(pred, latents[idx], noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dit.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for e, w in zip(ema.parameters(), dit.parameters()):
                e.lerp_(w, 0.01)
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.4f} {time.time() - start:.0f}s", flush=True)
        if step % args.eval_every == 0 or step == args.steps:
            color, shape, per = evaluate(ema, vae, encoder, world, args.prompts, args.n)
            print(f"EVAL prompts={args.prompts} backgrounds={args.backgrounds} lr={args.lr} step={step} "
                  f"n={args.n} color={color:.1%} shape={shape:.1%} per-shape={per} "
                  f"elapsed={time.time() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
