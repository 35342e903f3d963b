"""EMA against NoMaD's rule: diffusers 0.11.1 ``EMAModel`` (decay from the counter BEFORE it increments)."""

import math

import pytest
import torch
from torch import nn

from navintent.ema import EMA


class _Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros((), dtype=torch.float64))


def test_five_updates_match_nomads_diffusers_warmup():
    # A weight 0 when the EMA is made, set to 1..5 before each update, power 0.75. By hand (diffusers 0.11.1):
    # decays 0, 0, 1 - 2**-0.75 = 0.405396, 1 - 3**-0.75 = 0.561309, 1 - 4**-0.75 = 0.646447;
    # EMA 1, 2, 0.405396*2 + 0.594604*3 = 2.594604, 0.561309*2.594604 + 0.438691*4 = 3.211139,
    # 0.646447*3.211139 + 0.353553*5 = 3.843598. (One update ahead, as before, gave 3.4885.)
    model = _Scalar()
    ema = EMA(model, power=0.75)
    decays, values = [], []
    for w in (1.0, 2.0, 3.0, 4.0, 5.0):
        model.w.data.fill_(w)
        decays.append(ema.update(model))
        values.append(ema.state_dict()["w"].item())
    assert decays == pytest.approx([0.0, 0.0, 0.405396, 0.561309, 0.646447], abs=1e-6)
    assert values == pytest.approx([1.0, 2.0, 2.594604, 3.211139, 3.843598], abs=2e-6)
    assert values[-1] == pytest.approx(3.8436, abs=1e-4)
    assert ema.num_updates == 5


def test_decay_is_capped_by_max_decay():
    ema = EMA(_Scalar(), power=0.75, max_decay=0.5)
    assert ema.decay(1) == 0.0 and ema.decay(2) == 0.0
    assert ema.decay(3) == pytest.approx(1 - 2**-0.75, abs=1e-15)  # 0.405 < 0.5
    assert ema.decay(4) == 0.5  # 1 - 3**-0.75 = 0.561 is capped


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2).double()
        self.frozen = nn.Parameter(torch.zeros(2, dtype=torch.float64), requires_grad=False)
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("stat", torch.zeros(2, dtype=torch.float64))


def _diffusers_0_11_1(initial: dict, weights: list[dict], trainable: set, power: float, max_value: float):
    """Written from diffusers 0.11.1's EMAModel: get_decay(optimization_step), then the counter increments."""
    averaged = {k: v.clone() for k, v in initial.items()}
    optimization_step = 0
    for state in weights:
        step = max(0, optimization_step - 0 - 1)  # update_after_step = 0
        value = 1 - (1 + step / 1.0) ** -power  # inv_gamma = 1
        decay = 0.0 if step <= 0 else max(0.0, min(value, max_value))
        for name, param in state.items():
            if name in trainable:
                averaged[name].mul_(decay)
                averaged[name].add_(param, alpha=1 - decay)
            else:
                averaged[name].copy_(param)
        optimization_step += 1
    return averaged


def test_fifty_random_updates_match_an_independent_diffusers_rule():
    gen = torch.Generator().manual_seed(3)
    net = _Net()
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    ema = EMA(net, power=0.75, max_decay=0.9999)
    seen = []
    for _ in range(50):
        with torch.no_grad():
            for tensor in net.state_dict().values():
                if tensor.is_floating_point():
                    tensor.copy_(torch.randn(tensor.shape, generator=gen, dtype=tensor.dtype))
                else:
                    tensor.add_(1)
        seen.append({k: v.clone() for k, v in net.state_dict().items()})
        ema.update(net)
    expected = _diffusers_0_11_1(initial, seen, {"lin.weight", "lin.bias"}, 0.75, 0.9999)
    for name, value in ema.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=1e-12, msg=name)
    # frozen parameters and buffers are copies of the last weights, not averages
    assert torch.equal(ema.state_dict()["frozen"], seen[-1]["frozen"])
    assert ema.state_dict()["count"].item() == 50
    # the last decay: 1 - 49 ** -0.75
    assert ema.decay(50) == pytest.approx(1 - 49**-0.75, abs=1e-15)
    assert not math.isclose(ema.decay(50), 1 - 50**-0.75)


def test_resume_from_saved_state_is_bit_exact():
    gen = torch.Generator().manual_seed(7)
    draws = [torch.randn(2, 3, generator=gen, dtype=torch.float64) for _ in range(7)]
    net = _Net()
    straight = EMA(net)
    saved = None
    for i, w in enumerate(draws):
        net.lin.weight.data.copy_(w)
        straight.update(net)
        if i == 2:
            saved = ({k: v.clone() for k, v in straight.state_dict().items()}, straight.num_updates)
    resumed = EMA(net)
    resumed.load_state_dict(*saved)
    for w in draws[3:]:
        net.lin.weight.data.copy_(w)
        resumed.update(net)
    assert resumed.num_updates == straight.num_updates == 7
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_bad_arguments_and_mismatched_state_raise():
    with pytest.raises(ValueError, match="power must be > 0, got 0"):
        EMA(_Scalar(), power=0)
    with pytest.raises(ValueError, match="max_decay must be in"):
        EMA(_Scalar(), max_decay=1.5)
    ema = EMA(_Scalar())
    with pytest.raises(ValueError, match=r"missing \['w'\], unexpected \['v'\]"):
        ema.load_state_dict({"v": torch.zeros(())}, 3)
    with pytest.raises(ValueError, match=r"EMA tensor 'w' has shape \(2,\)"):
        ema.load_state_dict({"w": torch.zeros(2)}, 3)
