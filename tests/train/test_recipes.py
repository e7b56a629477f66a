"""The papers' recipe facts, each pinned against the paper or the authors' training file it comes from: the loss
reduction (the scale lr, weight decay and θ were set for), MemNet's and DRCN's loss weights, the gradient-clipping
mode, and the per-parameter learning rates."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from srpipe.config import ModelParams, TrainParams
from srpipe.models import create_model, get_card
from srpipe.models.registry import Recipe
from srpipe.train.loop import build_state, clip_gradients
from srpipe.train.losses import Criterion
from srpipe.train.spec import resolve

# The reduction each recipe states, and its source.
REDUCTIONS = {
    "srcnn": "euclidean",  # SRCNN_net.prototxt (authors' Caffe files, mirrored in WangDequan/SRCNN): EuclideanLoss
    "fsrcnn": "euclidean",  # the authors' FSRCNN Caffe train prototxt: EuclideanLoss
    "vdsr": "euclidean",  # VDSR Sec. 3.1-3.2: ½‖y − f(x)‖² averaged over the samples (caffe-vdsr: EuclideanLoss)
    "drcn": "euclidean",  # DRCN Eq. 7-8: Σ 1/(2DN)‖y − ŷ_d‖² and Σ 1/(2N)‖y − ŷ‖²
    "drrn": "euclidean",  # tyshiwo/DRRN_CVPR17 DRRN_B1U9_20C128_train.prototxt: EuclideanLoss
    "memnet": "euclidean",  # tyshiwo/MemNet MemNet_M6R6_80C64_train.prototxt: 7 EuclideanLoss layers
    "lapsrn": "sum",  # LapSRN's MatConvNet code: Charbonnier summed over pixels, gradients divided by the batch
    "edsr": "mean",  # no statement: srpipe's default (L1 per pixel, as EDSR-PyTorch's nn.L1Loss)
}


@pytest.mark.parametrize(("name", "reduction"), REDUCTIONS.items())
def test_each_recipe_states_its_loss_reduction(name: str, reduction: str) -> None:
    assert get_card(name).recipe.loss_options.get("reduction", "mean") == reduction
    spec = resolve(name, 2 if 2 in get_card(name).scales else 4, TrainParams())
    assert Criterion(spec.recipe, 1, None).reduction == reduction


def test_reductions_scale_the_loss_as_caffe_and_lapsrn_do() -> None:
    torch.manual_seed(0)
    sr, hr = torch.rand(4, 1, 5, 6), torch.rand(4, 1, 5, 6)
    sq = (sr - hr) ** 2
    expected = {"mean": sq.mean(), "sum": sq.sum() / 4, "euclidean": sq.sum() / (2 * 4)}  # Caffe: 1/(2N)·Σ
    for reduction, value in expected.items():
        crit = Criterion(Recipe(loss="mse", loss_options={"reduction": reduction}))
        assert crit({"sr": sr}, hr, sr, 0.0)[0].item() == pytest.approx(value.item(), rel=1e-6)
    # The per-pixel mean makes the gradient 41²/2 ≈ 840× smaller than VDSR's Euclidean loss on a 41×41 patch.
    grads = {}
    for reduction in ("mean", "euclidean"):
        x = torch.zeros(64, 1, 41, 41, requires_grad=True)
        crit = Criterion(Recipe(loss="mse", loss_options={"reduction": reduction}))
        crit({"sr": x}, torch.ones_like(x), x, 0.0)[0].backward()
        grads[reduction] = x.grad.abs().mean().item()
    assert grads["euclidean"] / grads["mean"] == pytest.approx(41 * 41 / 2)
    with pytest.raises(ValueError, match="reduction"):
        Criterion(Recipe(loss="mse", loss_options={"reduction": "batchsum"}))


def test_a_global_override_restores_the_mean_and_keeps_other_options() -> None:
    """A CPU profile's `train.recipe.loss_options: {reduction: mean}`: merged paper ← global ← model entry."""
    cpu = TrainParams(
        recipe={"optimizer": "adam", "loss_options": {"reduction": "mean"}},
        models={"memnet": ModelParams(recipe={"loss_options": {"block_weight": 0.5}})},
    )
    drcn = resolve("drcn", 2, cpu).recipe.loss_options
    assert drcn["reduction"] == "mean" and drcn["alpha_decay_until"] == 0.25  # DRCN keeps its α schedule
    memnet = resolve("memnet", 2, cpu).recipe.loss_options
    assert memnet == {"reduction": "mean", "block_weight": 0.5, "final_weight": 1.0}  # the model's entry adds to it
    assert resolve("vdsr", 2, TrainParams()).recipe.loss_options["reduction"] == "euclidean"


def _half_sse(pred: torch.Tensor, hr: torch.Tensor) -> float:
    return ((pred - hr) ** 2).sum().item() / (2 * pred.shape[0])


