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
    card = get_card(name)
    scale = 4 if 4 in card.scales else card.scales[0]
    # The Caffe-era rates are set for a halved per-image pixel SUM over the paper's own Y patches: on 3× larger RGB
    # patches they would be 10× too large, so those recipes train on their paper's patch and colour here.
    paper_patch = card.recipe.loss_options.get("reduction") == "euclidean"
    data = {"color": "y"} if paper_patch else {"recipe": {"patch_size": 16 * scale}}
    recipe = {"batch_size": 4, **data.pop("recipe", {}), **overrides.pop("recipe", {})}  # type: ignore[dict-item]
    spec = resolve(name, scale, OPTS, recipe=recipe, **data, **overrides)
    channels = 1 if spec.color == "y" else 3
    torch.manual_seed(0)
    net = create_model(name, scale, "tiny", channels=channels)
    crit = Criterion(spec.recipe, channels, None)
    st = build_state(spec, net, crit, torch.device("cpu"), fp16=False)
    store = Store(store_dir / "train")
    ds = PatchDataset(store, scale, spec.hr_patch, spec.color, card.input_space == "bicubic", seed=7)
    fixed = next(iter(DataLoader(ds, batch_size=8, sampler=StepSampler(10_000, 10_001, 8))))
    return spec, st, store, Store(store_dir / "valid"), fixed


def _loss(st, batch, spec) -> float:
    inp, hr = batch
    with torch.no_grad():
        out = st.model.forward_train(inp)
        if spec.recipe.loss == "srgan":  # the generator's content term (the adversarial one chases a moving D)
            return torch.nn.functional.mse_loss(out["sr"], hr).item()
        return st.criterion(out, hr, inp, 0.0)[0].item()


# DRCN's recipe (SGD lr 0.01, no clipping, Eq. 7-8's halved per-image sum) diverges within two steps, and the paper
# config does too with a per-pixel mean (measured on Set5 Y 40-px patches): a known open defect of the recipe.
_DIVERGES = pytest.mark.xfail(strict=True, reason="DRCN's paper recipe diverges (open: lr 0.01 without clipping)")


@pytest.mark.parametrize("name", [pytest.param(m, marks=_DIVERGES) if m == "drcn" else m for m in TRAINABLE])
def test_each_model_learns_with_its_paper_recipe(name: str, store_dir: Path) -> None:
    spec, st, store, valid, fixed = _setup(name, store_dir)
    assert spec.recipe.loss == get_card(name).recipe.loss and spec.recipe.optimizer == get_card(name).recipe.optimizer
    before = _loss(st, fixed, spec)
    result = fit(spec, st, store, valid, OPTS, torch.device("cpu"), None, Tracker(), progress=False)
    after = _loss(st, fixed, spec)
    assert result["steps"] == 16 and result["best"]["psnr"] > 0
    assert after < before, f"{name}: loss {before:.5f} → {after:.5f} with its paper recipe"


def test_non_finite_losses_stop_the_run_with_a_clear_error(store_dir: Path, tmp_path: Path) -> None:
    spec, st, store, valid, _ = _setup("edsr_baseline", store_dir, recipe={"lr": 1e12})
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


# The layer each paper trains at 0.1× the rate; SRCNN's and FSRCNN's prototxts also slow every bias (test_recipes.py).
@pytest.mark.parametrize(
    ("name", "layer", "slow_biases"),
    [("srcnn", "reconstruct", True), ("fsrcnn", "deconv", True), ("espcn", "upsample", False)],
)
def test_per_layer_learning_rates_follow_the_paper(name: str, layer: str, slow_biases: bool) -> None:
    spec = resolve(name, 2, TrainParams(iterations=100))
    net = create_model(name, 2, "paper")
    st = build_state(spec, net, Criterion(spec.recipe, 1, None), torch.device("cpu"), fp16=False)
    base, slow = st.optimizer.param_groups
    assert (base["lr"], slow["lr"]) == pytest.approx((spec.recipe.lr, spec.recipe.lr / 10))
    biases = {id(p) for n, p in net.named_parameters() if slow_biases and n.endswith(".bias")}
    assert {id(p) for p in slow["params"]} == {id(p) for p in getattr(net, layer).parameters()} | biases
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

    train = TrainParams(recipe={"lr": 1e-3, "gamma": 0.1}, models={"vdsr": ModelParams(recipe={"batch_size": 8})})
    spec = resolve("vdsr", 2, train, iterations=7, recipe={"gamma": 0.5})
    card = get_card("vdsr").recipe
    assert (spec.recipe.lr, spec.recipe.batch_size, spec.recipe.gamma) == (1e-3, 8, 0.5)
    assert spec.recipe.optimizer == card.optimizer and spec.recipe.grad_clip == card.grad_clip
    assert spec.iterations == 7
    with pytest.raises(ValueError, match=r"train\.models\.vdsr\.recipe: unknown recipe key"):
        resolve("vdsr", 2, TrainParams(recipe={"learning_rate": 1}))
    assert resolve("vdsr", 2, TrainParams(color="paper")).color == "y"


