"""Flow matching against closed-form answers and diffusers' scheduler."""

import math

import numpy as np
import pytest
import torch

from kinema.flow import (
    TimeSampler,
    classifier_free_guidance,
    euler,
    flow_matching_loss,
    interpolate,
    sigma_schedule,
    time_shift,
    velocity_target,
)


def test_path_endpoints_and_velocity():
    x0, eps = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.equal(interpolate(x0, eps, torch.zeros(3)), x0)
    assert torch.equal(interpolate(x0, eps, torch.ones(3)), eps)
    t, dt = torch.full((3,), 0.3), 1e-3
    finite_diff = (interpolate(x0, eps, t + dt) - interpolate(x0, eps, t)) / dt
    assert torch.allclose(finite_diff, velocity_target(x0, eps), atol=1e-2)
    assert flow_matching_loss(velocity_target(x0, eps), x0, eps).item() == 0.0


def test_time_shift_closed_form():
    t = torch.linspace(0, 1, 11)
    assert torch.allclose(time_shift(t, 1.0), t)
    s = time_shift(t, 7.0)
    assert s[0] == 0 and s[-1] == 1 and torch.all(s[1:-1] > t[1:-1])  # shift > 1 moves toward noise
    assert math.isclose(time_shift(torch.tensor(0.5), 3.0).item(), 0.75)  # 3·0.5 / (1 + 2·0.5)
    with pytest.raises(ValueError):
        time_shift(t, 0.0)


def test_time_sampler_distributions():
    g = torch.Generator().manual_seed(0)
    u = TimeSampler("uniform").sample(20000, g)
    assert 0 <= u.min() and u.max() <= 1 and abs(u.mean().item() - 0.5) < 0.01
    ln = TimeSampler("logit_normal").sample(20000, g)
    logits = torch.logit(ln.double())
    assert abs(logits.mean().item()) < 0.03 and abs(logits.std().item() - 1) < 0.03
    shifted = TimeSampler("logit_normal", shift=3.0).sample(20000, g)
    assert shifted.median() > 0.7  # median of logit-normal is 0.5; shifted by 3 -> 0.75
    with pytest.raises(ValueError):
        TimeSampler("beta")


def test_euler_is_exact_for_a_point_mass():
    # Data = a single point a: the exact velocity is (x − a)/t and every trajectory is a straight line,
    # so Euler lands on a exactly for any schedule.
    a = torch.tensor([[2.0, -1.0, 0.5]])
    noise = torch.randn(4, 3)
    for steps, shift in [(1, 1.0), (5, 7.0), (17, 3.0)]:
        out = euler(lambda x, t: (x - a) / t[:, None], noise, sigma_schedule(steps, shift))
        assert torch.allclose(out, a.expand(4, 3), atol=1e-5)


def gaussian_velocity(mu: float, s: float):
    """Exact marginal velocity for data N(mu, s²) on the linear path."""

    def v(x, t):
        t = t[:, None].double()
        m, var = (1 - t) * mu, (1 - t) ** 2 * s**2 + t**2
        return (t * (x - m) / var - mu - (1 - t) * s**2 * (x - m) / var).to(x.dtype)

    return v


def test_euler_converges_first_order_to_the_gaussian_transport_map():
    # For Gaussian data the flow maps noise z to mu + s·z; Euler's error halves as steps double.
    mu, s = 1.5, 0.3
    z = torch.randn(256, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    errors = [(euler(gaussian_velocity(mu, s), z, sigma_schedule(n).double()) - (mu + s * z)).abs().max().item()
              for n in (25, 50, 100)]
    assert errors[2] < 0.03
    assert 1.6 < errors[0] / errors[1] < 2.4 and 1.6 < errors[1] / errors[2] < 2.4


def test_cfg_combination():
    c, u = torch.tensor([3.0]), torch.tensor([1.0])
    assert classifier_free_guidance(c, u, 1.0).item() == 3.0
    assert classifier_free_guidance(c, u, 4.0).item() == 9.0


@pytest.mark.parametrize("steps", [4, 8, 20, 50])
def test_schedule_matches_diffusers_flow_match_euler(steps):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=7.0)
    sched.set_timesteps(sigmas=np.linspace(1.0, 0.0, steps + 1)[:-1])
    ours = sigma_schedule(steps, 7.0)
    assert torch.allclose(ours, sched.sigmas.float(), atol=1e-6)
    assert torch.allclose(ours[:-1] * 1000, sched.timesteps.float(), atol=1e-3)
    # And a whole denoising loop with diffusers' step() equals our Euler loop.
    v = gaussian_velocity(0.5, 0.8)
    z = torch.randn(8, 1)
    x = z.clone()
    for ts in sched.timesteps:
        x = sched.step(v(x, (ts / 1000).expand(8)), ts, x).prev_sample
    assert torch.allclose(euler(v, z, ours), x, atol=1e-5)
