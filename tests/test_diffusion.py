"""The differentiable sampler against diffusers' own loop, its gradients, clipping and guidance."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from navintent.config import SchedulerConfig
from navintent.diffusion import DifferentiableSampler, SamplerNoise, build_sampler, policy_eps_fn

T, A, Z = 8, 2, 4


class TinyEps(nn.Module):
    """A stand-in noise predictor: MLP over (x, t, z)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(T * A + 1 + Z, 32), nn.Tanh(), nn.Linear(32, T * A))
        self.scale = scale

    def forward(self, x: torch.Tensor, t: int, z: torch.Tensor) -> torch.Tensor:
        tt = torch.full((x.shape[0], 1), float(t) / 10, dtype=x.dtype)
        return self.scale * self.net(torch.cat([x.flatten(1), tt, z], dim=1)).view_as(x)


def _diffusers_loop(scheduler, eps_fn, x_T, step_noise, *, ddim_eta=None, generator=None):
    x = x_T.clone()
    for k, t in enumerate(scheduler.timesteps):
        eps = eps_fn(x, int(t))
        if ddim_eta is None:
            x = scheduler.step(eps, t, x, generator=generator).prev_sample
        else:
            x = scheduler.step(eps, t, x, eta=ddim_eta, variance_noise=step_noise[k]).prev_sample
    return x


