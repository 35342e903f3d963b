"""Compatibility proof: weights in the reference NoMaD's layout load STRICTLY and reproduce its outputs to 1e-5.

``tests/fixtures/nomad_reference.json`` holds, for the reference NoMaD built as visualnav-transformer's
train/train.py builds it from train/config/nomad.yaml (NoMaD_ViNT + replace_bn_with_gn, diffusion_policy's
ConditionalUnet1D, DenseNetwork): its state-dict key -> shape manifest (645 tensors, 19,050,955 values), a
per-key checksum of the deterministic weights (``fill_tensor`` below, identical to the generator's), and its
eval-mode outputs for seeded inputs (condition with goal mask 0 and 1, noise at t = 0, 4, 9, distance).

Regenerate (reference code outside the repo, in a throwaway environment; needs einops; torchvision is only
imported, never used, by nomad_vint.py, so an empty stand-in package replaces it)::

    mkdir -p /tmp/nomadref/vnt /tmp/nomadref/dp /tmp/nomadref/stubs/torchvision
    git -C <visualnav-transformer clone> archive HEAD train | tar -x -C /tmp/nomadref/vnt
    git -C <diffusion_policy clone> archive HEAD diffusion_policy/model | tar -x -C /tmp/nomadref/dp
    touch /tmp/nomadref/stubs/torchvision/__init__.py
    python -m venv /tmp/nomadref/venv
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/nomadref/venv/lib/python3.11/site-packages/navintent_venv.pth
    /tmp/nomadref/venv/bin/pip install einops
    PYTHONPATH=/tmp/nomadref/vnt/train:/tmp/nomadref/dp:/tmp/nomadref/stubs /tmp/nomadref/venv/bin/python \
        scripts/make_nomad_reference.py --nomad-yaml /tmp/nomadref/vnt/train/config/nomad.yaml \
        --out tests/fixtures/nomad_reference.json
"""

import json
import math
from pathlib import Path

import pytest
import torch

from navintent import load_policy
from navintent.config import ModelConfig
from navintent.models.nomad import NoMaDPolicy

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "nomad_reference.json"


def fill_tensor(key: str, shape: tuple[int, ...], index: int, seed: int) -> torch.Tensor:
    """Same rule as scripts/make_nomad_reference.py (checked against the fixture's per-key checksums)."""
    g = torch.Generator().manual_seed(seed + index)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    if len(shape) >= 2:
        return (x / math.sqrt(math.prod(shape[1:]))).float()
    if key.endswith("weight"):
        return (1.0 + 0.1 * x).float()
    return (0.05 * x).float()


@pytest.fixture(scope="module")
def reference():
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def reference_state(reference):
    names = sorted(reference["manifest"])
    state = {
        k: fill_tensor(k, tuple(reference["manifest"][k]), i, reference["fill_seed"])
        for i, k in enumerate(names)
    }
    for k in names:
        assert float(state[k].double().abs().sum()) == pytest.approx(reference["abs_sums"][k], rel=1e-9), k
    return state


@pytest.fixture(scope="module")
def loaded(reference, reference_state, tmp_path_factory):
    """The reference weights saved as a bare nomad.pth (DataParallel prefix), loaded through load_policy."""
    path = tmp_path_factory.mktemp("nomad") / "nomad.pth"
    torch.save({"module." + k: v for k, v in reference_state.items()}, path)
    return load_policy(path, config=reference["nomad_yaml"])


def test_manifest_equals_ours_and_counts_match_nomad(reference):
    torch.manual_seed(0)
    ours = NoMaDPolicy(ModelConfig.from_nomad_yaml(reference["nomad_yaml"]))
    own = {
        k: list(v.shape) for k, v in ours.state_dict().items() if not k.startswith(ours.NEW_MODULE_PREFIXES)
    }
    assert own == reference["manifest"]
    counts = reference["parameter_counts"]
    assert counts["tensors"] == 645
    assert counts["total"] == 19_050_955  # 19.05 M (nomad-facts.md)
    assert counts["vision_encoder"] == 15_183_912 and counts["noise_pred_net"] == 3_849_538
    assert counts["dist_pred_net"] == 17_505


def test_outputs_match_reference(reference, loaded):

    cfg = ModelConfig.from_nomad_yaml(reference["nomad_yaml"])
    assert loaded.config == cfg and not loaded.training
    assert loaded.scheduler_config.num_train_timesteps == reference["nomad_yaml"]["num_diffusion_iters"]
    g = torch.Generator().manual_seed(reference["input_seed"])
    b, (w, h) = reference["batch"], cfg.image_size
    obs = torch.randn(b, 3 * (cfg.context_size + 1), h, w, generator=g)
    goal = torch.randn(b, 3, h, w, generator=g)
    sample = torch.randn(b, cfg.len_traj_pred, 2, generator=g)
    out = reference["outputs"]

    def close(actual, key):
        torch.testing.assert_close(actual, torch.tensor(out[key]), rtol=0, atol=1e-5, msg=key)

    with torch.no_grad():
        for m in (0, 1):
            close(loaded.encode(obs, goal, torch.full((b,), m)), f"cond_goal_mask_{m}")
        cond = torch.tensor(out["cond_goal_mask_0"])
        for t in reference["timesteps"]:
            close(loaded.predict_noise(sample, t, cond), f"eps_t{t}")
            # A latent through the zero-initialised z_proj changes nothing.
            z = torch.randn(b, loaded.z_dim, generator=g)
            close(loaded.predict_noise(sample, t, cond, latent_z=z), f"eps_t{t}")
        close(loaded.predict_distance(cond), "distance")
    # Also under autograd (no fused fast path in the transformer).
    close(loaded.encode(obs, goal, torch.tensor([1, 1])).detach(), "cond_goal_mask_1")


def test_unprefixed_state_dict_loads_identically(reference, reference_state, loaded, tmp_path):
    path = tmp_path / "nomad_plain.pth"
    torch.save(reference_state, path)
    plain = load_policy(path, config=reference["nomad_yaml"])
    for k, v in plain.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
