"""Two-stage intent model: encoders, masks, loss terms, seed helpers, factory and checkpoint round trip."""

import pytest
import torch

from navintent.checkpoint import import_nomad_state_dict, load_policy, save_checkpoint
from navintent.config import preset_training_config
from navintent.models import build_model
from navintent.models.intent import (
    Encoder1,
    TwoStageIntentModel,
    draw_training_masks,
    init_z1_from_dataset,
    kl_to_standard_normal,
    pairwise_rank_loss,
)
from navintent.models.nomad import NoMaDPolicy, build_noise_scheduler

# The tiny preset at the smallest image size the model accepts: the two EfficientNets dominate CPU time.
CFG = preset_training_config("tiny")
CFG = CFG.replace(model=CFG.model.replace(image_size=(32, 32)))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TwoStageIntentModel(CFG.model, CFG.intent, CFG.scheduler)


def make_batch(batch_size=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    c, (w, h) = CFG.model.context_size, CFG.model.image_size
    steps = torch.rand(batch_size, CFG.model.len_traj_pred, 2, generator=g) * torch.tensor(
        [1.5, 0.6]
    ) + torch.tensor([0.2, -0.3])
    actions = torch.cumsum(steps, dim=1)
    return {
        "obs_img": torch.randn(batch_size, 3 * (c + 1), h, w, generator=g),
        "goal_img": torch.randn(batch_size, 3, h, w, generator=g),
        "actions": actions,
        "distance": torch.randint(0, 20, (batch_size,), generator=g),
        "action_mask": torch.ones(batch_size),
        "ref_traj": torch.cat([actions, actions + actions[:, -1:]], dim=1),
        "ref_mask": torch.ones(batch_size),
        "metric_scale": torch.full((batch_size,), 0.25),
    }


def randomise(module, seed=3, scale=0.2):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)


def test_one_optimisation_step_on_a_fixed_batch_lowers_the_loss():
    torch.manual_seed(0)
    m = TwoStageIntentModel(CFG.model, CFG.intent, CFG.scheduler).train()
    sched = build_noise_scheduler(CFG.scheduler)
    batch = make_batch()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)

    def loss():
        torch.manual_seed(7)  # same transformer-dropout masks; the loss's own draws come from the generator
        gen = torch.Generator().manual_seed(11)
        return m.compute_loss(batch, sched, kl_weight=0.1, goal_mask_prob=0.5, alpha=1e-4, generator=gen)[
            "loss"
        ]

    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss()
    assert torch.isfinite(before) and after.item() < before.item()


