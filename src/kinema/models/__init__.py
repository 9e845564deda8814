"""Causal 3D VAE, diffusion transformer, text encoders and checkpoint formats."""
