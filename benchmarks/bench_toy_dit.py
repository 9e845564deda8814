"""The toy DiT side by side: the same short image-only training run for each variant of one set, then
the loss and prompt adherence of each. Sets: `patches` (1×4×4 and 1×2×2 patches, each with and without
absolute positions) and `capacity` (the shipped toy DiT, twice as wide, twice as deep).

    .venv/bin/python benchmarks/bench_toy_dit.py [--set patches|capacity] [--cache runs/toy/dit/latents.safetensors]
        [--vae runs/toy/vae-decoder/export] [--steps 1000] [-n 48]

The latent cache is the one `kinema train configs/toy/dit.yaml` writes (it holds the 64×64 image
bucket and the encoded prompts). Every variant trains from the same seed on the same batches for
`--steps` steps (batch 64 of 64×64 images, lr 5e-4, EMA 0.99), then its EMA weights generate one
image per training-split prompt (50 steps, shift 3, CFG 4) for the toy-world judge. Only images:
whether the model can draw one object of the right color and shape, in minutes rather than an hour.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from common import append_results  # noqa: E402

from kinema.models.checkpoints import load_vae  # noqa: E402
from kinema.models.dit import DiTConfig  # noqa: E402
from kinema.models.vae import CausalVAE  # noqa: E402
from kinema.models.sizes import DIT_SIZES, dit_config  # noqa: E402
from kinema.options import SamplingDefaults  # noqa: E402
from kinema.pipeline import Pipeline  # noqa: E402
from kinema.pipeline_folder import PipelineSpec, save_pipeline  # noqa: E402
from kinema.toyworld.adherence import eval_cases, evaluate  # noqa: E402
from kinema.toyworld.scene import WorldConfig  # noqa: E402
from kinema.train.dit import DiTTrainer  # noqa: E402
from kinema.train.dit_recipe import Bucket, DiTRecipe, DiTStage  # noqa: E402
from kinema.train.latent_cache import LatentCache  # noqa: E402


def patch_variants() -> dict[str, DiTConfig]:
    toy = dit_config("toy")
    return {
        f"{p}×{p} patches{', absolute positions' if placed else ''}": dataclasses.replace(
            toy, patch=(1, p, p), absolute_positions=placed)
        for p in (4, 2) for placed in (False, True)
    }


def capacity_variants() -> dict[str, DiTConfig]:
    toy = dit_config("toy")
    wide = dataclasses.replace(toy, heads=2 * toy.heads)
    deep = dataclasses.replace(toy, depth_double=2 * toy.depth_double, depth_single=2 * toy.depth_single)

    def shape(cfg: DiTConfig) -> str:
        return f"{cfg.heads} heads × {cfg.head_dim}, {cfg.depth_double} double + {cfg.depth_single} single blocks"

    return {f"{name} ({shape(cfg)})": cfg for name, cfg in (("toy", toy), ("twice as wide", wide), ("twice as deep", deep))}


VARIANT_SETS = {
    "patches": ("Toy DiT: patch size and absolute positions (images)", patch_variants),
    "capacity": ("Toy DiT: width and depth (images)", capacity_variants),
}


def train_and_judge(
    name: str, cfg: DiTConfig, args: argparse.Namespace, cache: LatentCache, vae: CausalVAE, folder: Path
) -> dict:
    DIT_SIZES[name] = lambda: cfg  # the trainer builds its model from a size name
    recipe = DiTRecipe(
        run_dir=str(folder), dataset="unused: the latent cache is given", vae=args.vae, model=name,
        stages=[DiTStage("images", args.steps, [Bucket(64, 64, 1, 64)])],
        lr=5e-4, warmup=100, cooldown=200, ema_decay=0.99,
    )
    recipe.check_buckets(vae.cfg, cfg)
    trainer = DiTTrainer(recipe, cache, vae)
    losses, seconds = [], []
    for step in tqdm(range(args.steps), desc=name, unit="step"):
        start = time.perf_counter()
        losses.append(trainer.step(step)["loss"])
        seconds.append(time.perf_counter() - start)
    trainer.ema.copy_to(trainer.model)
    defaults = SamplingDefaults(steps=50, shift=3.0, cfg_scale=4.0, frames=1)
    pipe = Pipeline.from_pretrained(save_pipeline(folder / "pipeline", trainer.model.eval(), vae, PipelineSpec("minilm", defaults)))
    cases = eval_cases(args.num, WorldConfig(frames=1), split="train")
    accuracy = evaluate(lambda prompt, seed: pipe(prompt, seed=seed).frames, cases, keep_videos=0).accuracy()
    tokens = (64 // vae.cfg.spatial_compression_ratio // cfg.patch[1]) ** 2
    tail = losses[-max(1, len(losses) // 5):]
    params = sum(p.numel() for p in trainer.model.parameters())
    return {"params": params, "tokens": tokens, "sec": statistics.median(seconds), "loss": statistics.mean(tail), **accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=sorted(VARIANT_SETS), default="patches", help="which variants to compare")
    parser.add_argument("--cache", default="runs/toy/dit/latents.safetensors", help="latent + prompt cache of a toy DiT run")
    parser.add_argument("--vae", default="runs/toy/vae-decoder/export", help="the VAE that cache was encoded with")
    parser.add_argument("--steps", type=int, default=1000, help="training steps per variant")
    parser.add_argument("-n", "--num", type=int, default=48, help="training-split prompts judged per variant")
    args = parser.parse_args()
    if not Path(args.cache).is_file():
        sys.exit(f"no latent cache at {args.cache}: run `kinema train configs/toy/dit.yaml` first (it writes one)")

    cache = LatentCache.load(Path(args.cache))
    if "64x64x1" not in cache.buckets:
        sys.exit(f"{args.cache} has no 64x64x1 bucket: use the cache of configs/toy/dit.yaml")
    vae = load_vae(args.vae)
    title, variants = VARIANT_SETS[args.set]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_toy_dit-") as tmp:
        for i, (name, cfg) in enumerate(variants().items()):
            r = train_and_judge(name, cfg, args, cache, vae, Path(tmp) / str(i))
            rows.append(f"| {name} | {r['params'] / 1e6:.1f}M | {r['tokens']} | {r['sec']:.2f} | {r['loss']:.3f} | "
                        f"{100 * r['color']:.0f}% | {100 * r['shape']:.0f}% |")
            print(rows[-1], flush=True)
    table = [
        f"{args.steps} steps of 64×64 images (batch 64) per variant; loss: mean of the last fifth of the steps; "
        f"adherence of one image per prompt on {args.num} training-split prompts.\n",
        "| DiT | parameters | tokens per image | s / step | loss | color | shape |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    command = f"python benchmarks/bench_toy_dit.py --set {args.set} --cache {args.cache} --vae {args.vae} --steps {args.steps} -n {args.num}"
    append_results(title, command, table)


if __name__ == "__main__":
    main()