def test_kl_matches_the_closed_form_of_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(5, 4), torch.ones(5, 4))
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(kl_to_standard_normal(mu, logvar), expected, rtol=1e-6, atol=1e-6)
    assert kl_to_standard_normal(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max() == 0


def test_compute_loss_kl_term_equals_the_encoders_posterior(model):
    batch = make_batch()
    sched = build_noise_scheduler(CFG.scheduler)
    model.eval()
    out = model.compute_loss(
        batch, sched, kl_weight=0.5, ref_dropout=0.0, generator=torch.Generator().manual_seed(2)
    )
    goal_mask = out["goal_mask"]
    _, tokens = model.encode(batch["obs_img"], batch["goal_img"], goal_mask.long(), return_tokens=True)
    mu, logvar = model.posterior(tokens, goal_mask, batch["ref_traj"], torch.ones(2, dtype=torch.bool))
    torch.testing.assert_close(out["kl"], kl_to_standard_normal(mu, logvar).mean())
    assert out["kl"] > 0
    expected = 1e-4 * out["distance"] + (1 - 1e-4) * out["diffusion"] + 0.5 * out["kl_penalty"]
    torch.testing.assert_close(out["loss"], expected)


def test_free_bits_clamp_the_batch_mean_kl_per_dim_and_leave_the_reported_kl_alone(model):
    batch = make_batch(batch_size=3)
    sched = build_noise_scheduler(CFG.scheduler)
    model.eval()
    with torch.no_grad():
        _, tokens = model.encode(batch["obs_img"], batch["goal_img"], None, return_tokens=True)
        mu, logvar = model.posterior(tokens, None, batch["ref_traj"], torch.ones(3, dtype=torch.bool))
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    per_dim = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).mean(0)
    threshold = float(per_dim.sort().values[per_dim.numel() // 2])  # some dims above, some below
    clamped = TwoStageIntentModel(CFG.model, CFG.intent.replace(free_bits=threshold), CFG.scheduler).eval()
    clamped.load_state_dict(model.state_dict())
    unclamped = TwoStageIntentModel(CFG.model, CFG.intent.replace(free_bits=0.0), CFG.scheduler).eval()
    unclamped.load_state_dict(model.state_dict())
    kwargs = dict(kl_weight=0.5, goal_mask_prob=0.0, ref_dropout=0.0)
    out = clamped.compute_loss(batch, sched, generator=torch.Generator().manual_seed(2), **kwargs)
    plain = unclamped.compute_loss(batch, sched, generator=torch.Generator().manual_seed(2), **kwargs)
    torch.testing.assert_close(out["kl"], plain["kl"])
    torch.testing.assert_close(plain["kl_penalty"], plain["kl"])
    torch.testing.assert_close(out["kl_penalty"], per_dim.clamp(min=threshold).sum(), rtol=1e-5, atol=1e-6)
    assert out["kl_penalty"] > out["kl"]
    torch.testing.assert_close(out["loss"] - plain["loss"], 0.5 * (out["kl_penalty"] - plain["kl"]))
    # Above every dim's KL, the KL term sends no gradient to Encoder1's logvar head.
    free = TwoStageIntentModel(CFG.model, CFG.intent.replace(free_bits=1e3), CFG.scheduler).eval()
    free.load_state_dict(model.state_dict())
    grads = []
    for weight in (0.0, 0.5):
        free.zero_grad()
        kw = {**kwargs, "kl_weight": weight}
        free.compute_loss(batch, sched, generator=torch.Generator().manual_seed(2), **kw)["loss"].backward()
        grads.append(free.encoder1.head.bias.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


def test_free_bits_must_be_non_negative():
    with pytest.raises(ValueError, match="free_bits"):
        CFG.intent.replace(free_bits=-0.1)


def test_dropout_rates_hold_within_statistical_tolerance():
    n = 40_000
    has_ref = torch.arange(n) % 4 != 0  # 75 % of the samples have a reference
    gen = torch.Generator().manual_seed(0)
    goal_mask, ref_used, latent_used = draw_training_masks(has_ref, 0.5, 0.3, 0.1, generator=gen)
    assert not ref_used[~has_ref].any()

    def within(rate, p, count):
        sigma = (p * (1 - p) / count) ** 0.5
        return abs(rate - p) < 5 * sigma

    k = int(has_ref.sum())
    assert within(1 - ref_used[has_ref].float().mean().item(), 0.3, k)
    assert within(1 - latent_used.float().mean().item(), 0.1, n)
    assert within(goal_mask.float().mean().item(), 0.5, n)


def test_compute_loss_uses_the_drawn_masks(model):
    batch = make_batch()
    batch["ref_mask"] = torch.tensor([1.0, 0.0])
    out = model.compute_loss(
        batch, build_noise_scheduler(CFG.scheduler), kl_weight=0.0, generator=torch.Generator().manual_seed(4)
    )
    expected = draw_training_masks(
        batch["ref_mask"] > 0.5,
        0.5,
        CFG.intent.ref_dropout,
        CFG.intent.latent_dropout,
        torch.Generator().manual_seed(4),
    )
    for got, want in zip((out["goal_mask"], out["ref_used"], out["latent_used"]), expected, strict=True):
        assert torch.equal(got, want)


def test_dropped_latent_is_exactly_the_unconditional_branch(model):
    """With every latent dropped the loss cannot depend on z_proj; with latents kept it must."""
    model.eval()
    batch = make_batch()
    sched = build_noise_scheduler(CFG.scheduler)

    def diffusion(latent_dropout):
        out = model.compute_loss(
            batch,
            sched,
            kl_weight=0.0,
            latent_dropout=latent_dropout,
            generator=torch.Generator().manual_seed(9),
        )
        return out["diffusion"]

    zero_dropped, zero_kept = diffusion(1.0), diffusion(0.0)
    assert torch.equal(zero_dropped, zero_kept)  # z_proj is zero-initialised: both branches coincide
    randomise(model.z_proj, seed=1, scale=0.5)
    try:
        assert torch.equal(diffusion(1.0), zero_dropped)  # bit for bit the latent_z=None condition
        assert not torch.equal(diffusion(0.0), zero_kept)
    finally:
        torch.nn.init.zeros_(model.z_proj.weight)
        torch.nn.init.zeros_(model.z_proj.bias)


def test_latent_free_weight_adds_the_unconditional_branch_loss_of_every_sample(model):
    """latent_free_weight w: diffusion_latent_free is bit for bit the diffusion loss with every latent dropped (same
    draws), and the total loss adds w times it; w = 0 leaves it at 0 and the loss unchanged."""
    model.eval()  # no dropout: the global RNG would differ between the calls
    batch = make_batch(batch_size=3)
    sched = build_noise_scheduler(CFG.scheduler)
    randomise(model.z_proj, seed=1, scale=0.5)

    def run(**kw):
        return model.compute_loss(
            batch, sched, kl_weight=0.0, alpha=0.1, generator=torch.Generator().manual_seed(5), **kw
        )

    original = model.intent_config
    try:
        plain = run()
        all_dropped = run(latent_dropout=1.0)
        model.intent_config = original.replace(latent_free_weight=0.5)
        paired = run()
    finally:
        model.intent_config = original
        torch.nn.init.zeros_(model.z_proj.weight)
        torch.nn.init.zeros_(model.z_proj.bias)
    assert plain["diffusion_latent_free"].item() == 0.0
    assert torch.equal(paired["diffusion"], plain["diffusion"])
    assert torch.equal(paired["diffusion_latent_free"], all_dropped["diffusion"])
    assert not torch.equal(paired["diffusion_latent_free"], plain["diffusion"])  # z_proj is not zero here
    expected = 0.1 * plain["distance"] + 0.9 * (plain["diffusion"] + 0.5 * all_dropped["diffusion"])
    assert torch.allclose(paired["loss"], expected, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="latent_free_weight"):
        original.replace(latent_free_weight=-1.0)


def test_pairwise_rank_loss_hand_values_and_its_weight_in_the_loss(model):
    """RankNet's loss by hand (ordered pairs with different targets, masked samples out), 0 without a pair, and
    ``dist_rank_weight`` adds exactly that weight times ``distance_rank`` to the loss (same draws)."""
    pred = torch.tensor([1.0, 3.0, 2.0, 0.0], dtype=torch.float64)
    target = torch.tensor([1.0, 2.0, 2.0, 5.0], dtype=torch.float64)
    mask = torch.tensor([True, True, True, False])
    softplus = torch.nn.functional.softplus
    # pairs (i nearer than j): (0, 1) margin 3 - 1, (0, 2) margin 2 - 1; (1, 2) tie; sample 3 masked
    expected = softplus(torch.tensor([-2.0, -1.0], dtype=torch.float64)).mean()
    torch.testing.assert_close(pairwise_rank_loss(pred, target, mask), expected, rtol=0, atol=1e-15)
    assert pairwise_rank_loss(pred, torch.full((4,), 3.0), mask).item() == 0.0
    assert pairwise_rank_loss(pred, target, torch.zeros(4, dtype=torch.bool)).item() == 0.0

    model.eval()
    batch = make_batch(batch_size=4)
    batch["distance"] = torch.tensor([1, 4, 9, 16])
    sched = build_noise_scheduler(CFG.scheduler)

    def run(**kw):
        return model.compute_loss(
            batch, sched, kl_weight=0.0, alpha=0.1, goal_mask_prob=0.0,
            generator=torch.Generator().manual_seed(5), **kw,
        )  # fmt: skip

    plain, ranked = run(), run(dist_rank_weight=0.25)
    assert ranked["distance_rank"].item() > 0
    assert torch.equal(plain["distance_rank"], ranked["distance_rank"])
    torch.testing.assert_close(
        ranked["loss"], plain["loss"] + 0.25 * plain["distance_rank"], rtol=1e-6, atol=0
    )
    with pytest.raises(ValueError, match="dist_rank_weight"):
        CFG.train.replace(dist_rank_weight=-1.0)


def test_encoder1_null_reference_ignores_reference_content_and_goal_mask_hides_goal():
    torch.manual_seed(0)
    enc = Encoder1(32, 2, 1, 2, 0.0, z1_dim=4, ref_dim=2).eval()
    randomise(enc, seed=2, scale=0.3)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 5, 32, generator=g)
    ref = torch.randn(3, 16, 2, generator=g)
    absent = torch.zeros(3, dtype=torch.bool)
    mu_none, _ = enc(tokens, None, None, None)
    mu_absent, _ = enc(tokens, None, ref, absent)
    nan_ref = torch.full_like(ref, float("nan"))
    mu_nan, _ = enc(tokens, None, nan_ref, absent)
    torch.testing.assert_close(mu_absent, mu_none, rtol=1e-5, atol=1e-6)
    assert torch.equal(mu_nan, mu_absent)
    mu_ref, _ = enc(tokens, None, ref, ~absent)
    assert (mu_ref - mu_absent).abs().max() > 1e-3
    hidden = torch.ones(3, dtype=torch.long)
    other_goal = tokens.clone()
    other_goal[:, -1] = torch.randn(3, 32, generator=g)
    torch.testing.assert_close(enc(tokens, hidden, ref)[0], enc(other_goal, hidden, ref)[0])
    assert (enc(tokens, hidden * 0, ref)[0] - enc(other_goal, hidden * 0, ref)[0]).abs().max() > 1e-3
    with pytest.raises(ValueError, match=r"ref_traj must have shape \[3, T_ref, 2\], got \(3, 16, 3\)"):
        enc(tokens, None, torch.zeros(3, 16, 3))


def test_seed_helpers_keep_their_meaning(model):
    model.eval()
    batch = make_batch()
    z1, mu, logvar = model.encode_stage1(batch["obs_img"], batch["goal_img"], batch["ref_traj"])
    assert torch.equal(z1, mu) and z1.shape == (2, CFG.intent.z1_dim) and logvar.shape == mu.shape
    torch.testing.assert_close(init_z1_from_dataset(batch, model), z1)
    z2 = model.encode_stage2(z1, batch["obs_img"], batch["goal_img"])
    assert z2.shape == (2, CFG.model.z_dim)
    current = batch["obs_img"][:, -3:]
    still = current.repeat(1, CFG.model.context_size + 1, 1, 1)
    torch.testing.assert_close(model.encode_stage2(z1, current), model.encode_stage2(z1, still))
    with pytest.raises(ValueError, match="cur_obs_img must have shape"):
        model.encode_stage2(z1, batch["obs_img"][:, :6])


def test_sampling_modes_shapes_and_fixed_z1_spread(model):
    model.eval()
    batch = make_batch()
    for mode in ("ref", "prior", "none"):
        x, z2 = model.sample_intent(
            batch["obs_img"],
            batch["goal_img"],
            mode=mode,
            ref_traj=batch["ref_traj"],
            num_samples=3,
            generator=torch.Generator().manual_seed(0),
        )
        assert x.shape == (2, 3, CFG.model.len_traj_pred, 2) and x.abs().max() <= 1.0
        assert (z2 is None) == (mode == "none")
        assert (x[:, 0] - x[:, 1]).abs().max() > 0  # samples differ by the diffusion noise alone
    with pytest.raises(ValueError, match="mode must be one of"):
        model.sample_intent(batch["obs_img"], batch["goal_img"], mode="posterior")


def test_nomad_import_keeps_intent_modules_at_init_and_factory_and_checkpoint_round_trip(model, tmp_path):
    assert {"z_proj.", "encoder1.", "encoder2."} <= set(TwoStageIntentModel.NEW_MODULE_PREFIXES)
    torch.manual_seed(1)
    nomad = NoMaDPolicy(CFG.model, CFG.scheduler)
    nomad_state = {k: v for k, v in nomad.state_dict().items() if not k.startswith("z_proj.")}
    torch.manual_seed(2)
    fresh = TwoStageIntentModel(CFG.model, CFG.intent, CFG.scheduler)
    init = {k: v.clone() for k, v in fresh.state_dict().items()}
    import_nomad_state_dict(fresh, nomad_state)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, nomad_state[k] if k in nomad_state else init[k]), k

    built = build_model(model.config_sections())
    assert type(built) is TwoStageIntentModel and built.intent_config == CFG.intent
    path = save_checkpoint(tmp_path / "m.pt", model, scheduler_config=CFG.scheduler)
    loaded = load_policy(path, weights="model")
    assert type(loaded) is TwoStageIntentModel
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