def test_memnet_weighs_all_seven_terms_equally_as_its_prototxt() -> None:
    """MemNet_M6R6_80C64_train.prototxt: loss_01 … loss_06 on the block predictions and loss_7 on their weighted
    average, each a EuclideanLoss with loss_weight 1: the total is their plain sum."""
    crit = Criterion(get_card("memnet").recipe, 1, None)
    hr = torch.zeros(2, 1, 4, 4)
    blocks = [torch.full_like(hr, 0.1 * (m + 1)) for m in range(6)]  # known, different errors per block
    sr = torch.full_like(hr, 0.05)
    loss, parts = crit({"sr": sr, "blocks": blocks}, hr, hr, 0.3)
    expected = sum(_half_sse(b, hr) for b in blocks) + _half_sse(sr, hr)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # Equal weights: d loss / d prediction is the same function of the error for every one of the 7 terms.
    preds = [b.clone().requires_grad_() for b in blocks] + [sr.clone().requires_grad_()]
    crit({"sr": preds[-1], "blocks": preds[:-1]}, hr, hr, 0.0)[0].backward()
    for p in preds:  # ∂/∂ŷ of 1/(2N)·Σ(ŷ - y)² = (ŷ - y)/N, with weight 1
        assert torch.allclose(p.grad, (p.detach() - hr) / hr.shape[0])
    assert parts["final"].item() == pytest.approx(_half_sse(sr, hr), rel=1e-6)


def test_drcn_keeps_its_own_equation() -> None:
    """DRCN Eq. 9: L = α·(mean over the D recursions) + (1 - α)·(final), α decaying from 1 to 0 over 25% of training
    (recipe loss_options); the weight decay β is the optimiser's."""
    crit = Criterion(get_card("drcn").recipe, 1, None)
    hr = torch.zeros(2, 1, 4, 4)
    recursions = [torch.full_like(hr, 0.1 * (d + 1)) for d in range(3)]
    sr = torch.full_like(hr, 0.2)
    inter = sum(_half_sse(r, hr) for r in recursions) / 3
    final = _half_sse(sr, hr)
    for progress, alpha in ((0.0, 1.0), (0.125, 0.5), (0.5, 0.0)):
        loss, _ = crit({"sr": sr, "recursions": recursions}, hr, hr, progress)
        assert loss.item() == pytest.approx(alpha * inter + (1 - alpha) * final, rel=1e-6)


# ---- gradient clipping --------------------------------------------------------------------------------------------

CLIPPING = {
    "vdsr": ("value_by_lr", 0.01),  # VDSR Sec. 3.3: each gradient within [-θ/γ, θ/γ] (θ not published; 0.01 assumed)
    "drrn": ("norm_by_lr", 0.01),  # DRRN_B1U9_20C128_solver.prototxt clip_gradients 0.01 + the README's /rate patch
    "memnet": ("norm_by_lr", 0.01),  # MemNet_M6R6_80C64_solver.prototxt clip_gradients 0.01 + the same patch
}


@pytest.mark.parametrize(("name", "mode"), CLIPPING.items())
def test_clipping_mode_and_theta_follow_the_solvers(name: str, mode: tuple[str, float]) -> None:
    recipe = get_card(name).recipe
    assert (recipe.clip, recipe.grad_clip) == mode


def _grads(values: list[list[float]]) -> list[nn.Parameter]:
    params = [nn.Parameter(torch.zeros(len(v))) for v in values]
    for p, v in zip(params, values):
        p.grad = torch.tensor(v)
    return params


def test_norm_by_lr_scales_the_global_norm_as_caffe() -> None:
    """Caffe's ClipGradients: if the L2 norm of ALL gradients exceeds clip_gradients / rate, every gradient is
    multiplied by the same factor threshold / norm (directions and ratios kept)."""
    params = _grads([[3.0, 0.0], [0.0, 4.0, 0.05]])  # global norm ≈ 5.00025
    before = torch.cat([p.grad for p in params])
    clip_gradients(params, Recipe(grad_clip=0.01, clip="norm_by_lr"), lr=0.1)  # threshold 0.01 / 0.1 = 0.1
    after = torch.cat([p.grad for p in params])
    assert after.norm().item() == pytest.approx(0.1, rel=1e-4)
    assert torch.allclose(after, before * (0.1 / before.norm()), rtol=1e-4)  # one factor: the small entry shrinks too
    clip_gradients(params, Recipe(grad_clip=0.01, clip="norm_by_lr"), lr=0.001)  # threshold 10 ≥ norm: untouched
    assert torch.equal(torch.cat([p.grad for p in params]), after)


def test_value_by_lr_clips_each_element_as_vdsr() -> None:
    params = _grads([[3.0, -0.05], [-4.0, 0.02]])
    clip_gradients(params, Recipe(grad_clip=0.01, clip="value_by_lr"), lr=0.1)  # each within ±0.1
    assert torch.cat([p.grad for p in params]).tolist() == pytest.approx([0.1, -0.05, -0.1, 0.02])


def test_norm_is_a_fixed_global_bound() -> None:
    params = _grads([[3.0, 4.0]])
    clip_gradients(params, Recipe(grad_clip=1.0, clip="norm"), lr=1e-9)  # the rate plays no part
    assert params[0].grad.tolist() == pytest.approx([0.6, 0.8])


