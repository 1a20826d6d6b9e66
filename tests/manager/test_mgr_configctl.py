"""``configctl`` as a subprocess against a running manager (real HTTP, real broker)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mgr_harness import RunningManager

from config_lib import SigningKey, TrustStore

CONFIGCTL = [sys.executable, "-m", "config_manager.cli"]


@pytest.fixture
def ctl_env(manager: RunningManager, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFIGCTL_")}
    env.update(
        CONFIGCTL_URL=manager.base_url,
        CONFIGCTL_TOKEN=manager.tokens["admin"],
        CONFIGCTL_TRUST=str(manager.data_dir / "keys" / "trust.pem"),
        CONFIGCTL_CONFIG=str(tmp_path / "no-config.toml"),
        COLUMNS="200",
    )
    return env


def ctl(
    env: dict[str, str], *args: str, stdin: str | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CONFIGCTL, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
        **kw,
    )


def test_get_set_history_diff_rollback(ctl_env: dict[str, str], service_name: str) -> None:
    got = ctl(ctl_env, "get", service_name)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["rate"] == 16000
    assert "version 0" in got.stderr

    assert ctl(ctl_env, "set", service_name, "rate=22050", "label=first").returncode == 0
    patch = ctl(
        ctl_env, "set", service_name, "--patch", "@-", stdin='{"nested": {"threshold": 0.9}}'
    )
    assert patch.returncode == 0, patch.stderr
    assert "version 2" in patch.stdout
    same = ctl(ctl_env, "set", service_name, "rate=22050")
    assert same.returncode == 0
    assert "unchanged" in same.stdout

    history = ctl(ctl_env, "history", service_name)
    assert history.returncode == 0
    assert "admin-token" in history.stdout
    diff = ctl(ctl_env, "diff", service_name, "1", "2", "--json")
    assert json.loads(diff.stdout) == [{"op": "replace", "path": "/nested/threshold", "value": 0.9}]
    rolled = ctl(ctl_env, "rollback", service_name, "1")
    assert rolled.returncode == 0, rolled.stderr
    assert "version 3" in rolled.stdout
    assert json.loads(ctl(ctl_env, "get", service_name).stdout)["nested"]["threshold"] == 0.5

    audit = ctl(ctl_env, "audit", "--service", service_name, "--json")
    assert [e["action"] for e in json.loads(audit.stdout)][:2] == ["rollback", "write"]


def test_errors_are_one_line_with_meaningful_exit_codes(
    ctl_env: dict[str, str], service_name: str
) -> None:
    invalid = ctl(ctl_env, "set", service_name, "rate=5")
    assert invalid.returncode == 5
    assert invalid.stderr.count("\n") == 1
    assert invalid.stderr.startswith("configctl: 422 Invalid configuration")
    assert "Traceback" not in invalid.stderr

    missing = ctl(ctl_env, "get", "no-such-service")
    assert missing.returncode == 4
    stale = ctl(ctl_env, "set", service_name, "rate=9000", "--if-match", "7")
    assert stale.returncode == 3
    unauthorised = ctl({**ctl_env, "CONFIGCTL_TOKEN": "scm_wrong"}, "get", service_name)
    assert unauthorised.returncode == 6
    down = ctl({**ctl_env, "CONFIGCTL_URL": "http://127.0.0.1:9"}, "get", service_name)
    assert down.returncode == 8
    assert down.stderr.count("\n") == 1
    usage = ctl(ctl_env, "set", service_name, "no-equals-sign")
    assert usage.returncode == 2


def test_flags_win_over_env_and_env_over_the_config_file(
    ctl_env: dict[str, str], manager: RunningManager, tmp_path: Path, service_name: str
) -> None:
    config = tmp_path / "configctl.toml"
    config.write_text(f'url = "{manager.base_url}"\ntoken = "{manager.tokens["viewer"]}"\n')
    env = {k: v for k, v in ctl_env.items() if k not in ("CONFIGCTL_URL", "CONFIGCTL_TOKEN")}
    env["CONFIGCTL_CONFIG"] = str(config)
    assert ctl(env, "get", service_name).returncode == 0
    # the viewer token from the file cannot write; the flag's admin token can
    assert ctl(env, "set", service_name, "rate=9000").returncode == 6
    flagged = ctl(env, "--token", manager.tokens["admin"], "set", service_name, "rate=9000")
    assert flagged.returncode == 0, flagged.stderr


def test_edit_saves_through_the_editor_and_shows_theirs_on_conflict(
    ctl_env: dict[str, str], manager: RunningManager, tmp_path: Path, service_name: str
) -> None:
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import json, sys\n"
        "p = sys.argv[1]\n"
        "d = json.load(open(p))\n"
        "d['label'] = 'edited'\n"
        "json.dump(d, open(p, 'w'))\n"
    )
    env = {**ctl_env, "CONFIGCTL_EDITOR": f"{sys.executable} {editor}"}
    saved = ctl(env, "edit", service_name, "--yes")
    assert saved.returncode == 0, saved.stderr
    assert '+  "label": "edited"' in saved.stdout
    assert "version 1" in saved.stdout
    refused = ctl(env, "edit", service_name, stdin="n\n")
    assert "no change" in refused.stdout  # label already 'edited'

    # someone else writes while the editor is open
    racer = tmp_path / "racer.py"
    racer.write_text(
        "import json, sys, httpx\n"
        f"h = httpx.patch('{manager.base_url}/api/v1/configs/{service_name}', "
        f"json={{'rate': 44100}}, headers={{'If-Match': '1', "
        f"'Authorization': 'Bearer {manager.tokens['admin']}'}})\n"
        "assert h.status_code == 200, h.text\n"
        "p = sys.argv[1]\n"
        "d = json.load(open(p))\n"
        "d['label'] = 'mine'\n"
        "json.dump(d, open(p, 'w'))\n"
    )
    env["CONFIGCTL_EDITOR"] = f"{sys.executable} {racer}"
    conflict = ctl(env, "edit", service_name, "--yes")
    assert conflict.returncode == 3
    assert "(theirs)" in conflict.stdout
    assert '-  "rate": 44100' in conflict.stdout
    assert "412 Version conflict" in conflict.stderr


def test_tokens_create_list_revoke(ctl_env: dict[str, str], manager: RunningManager) -> None:
    created = ctl(ctl_env, "tokens", "create", "ci-viewer", "--role", "viewer")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("scm_")
    scoped = ctl(ctl_env, "tokens", "create", "stt-editor", "--role", "editor", "--service", "stt")
    assert scoped.returncode == 0, scoped.stderr
    listed = ctl(ctl_env, "tokens", "list")
    assert "ci-viewer" in listed.stdout
    [row] = [line for line in listed.stdout.splitlines() if "stt-editor" in line]
    assert "stt" in row.replace("stt-editor", "")
    assert token not in listed.stdout
    with httpx.Client(base_url=manager.base_url) as http:
        ok = http.get("/api/v1/services", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert ctl(ctl_env, "tokens", "revoke", "ci-viewer").returncode == 0
        gone = http.get("/api/v1/services", headers={"Authorization": f"Bearer {token}"})
        assert gone.status_code == 401
    assert ctl(ctl_env, "tokens", "revoke", "ci-viewer").returncode == 4


def test_export_verify_history_detects_tampering_and_import(
    ctl_env: dict[str, str], tmp_path: Path, service_name: str
) -> None:
    with httpx.Client(base_url=ctl_env["CONFIGCTL_URL"]) as http:
        auth = {"Authorization": f"Bearer {ctl_env['CONFIGCTL_TOKEN']}"}
        for version, rate in enumerate((9000, 10000, 11000)):
            got = http.patch(
                f"/api/v1/configs/{service_name}",
                json={"rate": rate},
                headers={**auth, "If-Match": str(version)},
            )
            assert got.status_code == 200, got.text
    export = tmp_path / "export.json"
    assert ctl(ctl_env, "export", "-o", str(export)).returncode == 0
    good = ctl(ctl_env, "verify-history", str(export))
    assert good.returncode == 0, good.stderr
    assert "history verifies" in good.stdout
    other_trust = tmp_path / "other-trust.pem"
    other_trust.write_bytes(TrustStore([SigningKey.generate().public_key]).to_pem())
    stranger = ctl(ctl_env, "verify-history", str(export), "--trust", str(other_trust))
    assert stranger.returncode == 7
    assert "signature does not verify" in stranger.stderr

    doc = json.loads(export.read_text())
    mine = [i for i, r in enumerate(doc["versions"]) if r["service"] == service_name]
    cases = {}
    changed = json.loads(export.read_text())
    changed["versions"][mine[1]]["values"]["rate"] = 10001
    cases["changed"] = changed
    removed = json.loads(export.read_text())
    del removed["versions"][mine[1]]
    cases["removed"] = removed
    # (reordered and truncated exports: test_mgr_governance checks them through the same
    # function; each subprocess costs seconds on a loaded machine)
    for name, case in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(case))
        bad = ctl(ctl_env, "verify-history", str(path))
        assert bad.returncode == 7, (name, bad.stdout, bad.stderr)
        assert "does NOT verify" in bad.stderr

    imported = ctl(ctl_env, "import", str(export))
    assert imported.returncode == 0, imported.stderr
    assert f"{service_name}: version 4" in imported.stdout
    tampered = ctl(ctl_env, "import", str(tmp_path / "changed.json"))
    assert tampered.returncode == 5


def _lines(stream: Any) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


@pytest.fixture
def start_watch(
    ctl_env: dict[str, str], broker: Any, service_name: str
) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*CONFIGCTL, "watch", service_name, "--mqtt-url", broker.url("debug"), "--count", "2"],
            env=ctl_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_watch_verifies_every_message_live_and_verify_checks_a_pasted_payload(
    ctl_env: dict[str, str],
    broker: Any,
    service_name: str,
    start_watch: Callable[[], subprocess.Popen[str]],
) -> None:
    assert ctl(ctl_env, "set", service_name, "rate=12000").returncode == 0  # retained v1
    watcher = start_watch()
    assert watcher.stderr is not None
    assert watcher.stdout is not None
    errors = _lines(watcher.stderr)
    assert "watching" in errors.get(timeout=20)  # subscribed
    output = _lines(watcher.stdout)
    first = output.get(timeout=20)
    assert f"{service_name}: version 1" in first
    assert "verified" in first
    assert "retained" in first
    assert ctl(ctl_env, "set", service_name, "rate=13000").returncode == 0
    second = output.get(timeout=20)
    assert f"{service_name}: version 2" in second
    assert "verified" in second
    assert watcher.wait(20) == 0

    sub = subprocess.run(
        [
            "mosquitto_sub",
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-u",
            "debug",
            "-P",
            broker.password("debug"),
            "-t",
            f"config/updated/{service_name}",
            "-C",
            "1",
            "-v",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    pasted = ctl(ctl_env, "verify", stdin=sub.stdout)
    assert pasted.returncode == 0, pasted.stderr
    assert f"verified: {service_name} version 2" in pasted.stdout
    payload = sub.stdout.split(" ", 1)[1]
    forged = payload.replace('"rate": 13000', '"rate": 13001')
    assert forged != payload
    bad = ctl(ctl_env, "verify", "--service", service_name, stdin=forged)
    assert bad.returncode == 7
    assert "does NOT verify" in bad.stderr


def test_sync_table_and_exit_code(
    ctl_env: dict[str, str], manager: RunningManager, broker: Any, service_name: str
) -> None:
    import asyncio

    import aiomqtt

    from config_lib import SigningKey, applied_topic, sign_report

    calm = ctl(ctl_env, "sync")
    assert calm.returncode == 0, calm.stdout + calm.stderr
    assert service_name in calm.stdout

    async def report() -> None:
        async with aiomqtt.Client(**broker.endpoint(service_name).client_kwargs()) as client:
            doc = {"instance": "sick-1", "service": service_name, "status": "rejected",
                   "version": None, "reason": "bad_signature",
                   "time": "2026-11-30T00:00:00.000000Z"}  # fmt: skip
            await client.publish(
                applied_topic(service_name, "sick-1"),
                sign_report(doc, SigningKey.generate()),
                qos=1,
                retain=True,
            )
            # ...and an unsigned one for another instance: shown as forged.
            await client.publish(
                applied_topic(service_name, "fake-1"), b'{"status": "applied"}', qos=1, retain=True
            )

    asyncio.run(report())
    with httpx.Client(base_url=manager.base_url) as http:
        auth = {"Authorization": f"Bearer {manager.tokens['viewer']}"}
        for _ in range(500):  # the manager receives the report asynchronously (bounded)
            body = http.get("/api/v1/sync", headers=auth).json()
            if body["summary"]["rejected"] and body["summary"]["forged"]:
                break
            time.sleep(0.02)
    sick = ctl(ctl_env, "sync")
    assert sick.returncode == 1
    assert "sick-1" in sick.stdout
    assert "rejected" in sick.stdout
    assert "bad_signature" in sick.stdout
    assert "FORGED (unsigned)" in sick.stdout
    assert "1 forged" in sick.stdout
