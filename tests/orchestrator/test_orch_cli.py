"""``python -m workers.orchestrator transcribe`` as a new user meets it: one-line errors.

Every failure is one ``error: ...`` line on stderr, no traceback, and a non-zero exit code
(1 bad input, 3 nothing answered), run as a real subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
JFK = REPO.parent / "shared" / "data" / "jfk" / "jfk.flac"


def _transcribe(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.orchestrator", "transcribe", *args],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    return lines[0]


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    proc = _transcribe(str(tmp_path / "nope.wav"))
    assert proc.returncode == 1
    assert "nope.wav: no such file" in _one_error_line(proc)


def test_a_folder_is_one_line(tmp_path: Path) -> None:
    proc = _transcribe(str(tmp_path))
    assert proc.returncode == 1
    assert f"{tmp_path}: no such file" in _one_error_line(proc)


@pytest.mark.parametrize(
    "content",
    [b"just some text\n", b"RIFF\x10\x00\x00\x00WAVEjunk", b""],
    ids=["text", "bad-wav", "empty"],
)
def test_non_audio_file_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "speech.wav"
    path.write_bytes(content)
    proc = _transcribe(str(path))
    assert proc.returncode == 1
    line = _one_error_line(proc)
    assert f"{path}: not a readable audio file" in line


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    # A folder where a file is expected cannot be read by anyone, root included (a file
    # with mode 0 can: root reads files whatever their mode).
    path = tmp_path / "folder.flac"
    path.mkdir()
    proc = _transcribe(str(path))
    assert proc.returncode == 1
    assert "folder.flac" in _one_error_line(proc)


def test_missing_reference_file_is_one_line(tmp_path: Path) -> None:
    proc = _transcribe(str(JFK), "--reference", str(tmp_path / "ref.txt"))
    assert proc.returncode == 1
    assert "reference file" in _one_error_line(proc)


def test_no_stt_worker_gives_up_after_the_answer_timeout(own_broker: Any) -> None:
    """A broker with nothing serving audio/input: not a silent 600 s wait."""
    started = time.monotonic()
    proc = _transcribe(str(JFK), "--mqtt-url", own_broker.url("client"), "--answer-timeout", "2")
    elapsed = time.monotonic() - started
    assert proc.returncode == 3, proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1, proc.stderr
    assert "no STT worker answered in 2 s" in error[0]
    assert "Traceback" not in proc.stderr
    assert elapsed < 25  # 2 s after sending, not the 600 s transcript timeout


def test_answer_timeout_is_a_setting(own_broker: Any) -> None:
    proc = _transcribe(
        str(JFK), "--mqtt-url", own_broker.url("client"), ORCHESTRATOR_CLIENT_ANSWER_TIMEOUT_S="1.5"
    )
    assert proc.returncode == 3, proc.stderr
    assert "no STT worker answered in 1.5 s" in proc.stderr
