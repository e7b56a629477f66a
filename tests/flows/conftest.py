"""Prefect's test harness (a temporary API + database) once per session, and the flow modules loaded by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

FLOWS = Path(__file__).resolve().parents[2] / "flows"


def load_flow_module(name: str) -> ModuleType:
    """flows/ is a folder of scripts (run as `python flows/nightly.py`), so tests load it the same way."""
    sys.path.insert(0, str(FLOWS))
    try:
        spec = importlib.util.spec_from_file_location(name, FLOWS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(FLOWS))


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory):
    import os

    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
