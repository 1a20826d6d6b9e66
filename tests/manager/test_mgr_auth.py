"""Bearer tokens with roles: 401 without a valid token, 403 for a role too weak."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from mgr_harness import RunningManager, put

from config_manager.tokens import hash_token

REPO = Path(__file__).resolve().parents[2]


async def test_missing_or_unknown_token_is_401(manager: RunningManager, service_name: str) -> None:
    url = f"/api/v1/configs/{service_name}"
    async with httpx.AsyncClient(base_url=manager.base_url) as anon:
        for headers in (
            {},
            {"Authorization": "Bearer scm_not-a-real-token"},
            {"Authorization": "Basic x"},
        ):
            resp = await anon.get(url, headers=headers)
            assert resp.status_code == 401, headers
            assert resp.headers["content-type"].startswith("application/problem+json")
        assert "Bearer" in (await anon.get(url)).headers["www-authenticate"]
        assert (await anon.get("/healthz")).status_code == 200


async def test_roles(manager: RunningManager, service_name: str) -> None:
    async with manager.client("viewer") as viewer, manager.client("editor") as editor:
        assert (await viewer.get(f"/api/v1/configs/{service_name}")).status_code == 200
        forbidden = await put(viewer, service_name, {"label": "nope"}, 0)
        assert forbidden.status_code == 403
        assert forbidden.headers["content-type"].startswith("application/problem+json")
        assert (await editor.get("/api/v1/tokens")).status_code == 403
        ok = await put(editor, service_name, {"label": "yes"}, 0)
        assert ok.status_code == 200
        assert ok.json()["updated_by"] == "editor-token"


async def test_admin_manages_tokens(manager: RunningManager, service_name: str) -> None:
    async with manager.client("admin") as admin:
        created = await admin.post("/api/v1/tokens", json={"name": "ci-bot", "role": "editor"})
        assert created.status_code == 201, created.text
        token = created.json()["token"]
        assert token.startswith("scm_")
        listed = (await admin.get("/api/v1/tokens")).json()
        assert {"ci-bot", "admin-token"} <= {t["name"] for t in listed}
        assert all("token" not in t for t in listed)  # shown once, never listed
        assert (
            await admin.post("/api/v1/tokens", json={"name": "ci-bot", "role": "viewer"})
        ).status_code == 409
        assert (
            await admin.post("/api/v1/tokens", json={"name": "bad name", "role": "viewer"})
        ).status_code == 422

        async with httpx.AsyncClient(
            base_url=manager.base_url, headers={"Authorization": f"Bearer {token}"}
        ) as bot:
            resp = await put(bot, service_name, {"label": "by-bot"}, 0)
            assert resp.status_code == 200
            history = (await bot.get(f"/api/v1/services/{service_name}/versions")).json()
            assert history[0]["created_by"] == "ci-bot"
            assert (await admin.delete("/api/v1/tokens/ci-bot")).status_code == 204
            assert (await bot.get(f"/api/v1/configs/{service_name}")).status_code == 401
        assert (await admin.delete("/api/v1/tokens/ci-bot")).status_code == 404

    db = manager.settings.db_file
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert token.encode() not in raw


def test_cli_creates_a_token_once(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "config_manager",
        "token",
        "--data-dir",
        str(tmp_path),
        "create",
        "--role",
        "admin",
        "ops",
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False, timeout=60)
    assert first.returncode == 0, first.stderr
    token = first.stdout.strip()
    assert token.startswith("scm_")
    assert "shown once" in first.stderr
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False, timeout=60)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    import sqlite3

    conn = sqlite3.connect(tmp_path / "manager.db")
    try:
        rows = conn.execute("SELECT name, role, token_hash FROM tokens").fetchall()
    finally:
        conn.close()
    assert rows == [("ops", "admin", hash_token(token))]