# ---- per-parameter learning rates -----------------------------------------------------------------------------------


def _groups(name: str, scale: int, **arch: object) -> tuple[nn.Module, dict[float, set[str]]]:
    spec = resolve(name, scale, TrainParams(iterations=10))
    net = create_model(name, scale, "tiny", **arch)
    st = build_state(spec, net, Criterion(spec.recipe, 3, None), torch.device("cpu"), fp16=False)
    names = {id(p): n for n, p in net.named_parameters()}
    rates = {g["lr"] / spec.recipe.lr: {names[id(p)] for p in g["params"]} for g in st.optimizer.param_groups}
    return net, rates


def _slow(rates: dict[float, set[str]]) -> set[str]:
    """The names in the 0.1× group, after checking there are exactly two groups: 1× and 0.1×."""
    assert len(rates) == 2 and 1.0 in rates
    slow_rate = next(r for r in rates if r != 1.0)
    assert slow_rate == pytest.approx(0.1)
    return rates[slow_rate]


def _conv_biases(net: nn.Module) -> set[str]:
    return {f"{m}.bias" for m, mod in net.named_modules() if isinstance(mod, nn.Conv2d) and mod.bias is not None}


@pytest.mark.parametrize("name", ["drrn", "memnet"])
@pytest.mark.parametrize("bn", [False, True], ids=["paper", "authors_bn"])
def test_drrn_and_memnet_conv_biases_learn_at_a_tenth(name: str, bn: bool) -> None:
    """Their train prototxts give every convolution `param { lr_mult: 1 } param { lr_mult: 0.1 }`; the BatchNorm
    Scale layers and MemNet's averaging weights (Scale layers) keep Caffe's default rate 1."""
    net, rates = _groups(name, 2, bn=bn)
    slow = _slow(rates)
    assert slow == _conv_biases(net)
    assert all(n.endswith(".weight") or "norm" in n or n == "weights" or n.endswith(".0.bias") for n in rates[1.0])
    if bn:
        assert any("norm" in n and n.endswith(".bias") for n in rates[1.0])  # BN shifts stay at the base rate


def test_srcnn_biases_and_last_layer_follow_its_prototxt() -> None:
    """SRCNN_net.prototxt: conv1, conv2 lr_mult (1, 0.1); conv3 (0.1, 0.1) — plus Sec. 3.3's 1e-5 last layer."""
    net, rates = _groups("srcnn", 3)
    slow = _slow(rates)
    assert slow == _conv_biases(net) | {"reconstruct.weight"}
    assert rates[1.0] == {n for n, _ in net.named_parameters()} - slow


def test_fsrcnn_biases_and_deconvolution_follow_its_prototxt() -> None:
    """FSRCNN train prototxt: convolutions (1, 0.1), the deconvolution 0.1 (Sec. 4.1: 1e-4 beside 1e-3); PReLU 1."""
    net, rates = _groups("fsrcnn", 3)
    slow = _slow(rates)
    assert slow == _conv_biases(net) | {"deconv.weight", "deconv.bias"}
    assert all(isinstance(dict(net.named_modules())[n.rsplit(".", 1)[0]], (nn.Conv2d, nn.PReLU)) for n in rates[1.0])


def test_only_fsrcnn_learns_from_downscaled_copies() -> None:
    """FSRCNN Sec. 4.1, "Data augmentation": each image downscaled by 0.9, 0.8, 0.7 and 0.6 (with rotations by 90,
    180 and 270°: 19× the data). SRCNN (TPAMI Sec. 4.1: 24,800 sub-images of the 91 images) and ESPCN (Sec. 3.2:
    17r-px sub-images of the 91 images) state no such augmentation, nor does any other card."""
    from srpipe.models import get_card, list_models

    assert get_card("fsrcnn").recipe.rescale == (0.9, 0.8, 0.7, 0.6)
    assert [m for m in list_models() if get_card(m).recipe.rescale] == ["fsrcnn"]


def test_srgan_starts_from_srresnet_and_the_profiles_say_so() -> None:
    """SRGAN Sec. 3.2: "we employed the trained MSE-based SRResNet network as initialization". The fact lives on the
    card; every committed profile's finetune job names the same network, and a profile naming another is warned."""
    from pathlib import Path

    from srpipe.config import load_params
    from srpipe.models import get_card, list_models

    assert get_card("srgan").init_from == "srresnet"
    assert [m for m in list_models() if get_card(m).init_from] == ["srgan"]
    root = Path(__file__).resolve().parents[2]
    for profile in ("params.yaml", "params-paper.yaml", "params-repro.yaml"):
        for job in load_params(root / profile).pipeline.finetune:
            assert job.init == get_card(job.model).init_from, profile


def test_a_finetune_from_another_network_than_the_papers_is_warned_about(caplog) -> None:
    from srpipe.config import FinetuneJob, PipelineParams

    with caplog.at_level("WARNING", logger="srpipe"):
        PipelineParams(models=("edsr_baseline",), finetune=(FinetuneJob("srgan", "edsr_baseline"),)).check_models()
    assert "its paper starts it from srresnet" in caplog.text
