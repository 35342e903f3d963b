"""Write tests/fixtures/nomad_reference.json: outputs of the REFERENCE NoMaD for deterministic weights and inputs.

The reference (visualnav-transformer's NoMaD_ViNT + replace_bn_with_gn, diffusion_policy's ConditionalUnet1D,
NoMaD's DenseNetwork) is built exactly as visualnav-transformer's train/train.py builds it from
train/config/nomad.yaml. Every state-dict tensor is then overwritten by ``fill_tensor`` (seeded per key, in
sorted key order), and the model's outputs for seeded inputs are recorded in eval mode together with the
key -> shape manifest, per-key checksums and parameter counts. tests/models/test_nomad_compat.py rebuilds the
same weights from the manifest, loads them strictly through navintent.load_policy and compares.

The reference code is NOT part of this repository: put it on PYTHONPATH (see that test's docstring).
Nothing here imports navintent, so the recorded numbers come from the reference alone.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
import yaml

FILL_SEED = 20261127
INPUT_SEED = 7
TIMESTEPS = (0, 4, 9)
BATCH = 2


def fill_tensor(key: str, shape: tuple[int, ...], index: int) -> torch.Tensor:
    """Deterministic value for the ``index``-th key (sorted order): weights ~ N(0, 1/fan_in), 1-D weights
    (norm scales) ~ 1 + N(0, 0.1^2), everything else 1-D (biases) ~ N(0, 0.05^2). float32."""
    g = torch.Generator().manual_seed(FILL_SEED + index)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    if len(shape) >= 2:
        return (x / math.sqrt(math.prod(shape[1:]))).float()
    if key.endswith("weight"):
        return (1.0 + 0.1 * x).float()
    return (0.05 * x).float()


def make_inputs(encoding_size: int, context_size: int, len_traj_pred: int, image_hw: tuple[int, int]):
    g = torch.Generator().manual_seed(INPUT_SEED)
    h, w = image_hw
    obs = torch.randn(BATCH, 3 * (context_size + 1), h, w, generator=g)
    goal = torch.randn(BATCH, 3, h, w, generator=g)
    sample = torch.randn(BATCH, len_traj_pred, 2, generator=g)
    return obs, goal, sample


def build_reference(cfg: dict) -> torch.nn.Module:
    from diffusion_policy.model.diffusion.conditional_unet1d import ConditionalUnet1D
    from vint_train.models.nomad.nomad import DenseNetwork, NoMaD
    from vint_train.models.nomad.nomad_vint import NoMaD_ViNT, replace_bn_with_gn

    vision_encoder = NoMaD_ViNT(
        obs_encoding_size=cfg["encoding_size"],
        context_size=cfg["context_size"],
        mha_num_attention_heads=cfg["mha_num_attention_heads"],
        mha_num_attention_layers=cfg["mha_num_attention_layers"],
        mha_ff_dim_factor=cfg["mha_ff_dim_factor"],
    )
    vision_encoder = replace_bn_with_gn(vision_encoder)
    noise_pred_net = ConditionalUnet1D(
        input_dim=2,
        global_cond_dim=cfg["encoding_size"],
        down_dims=cfg["down_dims"],
        cond_predict_scale=cfg["cond_predict_scale"],
    )
    dist_pred_network = DenseNetwork(embedding_dim=cfg["encoding_size"])
    return NoMaD(
        vision_encoder=vision_encoder, noise_pred_net=noise_pred_net, dist_pred_net=dist_pred_network
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nomad-yaml", required=True, type=Path, help="visualnav-transformer train/config/nomad.yaml"
    )
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()

    full = yaml.safe_load(args.nomad_yaml.read_text())
    keys = (
        "encoding_size", "context_size", "obs_encoder", "mha_num_attention_heads", "mha_num_attention_layers",
        "mha_ff_dim_factor", "down_dims", "cond_predict_scale", "len_traj_pred", "learn_angle", "image_size",
        "num_diffusion_iters",
    )  # fmt: skip
    cfg = {k: full[k] for k in keys}
    torch.manual_seed(0)
    model = build_reference(cfg)
    state = model.state_dict()
    names = sorted(state)
    filled = {k: fill_tensor(k, tuple(state[k].shape), i) for i, k in enumerate(names)}
    model.load_state_dict(filled, strict=True)
    model.eval()

    width, height = cfg["image_size"]
    obs, goal, sample = make_inputs(
        cfg["encoding_size"], cfg["context_size"], cfg["len_traj_pred"], (height, width)
    )
    outputs: dict[str, list] = {}
    with torch.no_grad():
        for mask_value in (0, 1):
            mask = torch.full((BATCH,), mask_value, dtype=torch.long)
            cond = model("vision_encoder", obs_img=obs, goal_img=goal, input_goal_mask=mask)
            outputs[f"cond_goal_mask_{mask_value}"] = cond.tolist()
        cond = torch.tensor(outputs["cond_goal_mask_0"])
        for t in TIMESTEPS:
            eps = model("noise_pred_net", sample=sample, timestep=t, global_cond=cond)
            outputs[f"eps_t{t}"] = eps.tolist()
        outputs["distance"] = model("dist_pred_net", obsgoal_cond=cond).tolist()

    def count(prefix: str) -> int:
        return sum(state[k].numel() for k in names if k.startswith(prefix))

    fixture = {
        "about": "Reference NoMaD outputs; written by scripts/make_nomad_reference.py (see its docstring).",
        "torch_version": torch.__version__,
        "fill_seed": FILL_SEED,
        "input_seed": INPUT_SEED,
        "batch": BATCH,
        "timesteps": list(TIMESTEPS),
        "nomad_yaml": cfg,
        "manifest": {k: list(state[k].shape) for k in names},
        "abs_sums": {k: float(filled[k].double().abs().sum()) for k in names},
        "parameter_counts": {
            "tensors": len(names),
            "total": count(""),
            "vision_encoder": count("vision_encoder."),
            "noise_pred_net": count("noise_pred_net."),
            "dist_pred_net": count("dist_pred_net."),
            "trainable_parameters": sum(p.numel() for p in model.parameters()),
        },
        "outputs": outputs,
    }
    args.out.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {args.out}: {len(names)} tensors, {count(''):,} values")


if __name__ == "__main__":
    main()