@pytest.mark.parametrize(
    ("where", "recipe", "message"),
    [
        ("params", {"lr": 0.0}, r"train\.models\.vdsr\.recipe: lr must be > 0, got 0\.0"),
        ("cli", {"batch_size": 0}, r"train\.models\.vdsr\.recipe: batch_size must be ≥ 1, got 0"),
        ("params", {"iterations": 5}, r"`iterations` is the paper's total .* train\.models\.<model>\.iterations"),
    ],
)
def test_one_spelling_per_override_and_every_front_door_checks_it(where: str, recipe: dict, message: str) -> None:
    """A recipe field is set in `recipe` only (params' train.recipe, a model's recipe, or the CLI's --lr etc.), and a
    bad value fails the same way from each; the budget is `iterations`, never the card's `recipe.iterations`."""
    from srpipe.config import ModelParams, from_dict

    if where == "params":
        train, cli = TrainParams(models={"vdsr": ModelParams(recipe=recipe)}), {}
    else:
        train, cli = TrainParams(), {"recipe": recipe}
    with pytest.raises(ValueError, match=message):
        resolve("vdsr", 2, train, **cli)
    with pytest.raises(ValueError, match=r"models\.vdsr\.batch_size: write it as .*models\.vdsr\.recipe\.batch_size"):
        from_dict(TrainParams, {"models": {"vdsr": {"batch_size": 8}}}, "train")


def test_a_checkpoint_is_plain_data_and_restores_every_generator(
    store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random as stdlib_random

    import numpy as np

    from srpipe.train import loop
    from srpipe.train.loop import load_checkpoint, save_checkpoint

    # Python's global generator is shared with every thread of the process (Prefect's services draw jitter from it
    # in the background, which made this test fail once in CI); the loop saves and restores whatever `random` it
    # sees, so a private generator tests the same code without the race.
    random = stdlib_random.Random(0)
    monkeypatch.setattr(loop, "random", random)
    spec, st, store, valid, _ = _setup("edsr_baseline", store_dir)
    opts = dataclasses.replace(OPTS, iterations=2, ckpt_every=1)
    fit(
        dataclasses.replace(spec, iterations=2),
        st,
        store,
        valid,
        opts,
        torch.device("cpu"),
        None,
        Tracker(),
        progress=False,
    )
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, st, spec)
    blob = torch.load(path, map_location="cpu", weights_only=True)  # before: numpy's RNG state needed full pickle
    assert blob["format"] == "srpipe-checkpoint/1" and blob["step"] == 2
    expected = (torch.rand(3), np.random.random_sample(3), [random.random() for _ in range(3)], np.random.normal())
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    _, st2, *_ = _setup("edsr_baseline", store_dir)
    assert load_checkpoint(path, st2, spec) and st2.step == 2
    again = (torch.rand(3), np.random.random_sample(3), [random.random() for _ in range(3)], np.random.normal())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2] and expected[3] == again[3]
    assert all(torch.equal(a, b) for a, b in zip(st.model.state_dict().values(), st2.model.state_dict().values()))


class _Payload:
    """Unpickling this runs code: it writes the marker file (what a crafted checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


@pytest.mark.parametrize("reader", ["checkpoint", "weights"])
def test_a_crafted_file_never_runs_its_payload(tmp_path: Path, reader: str) -> None:
    from srpipe.train.loop import CheckpointError, read_checkpoint
    from srpipe.weights import read_card

    marker, path = tmp_path / "PWNED", tmp_path / "evil.pt"
    torch.save({"format": "srpipe-checkpoint/1", "fingerprint": "x", "payload": _Payload(marker)}, path)
    with pytest.raises(ValueError, match=r"evil\.pt: not a readable .*objects other than tensors") as err:
        read_checkpoint(path) if reader == "checkpoint" else read_card(path)
    assert not marker.exists(), "the file's payload ran"
    assert "weights_only" not in str(err.value)  # torch's "re-run with weights_only=False" never reaches the user
    assert reader == "weights" or isinstance(err.value, CheckpointError)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "the file is empty"), (b"\x80\x04garbage" * 50, "the file is corrupt"), (None, "the file is truncated")],
)
def test_an_unreadable_checkpoint_is_an_error_naming_the_file(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    from srpipe.train.loop import CheckpointError, read_checkpoint

    path = tmp_path / "bad.ckpt"
    if content is None:  # a checkpoint cut in half (a copy that stopped short)
        torch.save({"a": torch.zeros(10_000)}, path)
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"bad\.ckpt: not a readable checkpoint: {reason}.*left untouched"):
        read_checkpoint(path)
    assert path.read_bytes() == content
