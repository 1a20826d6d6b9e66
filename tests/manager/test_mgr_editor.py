"""The web editor is served at / and boots in a real (headless) Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from mgr_harness import RunningManager

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _dump_dom(url: str, profile: Path) -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (make test does it)")
    proc = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",  # let the app's fetches settle before the dump
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_editor_boots_and_asks_for_a_token(manager: RunningManager, tmp_path: Path) -> None:
    dom = _dump_dom(manager.base_url + "/", tmp_path / "chromium")
    # Vue mounted (templates rendered, v-cloak gone) and the API's 401 became the prompt.
    assert "Enter an API token to continue." in dom
    assert "{{" not in dom
    assert "v-cloak" not in dom
