"""srpipe.plan: the jobs params ask for, their order, and the layout every front door shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from srpipe.config import load_params
from srpipe.plan import EvalJob, Layout, TrainJob, checkpoint_for, plan, run_key

ROOT = Path(__file__).resolve().parents[1]


def test_the_paper_profile_plans_every_training_after_the_weights_it_starts_from():
    jobs = plan(load_params(ROOT / "params-paper.yaml").pipeline)
    first, second = jobs.waves()
    assert TrainJob("srgan", 4, ("srresnet", 4)) in second  # SRGAN starts from SRResNet (Ledig et al. Sec. 3)
    assert TrainJob("edsr", 4, ("edsr", 2)) in second  # EDSR x3/x4 from x2 (Lim et al. Sec. 4.2)
    done = {(j.model, j.scale) for j in first}
    assert all(j.init in done for j in second)
    assert {j.init for j in first} == {None}
    assert EvalJob("bicubic", 4, learned=False) in jobs.evaluations
    assert all(j.learned for j in jobs.evaluations if j.model != "bicubic")


def test_an_unknown_model_fails_before_any_work():
    p = load_params(ROOT / "params.yaml")
    bad = type(p.pipeline)(scales=(4,), models=("srcnnn",))
    with pytest.raises(KeyError, match="srcnnn"):
        plan(bad)


def test_layout_and_checkpoint_paths():
    at = Layout(Path("/p"))
    assert at.weights("edsr", 4) == Path("/p/data/models/edsr_x4.pt")
    assert checkpoint_for(at.weights("edsr", 4)) == Path("/p/data/checkpoints/edsr_x4.ckpt")
    assert at.eval_json("bicubic", 2) == Path("/p/data/eval/bicubic_x2.json")
    assert at.released_json("vdsr_x4") == Path("/p/data/eval/released_vdsr_x4.json")


def test_the_run_key_follows_params_and_code():
    p = load_params(ROOT / "params.yaml")
    q = load_params(ROOT / "params-repro.yaml")
    assert run_key(p, ROOT) == run_key(p, ROOT) != run_key(q, ROOT)
