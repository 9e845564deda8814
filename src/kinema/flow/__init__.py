"""Flow matching: interpolation path, timestep sampling, loss and ODE solvers."""
