"""The package's public surface, and that the schema imports without heavy deps."""

from __future__ import annotations

import subprocess
import sys

import workers.orchestrator as orch


def test_public_names_are_exactly_all() -> None:
    assert sorted(orch.__all__) == sorted(set(orch.__all__))
    for name in orch.__all__:
        assert getattr(orch, name) is not None


def test_config_imports_without_numpy_or_aiomqtt() -> None:
    code = (
        "import sys; import workers.orchestrator; "
        "from workers.orchestrator.config import OrchestratorConfig; OrchestratorConfig(); "
        "bad = [m for m in ('numpy', 'aiomqtt', 'faster_whisper') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
