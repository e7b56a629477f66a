"""Cross-scale initialisation: EDSR, RDN and RCAN train x3/x4 from their trained x2 model (EDSR Sec. 4.2; RCAN's
TrainRCAN_scripts.sh `--pre_train ../experiment/model/RCAN_BIX2.pt`; EDSR-PyTorch's demo.sh for the baseline). The
tensors whose name and shape match are loaded (the body), the up-sampler of another shape keeps its fresh init."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from srpipe.config import CrossScaleJob, Params, PipelineParams, from_dict, load_params
from srpipe.models import create_model, get_card
from srpipe.stages.train import initialise
from srpipe.weights import WeightsCard, save_weights

ROOT = Path(__file__).resolve().parents[2]


def _x2_weights(tmp_path: Path, model: str = "edsr_baseline") -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(1)
    net = create_model(model, 2, "tiny")
    path = tmp_path / f"{model}_x2.pt"
    save_weights(path, WeightsCard(model=model, scale=2, config="tiny", color="rgb"), net.state_dict())
    return path, {k: v.clone() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("model", ["edsr_baseline", "rdn", "rcan"])
def test_x3_loads_the_x2_body_and_keeps_a_fresh_upsampler(tmp_path: Path, model: str) -> None:
    path, x2 = _x2_weights(tmp_path, model)
    torch.manual_seed(2)
    net = create_model(model, 3, "tiny")
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    report = initialise(net, path, model, 3)
    now = net.state_dict()
    up = "tail.0.0.weight"  # the x3 sub-pixel conv (F → 9F) cannot take the x2 one (F → 4F)
    assert x2[up].shape != now[up].shape and torch.equal(now[up], fresh[up])
    assert up in report["fresh"] and up in report["unused"]
    body = [k for k in now if not k.startswith("tail.0.")]
    assert body and all(torch.equal(now[k], x2[k]) for k in body), "every tensor outside the up-sampler is the x2 one"
    assert report["loaded"] == len(body) and report["scale"] == 2 and report["model"] == model
    assert set(report["fresh"]) == {k for k in now if k.startswith("tail.0.")}


def test_x4_also_takes_the_first_x2_stage_as_edsr_pytorch_does(tmp_path: Path) -> None:
    """x4's up-sampler is two x2 stages: the first has the x2 stage's name and shape, so it loads (EDSR-PyTorch's
    load_state_dict copies every tensor whose name and shape match); the second stays fresh."""
    path, x2 = _x2_weights(tmp_path)
    torch.manual_seed(3)
    net = create_model("edsr_baseline", 4, "tiny")
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    report = initialise(net, path, "edsr_baseline", 4)
    assert torch.equal(net.state_dict()["tail.0.0.weight"], x2["tail.0.0.weight"])
    assert torch.equal(net.state_dict()["tail.0.2.weight"], fresh["tail.0.2.weight"])
    assert report["fresh"] == ["tail.0.2.weight", "tail.0.2.bias"] and report["unused"] == []


def test_same_scale_is_a_strict_load_and_another_models_weights_are_refused(tmp_path: Path) -> None:
    path, x2 = _x2_weights(tmp_path)
    net = create_model("edsr_baseline", 2, "tiny")
    assert initialise(net, path, "edsr_baseline", 2)["fresh"] == []
    assert all(torch.equal(v, x2[k]) for k, v in net.state_dict().items())
    with pytest.raises(ValueError, match="needs edsr's own weights"):
        initialise(create_model("edsr", 3, "tiny"), path, "edsr", 3)


def test_the_paper_cards_say_x3_x4_start_from_x2() -> None:
    for model in ("edsr", "edsr_baseline", "rdn", "rcan"):
        assert get_card(model).recipe.init_scale == 2, model
    assert get_card("srcnn").recipe.init_scale is None


def test_params_paper_trains_x3_x4_from_x2_after_it() -> None:
    p = load_params(ROOT / "params-paper.yaml").pipeline
    started = {(m, s): i for m, s, i in p.cross_scaled()}
    for model in ("edsr", "edsr_baseline", "rdn", "rcan"):
        assert started[(model, 3)] == started[(model, 4)] == 2
        assert (model, 2) in p.jobs() and (model, 3) not in p.jobs()
    assert {(m, s) for m, s in started} <= set(p.evaluated())


def test_cross_scale_entries_are_checked() -> None:
    grid = {"scales": [2, 3], "models": ["edsr"]}
    with pytest.raises(ValueError, match="already trained from scratch"):
        job = {"model": "edsr", "scale": 3, "init_scale": 2}
        from_dict(Params, {"pipeline": {**grid, "cross_scale": {"edsr_x3": job}}})
    with pytest.raises(ValueError, match="which no pipeline job trains"):
        PipelineParams(scales=(2, 3), cross_scale={"rdn_x3": CrossScaleJob("rdn", 3, 2)})
    with pytest.raises(ValueError, match="must be named rdn_x3"):
        PipelineParams(scales=(2, 3), models=("rdn",), cross_scale={"rdn_3": CrossScaleJob("rdn", 3, 2)})
    ok = {"scales": [2, 3], "extra": {"rdn_x2": {"model": "rdn", "scale": 2}}}
    ok["cross_scale"] = {"rdn_x3": {"model": "rdn", "scale": 3, "init_scale": 2}}
    pipeline = from_dict(Params, {"pipeline": ok}).pipeline
    assert pipeline.cross_scaled() == [("rdn", 3, 2)] and ("rdn", 3) in pipeline.evaluated()
