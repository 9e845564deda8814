"""`kinema train-vae`, `kinema train` and `kinema distill`: run a YAML recipe from configs/."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-vae", help="train the causal 3D VAE from a recipe",
                       description="Train the causal VAE from a YAML recipe (see configs/toy/vae.yaml).")
    p.add_argument("config", help="recipe YAML")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.set_defaults(run=run_train_vae)

    p = sub.add_parser("train", help="train the diffusion transformer from a recipe",
                       description="Train the DiT with flow matching from a YAML recipe (see configs/toy/dit.yaml). "
                       "Under torchrun, every process trains its share of each batch.")
    p.add_argument("config", help="recipe YAML")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop (after a checkpoint) at this global step, e.g. to split a run over sessions")
    p.add_argument("--nproc", type=int, default=None,
                   help="run as this many processes on this machine through torchrun; the recipe's parallel: "
                   "section says how they share the work (same as torchrun --nproc_per_node=N -m kinema train)")
    p.set_defaults(run=run_train)

    p = sub.add_parser("distill", help="distill a trained pipeline: one forward per step, or fewer steps",
                       description="Guidance or step distillation of a pipeline folder from a YAML recipe "
                       "(see configs/toy/distill-guidance.yaml, configs/toy/distill-steps.yaml).")
    p.add_argument("config", help="recipe YAML")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.set_defaults(run=run_distill)


def run_train_vae(args: argparse.Namespace) -> int:
    from kinema.train.vae import main_train_vae

    return main_train_vae(args.config, args.resume)


def run_train(args: argparse.Namespace) -> int:
    if args.nproc is not None:
        from kinema.distributed import launch_torchrun

        argv = ["train", args.config, *(["--resume"] if args.resume else []),
                *([f"--max-steps={args.max_steps}"] if args.max_steps is not None else [])]
        return launch_torchrun(args.nproc, argv)
    from kinema.train.dit import main_train_dit

    return main_train_dit(args.config, args.resume, args.max_steps)


def run_distill(args: argparse.Namespace) -> int:
    from kinema.train.distill import main_distill

    return main_distill(args.config, args.resume)
