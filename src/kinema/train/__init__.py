"""Training: the causal VAE, the diffusion transformer and its distillation, on one skeleton.

- `loop`: the skeleton every trainer runs on (set-up -> loop -> checkpoint -> export -> clean-up), the
  recipes' shared fields (`RunRecipe`), stage scheduling, logging.
- `checkpoint`, `distributed`: atomic, exactly resumable checkpoints (one process, or sharded under
  torchrun) and data/sequence parallelism for the DiT.
- `vae`, `dit`, `distill`: the three trainers, each a set-up, one step and an export;
  `dit_recipe` and `latent_cache` are the DiT's recipe and its latent + prompt cache.
- `data`: clips, captions and windows from a data set's manifest.

Inference (kinema.pipeline) never imports this package: what a trained model is saved as is
kinema.pipeline_folder's.
"""
