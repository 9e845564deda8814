"""Training loops for the VAE and the diffusion transformer."""
