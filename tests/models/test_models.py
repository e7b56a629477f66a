"""Every registered model × supported scale: shape, a training step, determinism; paper parameter counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from srpipe.models import count_params, create_model, get_card, get_config, list_models, register_model
from srpipe.models.registry import ArchConfig

CASES = [(name, scale) for name in list_models() for scale in get_card(name).scales]

# (model, scale) -> published or layer-spec parameter count of the paper config, in the paper's colour mode.
PAPER_PARAMS = {
    ("srcnn", 2): 57_281,  # 9-5-5, 64/32 filters, 1 channel (SRCNN TPAMI Sec. 4.3: "57K")
    ("fsrcnn", 2): 12_809,  # 12,464 weights (paper's count) + biases + PReLU slopes
    ("espcn", 2): 21_284,  # layer spec, 1 channel: 1,664 + 18,464 + 289·r² (espcn.py docstring; none published)
    ("espcn", 3): 22_729,  # the paper's main scale
    ("vdsr", 2): 665_000,
    ("drcn", 2): 1_770_000,
    ("red30", 2): 4_134_785,  # layer spec, 128 maps (authors' Caffe model); 4,131,072 weights ("4.1M"), red.py
    ("drrn", 2): 297_000,
    ("memnet", 2): 677_000,
    ("lapsrn", 2): 407_441,  # layer spec: d=10, 3×3 feature upsampler as in the authors' code (lapsrn.py)
    ("lapsrn", 4): 812_000,  # ≈812K cited = weights only; 814,242 with biases (lapsrn.py docstring)
    ("srdensenet", 4): 2_659_585,  # layer spec, yjn870 layout; the ~2.0M cited is not rebuildable (srdensenet.py)
    ("srresnet", 4): 1_550_000,
    ("srgan", 4): 1_550_000,  # the SRResNet generator
    ("msrresnet", 4): 1_517_571,  # BasicSR MSRResNet layer spec ("1.52M")
    ("edsr", 2): 40_700_000,
    ("edsr", 4): 43_100_000,
    ("edsr_baseline", 2): 1_370_000,
    ("edsr_baseline", 4): 1_520_000,
    ("rdn", 2): 22_100_000,
    ("rcan", 2): 15_400_000,
    ("rcan", 4): 15_600_000,
    ("drn_s", 4): 4_800_000,
    ("drn_l", 4): 9_800_000,
    ("drn_s", 8): 5_400_000,  # DRN README
    ("drn_l", 8): 10_000_000,
}


def _lr_input(name: str, scale: int, size: int = 12, batch: int = 2) -> torch.Tensor:
    """A batch in the model's input space: LR, or LR bicubic-upsampled to HR size."""
    channels = get_config(name, "tiny").channels
    side = size * scale if get_card(name).input_space == "bicubic" else size
    return torch.rand(batch, channels, side, side, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_output_shape(name: str, scale: int) -> None:
    model = create_model(name, scale, "tiny").eval()
    x = _lr_input(name, scale)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, x.shape[1], 12 * scale, 12 * scale)


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_training_step_reduces_loss(name: str, scale: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, scale, "tiny").train()
    if count_params(model) == 0:
        pytest.skip(f"{name} has no parameters")
    x = _lr_input(name, scale, size=8)
    target = torch.rand(2, x.shape[1], 8 * scale, 8 * scale, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def loss() -> torch.Tensor:
        # Auxiliary outputs (pyramid levels, recursions, dual maps) carry parameters that `sr` alone never reaches.
        out = model.forward_train(x)
        aux = [t for v in out.values() if isinstance(v, list) for t in v]
        return F.mse_loss(out["sr"], target) + sum((t.square().mean() for t in aux), torch.zeros(()))

    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad), "a parameter got no gradient"
    assert loss().item() < before.item()


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_eval_is_deterministic_and_matches_forward_train(name: str, scale: int) -> None:
    model = create_model(name, scale, "tiny").eval()
    x = _lr_input(name, scale)
    with torch.no_grad():
        a, b, c = model(x), model(x), model.forward_train(x)["sr"]
    assert torch.equal(a, b)
    assert torch.allclose(a, c)


@pytest.mark.parametrize("name", list_models())
def test_tiny_config_is_tiny(name: str) -> None:
    scale = get_card(name).scales[-1]
    assert count_params(create_model(name, scale, "tiny")) <= 150_000


@pytest.mark.parametrize("name", list_models())
def test_unsupported_scale_is_a_clear_error(name: str) -> None:
    bad = next(s for s in (3, 2, 4, 8, 5) if s not in get_card(name).scales)
    with pytest.raises(ValueError, match=rf"{name} supports .*x{bad}"):
        create_model(name, bad, "tiny")


@pytest.mark.parametrize(("name", "scale"), sorted(PAPER_PARAMS))
def test_paper_parameter_count(name: str, scale: int) -> None:
    channels = 1 if get_card(name).color == "y" else 3
    with torch.device("meta"):  # shapes only: EDSR's 43M parameters allocate nothing
        n = count_params(create_model(name, scale, "paper", channels=channels))
    expected = PAPER_PARAMS[(name, scale)]
    assert abs(n - expected) <= 0.01 * expected, f"{name} x{scale}: {n:,} parameters, paper {expected:,}"


def test_registry_errors() -> None:
    with pytest.raises(KeyError, match=r"known models: .*edsr"):
        create_model("edsr2", 2)
    with pytest.raises(TypeError, match="no option"):
        create_model("edsr", 2, "tiny", featurez=3)
    card = get_card("edsr")
    with pytest.raises(KeyError, match="already registered"):
        register_model(card, ArchConfig(), ArchConfig())(type("Dup", (), {}))


def test_none_overrides_are_dropped() -> None:
    assert get_config("edsr", "tiny", channels=None) == get_config("edsr", "tiny")
