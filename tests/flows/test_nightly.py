"""The nightly deployment: cron schedule and parameters, built without a server."""

from __future__ import annotations

from pathlib import Path

from tests.flows.conftest import load_flow_module

ROOT = Path(__file__).resolve().parents[2]


def test_nightly_deployment_schedule_and_parameters() -> None:
    nightly = load_flow_module("nightly")
    deployment = nightly.build_deployment("params.yaml", str(ROOT))
    assert deployment.name == "nightly-retrain"
    assert deployment.flow_name == "srpipe"
    crons = [s.schedule.cron for s in deployment.schedules]
    assert crons == ["0 2 * * *"]
    assert deployment.parameters == {"params_path": "params.yaml", "root": str(ROOT)}
