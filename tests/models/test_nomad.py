"""NoMaDPolicy: shapes, goal masking, latent projection, classifier-free guidance and the seed's dispatch."""

import pytest
import torch

from navintent.config import ModelConfig, SchedulerConfig, preset_model_config
from navintent.models import build_model, build_noise_scheduler
from navintent.models.nomad import NoMaDPolicy

B = 3


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    model = NoMaDPolicy(preset_model_config("tiny")).eval()
    # Random (non-zero) weights everywhere except z_proj, so conditions matter in every test.
    return model


def _inputs(config: ModelConfig, batch: int = B, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    w, h = config.image_size
    obs = torch.randn(batch, 3 * (config.context_size + 1), h, w, generator=g)
    goal = torch.randn(batch, 3, h, w, generator=g)
    return obs, goal


def test_encode_shapes_and_tokens_of_same_pass(policy):
    cfg = policy.config
    obs, goal = _inputs(cfg)
    mask = torch.tensor([0, 1, 0])
    cond, tokens = policy.encode(obs, goal, mask, return_tokens=True)
    assert cond.shape == (B, cfg.encoding_size)
    assert tokens.shape == (B, cfg.context_size + 2, cfg.encoding_size)
    assert torch.equal(policy.encode(obs, goal, mask), cond)
    # Pooling: visible goal -> mean over all tokens; masked goal -> mean over the observation tokens.
    torch.testing.assert_close(cond[0], tokens[0].mean(0), rtol=0, atol=1e-6)
    torch.testing.assert_close(cond[1], tokens[1, :-1].mean(0), rtol=0, atol=1e-6)


def test_goal_mask_changes_condition_and_none_means_visible(policy):
    obs, goal = _inputs(policy.config)
    visible = policy.encode(obs, goal, torch.zeros(B, dtype=torch.long))
    hidden = policy.encode(obs, goal, torch.ones(B, dtype=torch.long))
    assert (visible - hidden).abs().max() > 1e-4
    torch.testing.assert_close(policy.encode(obs, goal), visible, rtol=0, atol=1e-6)
    # A hidden goal must not influence the condition.
    other_goal = torch.randn_like(goal)
    mask = torch.ones(B, dtype=torch.bool)
    torch.testing.assert_close(policy.encode(obs, other_goal, mask), hidden, rtol=0, atol=1e-6)


def test_bad_input_shapes_raise(policy):
    obs, goal = _inputs(policy.config)
    with pytest.raises(ValueError, match="channels"):
        policy.encode(obs[:, :3], goal)
    with pytest.raises(ValueError, match="goal_mask"):
        policy.encode(obs, goal, torch.zeros(B + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="goal_mask values"):
        policy.encode(obs, goal, torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError, match="latent_z"):
        policy.predict_noise(torch.zeros(B, 8, 2), 0, torch.zeros(B, 32), latent_z=torch.zeros(B, 3))
    with pytest.raises(ValueError, match="lambda_cfg"):
        policy.predict_noise(torch.zeros(B, 8, 2), 0, torch.zeros(B, 32), lambda_cfg=-1.0)


def test_zero_z_proj_gives_identical_outputs(policy):
    cfg = policy.config
    assert torch.count_nonzero(policy.z_proj.weight) == 0 and torch.count_nonzero(policy.z_proj.bias) == 0
    cond = torch.randn(B, cfg.encoding_size)
    x = torch.randn(B, cfg.len_traj_pred, 2)
    z = torch.randn(B, cfg.z_dim)
    plain = policy.predict_noise(x, 5, cond)
    assert torch.equal(policy.predict_noise(x, 5, cond, latent_z=z), plain)
    # With guidance the batch doubles, which may change float summation order: equal to rounding only.
    guided = policy.predict_noise(x, 5, cond, latent_z=z, lambda_cfg=3.0)
    torch.testing.assert_close(guided, plain, rtol=0, atol=1e-5)


def _trained_z_proj_policy(policy):
    model = NoMaDPolicy(policy.config).eval()
    model.load_state_dict(policy.state_dict())
    torch.nn.init.normal_(model.z_proj.weight, std=0.5)
    return model


def test_cfg_matches_formula_with_one_unet_call(policy):
    model = _trained_z_proj_policy(policy)
    cfg = model.config
    cond = torch.randn(B, cfg.encoding_size)
    x = torch.randn(B, cfg.len_traj_pred, 2)
    z = torch.randn(B, cfg.z_dim)
    t = torch.tensor([0, 4, 9])
    w = 1.7
    with torch.no_grad():
        eps_c = model.noise_pred_net(x, t, cond + z @ model.z_proj.weight.T + model.z_proj.bias)
        eps_u = model.noise_pred_net(x, t, cond)
    expected = eps_c + w * (eps_c - eps_u)
    calls = []
    hook = model.noise_pred_net.register_forward_hook(lambda mod, args, out: calls.append(out.shape[0]))
    try:
        with torch.no_grad():
            guided = model.predict_noise(x, t, cond, latent_z=z, lambda_cfg=w)
            assert calls == [2 * B]
            plain = model.predict_noise(x, t, cond, latent_z=z, lambda_cfg=0.0)
            assert calls == [2 * B, B]
    finally:
        hook.remove()
    torch.testing.assert_close(guided, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(plain, eps_c, rtol=0, atol=1e-6)
    assert (guided - plain).abs().max() > 1e-3


@pytest.mark.parametrize("form", ["int", "0-dim", "batch"])
def test_timestep_forms_agree(policy, form):
    cfg = policy.config
    cond = torch.randn(B, cfg.encoding_size)
    x = torch.randn(B, cfg.len_traj_pred, 2)
    ref = policy.predict_noise(x, torch.full((B,), 7), cond)
    t = {"int": 7, "0-dim": torch.tensor(7), "batch": torch.full((B,), 7)}[form]
    torch.testing.assert_close(policy.predict_noise(x, t, cond), ref, rtol=0, atol=0)
    assert ref.shape == (B, cfg.len_traj_pred, 2)


def test_seed_dispatch_equals_explicit_methods(policy):
    model = _trained_z_proj_policy(policy)
    cfg = model.config
    obs, goal = _inputs(cfg)
    mask = torch.tensor([1, 0, 1])
    cond = model("vision_encoder", obs_img=obs, goal_img=goal, input_goal_mask=mask)
    assert torch.equal(cond, model.encode(obs, goal, mask))
    x = torch.randn(B, cfg.len_traj_pred, 2)
    z = torch.randn(B, cfg.z_dim)
    eps = model(
        "noise_pred_net", sample=x, timestep=torch.tensor(3), global_cond=cond, latent_z=z, lambda_cfg=0.5
    )
    assert torch.equal(eps, model.predict_noise(x, torch.tensor(3), cond, latent_z=z, lambda_cfg=0.5))
    dist = model("dist_pred_net", obsgoal_cond=cond)
    assert dist.shape == (B, 1) and torch.equal(dist, model.predict_distance(cond))
    with pytest.raises(ValueError, match="unknown function"):
        model("nope")


def test_sample_shapes_range_and_seeding(policy):
    cfg = policy.config
    obs, goal = _inputs(cfg, batch=2)
    a = policy.sample(obs, goal, num_samples=4, generator=torch.Generator().manual_seed(3))
    b = policy.sample(obs, goal, num_samples=4, generator=torch.Generator().manual_seed(3))
    assert a.shape == (2, 4, cfg.len_traj_pred, 2)
    assert torch.equal(a, b)
    assert a.abs().max() <= 1.0  # clip_sample=True keeps normalised deltas in [-1, 1]


def test_build_model_and_scheduler_defaults():
    model = build_model(
        {"model": preset_model_config("tiny").to_dict(), "scheduler": {"num_train_timesteps": 5}}
    )
    assert isinstance(model, NoMaDPolicy) and model.scheduler_config.num_train_timesteps == 5
    with pytest.raises(ValueError, match="'model'"):
        build_model({"scheduler": {}})
    sched = build_noise_scheduler(SchedulerConfig())
    assert sched.config.num_train_timesteps == 10
    assert sched.config.beta_schedule == "squaredcos_cap_v2"
    assert sched.config.clip_sample is True and sched.config.prediction_type == "epsilon"


def test_nomad_size_parameter_counts():
    """NoMaD's real size: 645 reference tensors + z_proj, 19.05 M parameters (nomad-facts.md)."""
    torch.manual_seed(0)
    model = NoMaDPolicy(preset_model_config("nomad"))
    sd = model.state_dict()
    reference_keys = [k for k in sd if not k.startswith(NoMaDPolicy.NEW_MODULE_PREFIXES)]
    assert len(reference_keys) == 645

    def count(prefix):
        return sum(sd[k].numel() for k in reference_keys if k.startswith(prefix))

    assert count("vision_encoder.") == 15_183_912
    assert count("noise_pred_net.") == 3_849_538
    assert count("dist_pred_net.") == 17_505
    assert count("") == 19_050_955
    assert sd["vision_encoder.positional_encoding.pos_enc"].shape == (1, 5, 256)
    assert "vision_encoder.sa_layer.self_attn.in_proj_weight" in sd
    assert "vision_encoder.goal_encoder._fc.weight" in sd
    assert sd["vision_encoder.goal_encoder._conv_stem.weight"].shape == (32, 6, 3, 3)


@pytest.mark.parametrize("size", [(32, 32), (96, 64)])
def test_convnet_trunk_encodes_with_the_goal_mask_semantics(size):
    """obs_encoder 'convnet': [N, C, H, W] -> [N, 2048] per trunk, then NoMaD's tokens and goal masking unchanged."""
    from navintent.models.vision import ConvNetTrunk

    config = preset_model_config("tiny").replace(obs_encoder="convnet", image_size=size)
    torch.manual_seed(0)
    model = NoMaDPolicy(config).eval()
    assert isinstance(model.vision_encoder.goal_encoder, ConvNetTrunk)
    assert model.vision_encoder.goal_encoder.layers[0].in_channels == 6
    w, h = size
    assert model.vision_encoder.obs_encoder(torch.zeros(2, 3, h, w)).shape == (2, 2048)
    obs, goal = _inputs(config)
    with torch.no_grad():
        visible = model.encode(obs, goal, torch.zeros(B, dtype=torch.long))
        hidden = model.encode(obs, goal, torch.ones(B, dtype=torch.long))
        other = model.encode(obs, torch.randn_like(goal), torch.ones(B, dtype=torch.long))
    assert visible.shape == (B, config.encoding_size)
    assert (visible - hidden).abs().max() > 1e-4
    torch.testing.assert_close(other, hidden, rtol=0, atol=1e-6)
    trunk_params = sum(p.numel() for p in model.vision_encoder.obs_encoder.parameters())
    assert trunk_params < 300_000  # vs about 4 M for EfficientNet-B0


def test_obs_encoder_rejects_unknown_names():
    with pytest.raises(
        ValueError, match="obs_encoder must be 'efficientnet-b0' .* or 'convnet'.*got 'resnet'"
    ):
        ModelConfig(obs_encoder="resnet")
