"""The training engine on CPU with tiny configs: every model's own recipe, NaN guard, EMA, schedules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from srpipe.config import TrainParams
from srpipe.data.store import PatchDataset, StepSampler, Store
from srpipe.models import create_model, get_card, list_models
from srpipe.tracking import Tracker
from srpipe.train.loop import EMA, NonFiniteLossError, build_state, fit, lr_factor
from srpipe.train.losses import Criterion
from srpipe.train.spec import resolve

# MSRResNet (BasicSR's variant, not one of the survey's 15) scales its init by 0.1: at its 2e-4 the residual stays
# ~1e-5 for hundreds of steps, so a 16-step run cannot show its loss falling; it is covered by the shape tests.
TRAINABLE = [m for m in list_models() if m not in ("bicubic", "msrresnet")]
OPTS = TrainParams(config="tiny", iterations=16, val_every=16, ckpt_every=1000, log_every=8, workers=0)


def _setup(name: str, store_dir: Path, **overrides: object):
    scale = 4 if 4 in get_card(name).scales else get_card(name).scales[0]
    spec = resolve(name, scale, OPTS, batch_size=4, patch_size=16 * scale, **overrides)
    torch.manual_seed(0)
    net = create_model(name, scale, "tiny")
    crit = Criterion(spec.recipe, 3, None)
    st = build_state(spec, net, crit, torch.device("cpu"), fp16=False)
    store = Store(store_dir / "train")
    ds = PatchDataset(store, scale, spec.hr_patch, bicubic_input=get_card(name).input_space == "bicubic", seed=7)
    fixed = next(iter(DataLoader(ds, batch_size=8, sampler=StepSampler(10_000, 10_001, 8))))
    return spec, st, store, Store(store_dir / "valid"), fixed


def _loss(st, batch, spec) -> float:
    inp, hr = batch
    with torch.no_grad():
        out = st.model.forward_train(inp)
        if spec.recipe.loss == "srgan":  # the generator's content term (the adversarial one chases a moving D)
            return torch.nn.functional.mse_loss(out["sr"], hr).item()
        return st.criterion(out, hr, inp, 0.0)[0].item()


@pytest.mark.parametrize("name", TRAINABLE)
def test_each_model_learns_with_its_paper_recipe(name: str, store_dir: Path) -> None:
    spec, st, store, valid, fixed = _setup(name, store_dir)
    assert spec.recipe.loss == get_card(name).recipe.loss and spec.recipe.optimizer == get_card(name).recipe.optimizer
    before = _loss(st, fixed, spec)
    result = fit(spec, st, store, valid, OPTS, torch.device("cpu"), None, Tracker(), progress=False)
    after = _loss(st, fixed, spec)
    assert result["steps"] == 16 and result["best"]["psnr"] > 0
    assert after < before, f"{name}: loss {before:.5f} → {after:.5f} with its paper recipe"


def test_non_finite_losses_stop_the_run_with_a_clear_error(store_dir: Path, tmp_path: Path) -> None:
    spec, st, store, valid, _ = _setup("edsr_baseline", store_dir, lr=1e12)
    ckpt = tmp_path / "run.ckpt"
    ckpt.write_bytes(b"previous checkpoint")
    opts = dataclasses.replace(OPTS, max_bad_steps=3, iterations=50, ckpt_every=1)
    spec = dataclasses.replace(spec, iterations=50)
    with pytest.raises(NonFiniteLossError, match=r"3 non-finite losses in a row up to step \d+"):
        fit(spec, st, store, valid, opts, torch.device("cpu"), None, Tracker(), progress=False)
    assert st.bad_steps == 3
    assert ckpt.read_bytes() == b"previous checkpoint"  # nothing saved was touched


def test_ema_warms_up_then_uses_its_decay() -> None:
    net = torch.nn.Linear(2, 2)
    ema = EMA(net, 0.999)
    w0 = ema.module.weight.detach().clone()
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update(net)  # effective decay (1 + 1) / (10 + 1): the average moves most of the way at once
    assert torch.allclose(ema.module.weight, w0 + (1 - 2 / 11) * (1 - w0))
    ema.updates = 20_000  # long past the warm-up, the configured decay rules
    before = ema.module.weight.detach().clone()
    with torch.no_grad():
        net.weight.fill_(2.0)
    ema.update(net)
    assert torch.allclose(ema.module.weight, before + 0.001 * (2 - before))
    assert not ema.module.weight.requires_grad


def test_schedules_follow_the_budget() -> None:
    base = resolve("edsr", 2, TrainParams(iterations=1000))  # multistep, halved at 2/3 of the budget
    assert lr_factor(0, base) == 1.0 and lr_factor(666, base) == 1.0 and lr_factor(667, base) == 0.5
    cos = resolve("drn_s", 4, TrainParams(iterations=100))
    assert lr_factor(0, cos) == 1.0
    assert lr_factor(100, cos) == pytest.approx(cos.recipe.min_lr / cos.recipe.lr)
    assert lr_factor(50, cos) == pytest.approx(0.5 * (1 + cos.recipe.min_lr / cos.recipe.lr))


@pytest.mark.parametrize(("name", "layer"), [("srcnn", "reconstruct"), ("fsrcnn", "deconv"), ("espcn", "upsample")])
def test_per_layer_learning_rates_follow_the_paper(name: str, layer: str) -> None:
    spec = resolve(name, 2, TrainParams(iterations=100))
    net = create_model(name, 2, "paper")
    st = build_state(spec, net, Criterion(spec.recipe, 1, None), torch.device("cpu"), fp16=False)
    base, slow = st.optimizer.param_groups
    assert (base["lr"], slow["lr"]) == pytest.approx((spec.recipe.lr, spec.recipe.lr / 10))
    assert {id(p) for p in slow["params"]} == {id(p) for p in getattr(net, layer).parameters()}
    assert len(base["params"]) + len(slow["params"]) == len(list(net.parameters()))
    for _ in range(spec.iterations):  # the schedule scales both groups alike
        st.scheduler.step()
    assert slow["lr"] / base["lr"] == pytest.approx(0.1)
    one_rate = resolve(name, 2, TrainParams(recipe={"lr_mult": {}}))  # an override replaces the paper's map
    assert len(build_state(one_rate, net, st.criterion, torch.device("cpu"), False).optimizer.param_groups) == 1
    typo = resolve(name, 2, TrainParams(recipe={"lr_mult": {"tail.*": 0.1}}))
    with pytest.raises(ValueError, match=r"no trainable parameter matches \['tail\.\*'\]"):
        build_state(typo, net, st.criterion, torch.device("cpu"), False)


def test_lapsrn_biases_learn_ten_times_slower() -> None:
    spec = resolve("lapsrn", 4, TrainParams(iterations=10))
    net = create_model("lapsrn", 4, "tiny")
    st = build_state(spec, net, Criterion(spec.recipe, 3, None), torch.device("cpu"), fp16=False)
    weights, biases = st.optimizer.param_groups
    assert biases["lr"] == pytest.approx(weights["lr"] / 10)
    assert {id(p) for p in biases["params"]} == {id(p) for n, p in net.named_parameters() if n.endswith(".bias")}


def test_overrides_stack_paper_then_params_then_cli() -> None:
    from srpipe.config import ModelParams

    train = TrainParams(recipe={"lr": 1e-3}, models={"vdsr": ModelParams(batch_size=8, recipe={"gamma": 0.5})})
    spec = resolve("vdsr", 2, train, iterations=7)
    card = get_card("vdsr").recipe
    assert (spec.recipe.lr, spec.recipe.batch_size, spec.recipe.gamma) == (1e-3, 8, 0.5)
    assert spec.recipe.optimizer == card.optimizer and spec.recipe.grad_clip == card.grad_clip
    assert spec.iterations == 7
    with pytest.raises(ValueError, match="unknown recipe key"):
        resolve("vdsr", 2, TrainParams(recipe={"learning_rate": 1}))
    assert resolve("vdsr", 2, TrainParams(color="paper")).color == "y"