@pytest.mark.parametrize("clip", ["hard", "straight_through"])
@pytest.mark.parametrize(("train_steps", "infer_steps"), [(10, 10), (20, 5)])
def test_ddpm_matches_diffusers_loop(clip, train_steps, infer_steps):
    model = TinyEps(scale=3.0)  # large eps so that clipping is active
    z = torch.randn(6, Z)
    scheduler = DDPMScheduler(
        num_train_timesteps=train_steps, beta_schedule="squaredcos_cap_v2", clip_sample=True
    )
    scheduler.set_timesteps(infer_steps)
    x_T = torch.randn(6, T, A)
    # diffusers draws one noise per step with t > 0 from the generator, in order: replay the same draws.
    g = torch.Generator().manual_seed(123)
    steps = [
        torch.randn(6, T, A, generator=g) if int(t) > 0 else torch.zeros(6, T, A) for t in scheduler.timesteps
    ]
    sampler = DifferentiableSampler(scheduler, clip=clip)
    with torch.no_grad():
        ours = sampler.sample(lambda x, t: model(x, t, z), SamplerNoise(x_T, torch.stack(steps)))
        ref = _diffusers_loop(
            scheduler, lambda x, t: model(x, t, z), x_T, None, generator=torch.Generator().manual_seed(123)
        )
    assert (ref.abs() == 1).any(), "test should exercise the clamp"
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_matches_diffusers_loop(eta):
    model = TinyEps()
    z = torch.randn(5, Z)
    scheduler = DDIMScheduler(num_train_timesteps=10, beta_schedule="squaredcos_cap_v2", clip_sample=True)
    sampler = DifferentiableSampler(scheduler, num_inference_steps=5, clip="hard", eta=eta)
    noise = sampler.draw_noise((5, T, A), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = sampler.sample(lambda x, t: model(x, t, z), noise)
        ref = _diffusers_loop(scheduler, lambda x, t: model(x, t, z), noise.x_T, noise.steps, ddim_eta=eta)
    assert sampler.timesteps == [int(t) for t in scheduler.timesteps]
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_same_noise_same_sample_and_noise_changes_it():
    model = TinyEps()
    z = torch.randn(3, Z)
    sampler = build_sampler(SchedulerConfig())
    noise = sampler.draw_noise((3, T, A), generator=torch.Generator().manual_seed(0))
    a = sampler.sample(lambda x, t: model(x, t, z), noise)
    b = sampler.sample(lambda x, t: model(x, t, z), noise)
    assert torch.equal(a, b)
    other = sampler.draw_noise((3, T, A), generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(a, sampler.sample(lambda x, t: model(x, t, z), other))


def test_gradient_wrt_latent_matches_finite_differences_float64():
    model = TinyEps().double()
    sampler = build_sampler(SchedulerConfig(), clip="none")
    noise = sampler.draw_noise((2, T, A), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    weights = torch.randn(2, T, A, dtype=torch.float64)

    def loss(z: torch.Tensor) -> torch.Tensor:
        return (sampler.sample(lambda x, t: model(x, t, z), noise) * weights).sum()

    z = torch.randn(2, Z, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(z), z)
    assert grad.abs().min() > 0
    fd = torch.zeros_like(z)
    h = 1e-6
    with torch.no_grad():
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                zp, zm = z.detach().clone(), z.detach().clone()
                zp[i, j] += h
                zm[i, j] -= h
                fd[i, j] = (loss(zp) - loss(zm)) / (2 * h)
    torch.testing.assert_close(grad, fd, atol=1e-7, rtol=1e-6)


def test_gradient_wrt_initial_noise_flows():
    model = TinyEps()
    z = torch.randn(2, Z)
    sampler = build_sampler(SchedulerConfig(), kind="ddim", num_inference_steps=4)
    noise = sampler.draw_noise((2, T, A))
    noise.x_T.requires_grad_(True)
    sampler.sample(lambda x, t: model(x, t, z), noise).sum().backward()
    assert noise.x_T.grad is not None and noise.x_T.grad.abs().sum() > 0


def test_noise_vector_holds_exactly_the_noise_a_sample_depends_on():
    ddpm = build_sampler(SchedulerConfig())  # NoMaD: 10 DDPM steps, no noise after the last
    assert ddpm.noisy_steps == list(range(9))
    noise = ddpm.draw_noise((3, T, A), generator=torch.Generator().manual_seed(0))
    vec = ddpm.noise_vector(noise)
    assert vec.shape == (3, T * A * 10)
    assert torch.equal(vec[:, : T * A], noise.x_T.flatten(1))
    assert torch.equal(vec[:, T * A :].view(3, 9, T * A), noise.steps[:9].transpose(0, 1).flatten(2))
    assert torch.equal(ddpm.noise_vector(noise, "x_T"), noise.x_T.flatten(1))
    # the left-out step noise really is unused: changing it leaves the sample unchanged
    model = TinyEps()
    z = torch.randn(3, Z)

    def eps_fn(x, t):
        return model(x, t, z)

    with torch.no_grad():
        base = ddpm.sample(eps_fn, noise)
        changed = SamplerNoise(noise.x_T, noise.steps.clone())
        changed.steps[9] += 5.0
        torch.testing.assert_close(ddpm.sample(eps_fn, changed), base, rtol=0, atol=0)
        changed.steps[8] += 1.0
        assert (ddpm.sample(eps_fn, changed) - base).abs().max() > 1e-3
    ddim = build_sampler(SchedulerConfig(), kind="ddim", num_inference_steps=4)  # eta 0: x_T is everything
    assert ddim.noisy_steps == [] and ddim.noise_vector(ddim.draw_noise((2, T, A))).shape == (2, T * A)
    with pytest.raises(ValueError, match="noise space must be one of"):
        ddpm.noise_vector(noise, "steps")


def test_straight_through_clip_forward_clamps_backward_identity():
    sampler = build_sampler(SchedulerConfig(), clip="straight_through")
    hard = build_sampler(SchedulerConfig(), clip="hard")
    x = torch.tensor([-3.0, -0.5, 0.2, 2.0], requires_grad=True)
    y = sampler.clip_x0(x)
    assert torch.equal(y.detach(), torch.tensor([-1.0, -0.5, 0.2, 1.0]))
    (g,) = torch.autograd.grad((y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum(), x)
    assert torch.equal(g, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    (gh,) = torch.autograd.grad((hard.clip_x0(x) * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum(), x)
    assert torch.equal(gh, torch.tensor([0.0, 2.0, 3.0, 0.0]))
    # NoMaD's last DDPM step returns the clipped x0: with a saturating model the hard clamp kills the
    # gradient to the latent where the straight-through one keeps it.
    model = TinyEps(scale=30.0)
    noise = sampler.draw_noise((4, T, A), generator=torch.Generator().manual_seed(0))
    z = torch.randn(4, Z, requires_grad=True)
    out_st = sampler.sample(lambda x, t: model(x, t, z), noise)
    out_hard = hard.sample(lambda x, t: model(x, t, z), noise)
    torch.testing.assert_close(out_st, out_hard, atol=1e-6, rtol=0)
    saturated = out_hard.detach().abs() == 1
    assert saturated.any()
    (g_st,) = torch.autograd.grad((out_st * saturated).sum(), z)
    (g_hard,) = torch.autograd.grad((out_hard * saturated).sum(), z, allow_unused=True)
    assert g_st.abs().sum() > 0
    assert g_hard is None or g_hard.abs().sum() < g_st.abs().sum()


def test_noise_repeat_interleave_repeats_each_row_consecutively():
    noise = SamplerNoise.draw((2, T, A), 3, generator=torch.Generator().manual_seed(0))
    rep = noise.repeat_interleave(3)
    assert rep.x_T.shape == (6, T, A) and rep.steps.shape == (3, 6, T, A)
    assert torch.equal(rep.x_T[[0, 1, 2, 3, 4, 5]], noise.x_T[[0, 0, 0, 1, 1, 1]])
    assert torch.equal(rep.steps, noise.steps[:, [0, 0, 0, 1, 1, 1]])
    one = SamplerNoise.draw((1, T, A), 3, generator=torch.Generator().manual_seed(1))
    shared = one.repeat_interleave(4)  # one draw shared by 4 samples, as evaluate.run_diversity uses it
    assert torch.equal(shared.x_T, one.x_T.repeat(4, 1, 1))
    assert torch.equal(shared.steps, one.steps.repeat(1, 4, 1, 1))


def test_noise_shape_validation_names_the_field():
    with pytest.raises(ValueError, match="SamplerNoise.steps"):
        SamplerNoise(torch.zeros(2, T, A), torch.zeros(3, 1, T, A))
    sampler = build_sampler(SchedulerConfig())
    with pytest.raises(ValueError, match="step noises"):
        sampler.sample(lambda x, t: x, SamplerNoise.draw((2, T, A), 3))
    with pytest.raises(ValueError, match="clip must be one of"):
        build_sampler(SchedulerConfig(), clip="soft")
    with pytest.raises(ValueError, match="eta applies to DDIM"):
        build_sampler(SchedulerConfig(), eta=0.5)


def test_guided_sample_lowers_the_guided_loss():
    model = TinyEps()
    z = torch.zeros(16, Z)
    sampler = build_sampler(SchedulerConfig(), clip="hard")
    noise = sampler.draw_noise((16, T, A), generator=torch.Generator().manual_seed(0))

    def loss_fn(x0: torch.Tensor) -> torch.Tensor:  # push the first channel down
        return x0[..., 0].mean(-1)

    with torch.no_grad():
        plain = sampler.sample(lambda x, t: model(x, t, z), noise)
    guided = sampler.guided_sample(lambda x, t: model(x, t, z), noise, loss_fn, scale=0.5)
    assert loss_fn(guided).mean() < loss_fn(plain).mean() - 0.1
    zero = sampler.guided_sample(lambda x, t: model(x, t, z), noise, loss_fn, scale=0.0)
    torch.testing.assert_close(zero, plain, atol=1e-6, rtol=0)


class _RecordingPolicy:
    def __init__(self) -> None:
        self.calls = []

    def predict_noise(self, sample, timestep, global_cond, latent_z=None, lambda_cfg=0.0):
        self.calls.append((timestep, global_cond, latent_z, lambda_cfg))
        return torch.zeros_like(sample)


def test_policy_eps_fn_forwards_condition_latent_and_cfg():
    policy = _RecordingPolicy()
    cond, z = torch.randn(3, 5), torch.randn(3, Z)
    sampler = build_sampler(SchedulerConfig(), num_inference_steps=4)
    sampler.sample(policy_eps_fn(policy, cond, z, lambda_cfg=2.0), sampler.draw_noise((3, T, A)))
    assert [c[0] for c in policy.calls] == sampler.timesteps
    assert all(c[1] is cond and c[2] is z and c[3] == 2.0 for c in policy.calls)


@pytest.fixture(scope="module")
def tiny_policy():
    from navintent.config import preset_model_config
    from navintent.models.nomad import NoMaDPolicy

    torch.manual_seed(0)
    policy = NoMaDPolicy(preset_model_config("tiny")).eval()
    torch.nn.init.normal_(policy.z_proj.weight, std=0.5)  # zero-initialised: make the latent matter
    return policy


def test_sampler_with_policy_and_cfg_equals_policy_sample(tiny_policy):
    """The differentiable chain over a real NoMaDPolicy (CFG on) reproduces the policy's own diffusers loop."""
    cfg = tiny_policy.config
    obs = torch.randn(2, 3 * cfg.num_obs_frames, 64, 64)
    goal = torch.randn(2, 3, 64, 64)
    z = torch.randn(2, cfg.z_dim)
    with torch.no_grad():
        ref = tiny_policy.sample(
            obs, goal, num_samples=3, latent_z=z, lambda_cfg=1.5, generator=torch.Generator().manual_seed(7)
        )
        cond = tiny_policy.encode(obs, goal).repeat_interleave(3, 0)
        sampler = build_sampler(tiny_policy.scheduler_config, clip="hard")
        g = torch.Generator().manual_seed(7)  # the policy draws x_T, then one noise per step with t > 0
        x_T = torch.randn(6, cfg.len_traj_pred, cfg.action_dim, generator=g)
        steps = [
            torch.randn(x_T.shape, generator=g) if t > 0 else torch.zeros_like(x_T) for t in sampler.timesteps
        ]
        eps_fn = policy_eps_fn(tiny_policy, cond, z.repeat_interleave(3, 0), lambda_cfg=1.5)
        ours = sampler.sample(eps_fn, SamplerNoise(x_T, torch.stack(steps)))
    torch.testing.assert_close(ours.view_as(ref), ref, atol=1e-5, rtol=1e-5)


def test_cfg_is_cond_plus_weighted_difference_and_gradient_reaches_latent(tiny_policy):
    cfg = tiny_policy.config
    cond = torch.randn(4, cfg.encoding_size)
    z = torch.randn(4, cfg.z_dim, requires_grad=True)
    x = torch.randn(4, cfg.len_traj_pred, cfg.action_dim)
    w = 2.0
    guided = policy_eps_fn(tiny_policy, cond, z, lambda_cfg=w)(x, 3)
    eps_c = policy_eps_fn(tiny_policy, cond, z)(x, 3)
    eps_u = policy_eps_fn(tiny_policy, cond, None)(x, 3)
    torch.testing.assert_close(guided, eps_c + w * (eps_c - eps_u), atol=1e-5, rtol=1e-5)
    sampler = build_sampler(tiny_policy.scheduler_config)
    out = sampler.sample(
        policy_eps_fn(tiny_policy, cond, z, lambda_cfg=w), sampler.draw_noise(tuple(x.shape))
    )
    (grad,) = torch.autograd.grad(out.sum(), z)
    assert grad.abs().sum(1).min() > 0
