"""Flow matching: interpolation path, timestep sampling, loss and ODE solver.

    from kinema.flow import interpolate, TimeSampler, flow_matching_loss, sigma_schedule, euler
"""

from kinema.flow.loss import flow_matching_loss, noisy_inputs
from kinema.flow.path import interpolate, time_shift, velocity_target
from kinema.flow.sampling import classifier_free_guidance, euler, sigma_schedule
from kinema.flow.timesteps import TimeSampler

__all__ = [
    "TimeSampler",
    "classifier_free_guidance",
    "euler",
    "flow_matching_loss",
    "interpolate",
    "noisy_inputs",
    "sigma_schedule",
    "time_shift",
    "velocity_target",
]
