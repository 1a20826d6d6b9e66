"""Presets change two services in one transaction; cross-service rules refuse bad writes."""

from __future__ import annotations

from typing import Any

import httpx
import jsonpatch
from mgr_harness import RunningManager, put, watch

from config_manager.presets import PRESETS
from config_manager.tokens import Role, create_token_sync
from workers.orchestrator.config import OrchestratorConfig
from workers.stt.config import SttConfig

MODELS = {"stt": SttConfig, "orchestrator": OrchestratorConfig}


async def _versions(http: Any) -> dict[str, int]:
    return {s["name"]: s["version"] for s in (await http.get("/api/v1/services")).json()}


async def test_preset_commits_and_publishes_both_services(
    manager_factory: Any, own_broker: Any, keys: Any
) -> None:
    # The real service names: on a broker of its own, so no other test sees these configs.
    manager: RunningManager = manager_factory(mqtt_url=own_broker.url("manager"), models=MODELS)
    async with (
        watch(own_broker, keys.trust, "stt") as stt,
        watch(own_broker, keys.trust, "orchestrator") as orch,
        manager.client("editor") as http,
    ):
        listed = (await http.get("/api/v1/presets")).json()
        assert {p["name"] for p in listed} == set(PRESETS)
        resp = await http.post("/api/v1/presets/high_accuracy/apply")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["publication"] == "published"
        assert {v["service"]: v["version"] for v in body["versions"]} == {
            "stt": 1,
            "orchestrator": 1,
        }
        wanted = PRESETS["high_accuracy"].patches
        assert (await orch.next()).config["chunk_duration_s"] == wanted["orchestrator"][
            "chunk_duration_s"
        ]
        assert (await stt.next()).config["beam_size"] == wanted["stt"]["beam_size"]
        history = (await http.get("/api/v1/services/stt/versions")).json()
        other = (await http.get("/api/v1/services/orchestrator/versions")).json()
        assert history[0]["change_id"] == other[0]["change_id"] == body["change_id"]
        compat = (await http.get("/api/v1/compatibility")).json()
        assert compat["compatible"] is True
        assert compat["versions"] == {"stt": 1, "orchestrator": 1}
        assert (await http.post("/api/v1/presets/no_such/apply")).status_code == 404


async def test_incompatible_writes_and_presets_are_refused_whole(
    manager_factory: Any, own_broker: Any
) -> None:
    manager: RunningManager = manager_factory(mqtt_url=own_broker.url("manager"), models=MODELS)
    async with manager.client("editor") as http:
        # The orchestrator's default chunk is 6 s: an STT maximum of 3 s breaks a rule.
        refused = await put(http, "stt", {"max_chunk_duration_s": 3.0}, 0)
        assert refused.status_code == 422, refused.text
        problem = refused.json()
        fields = {tuple(e["loc"]) for e in problem["errors"]}
        assert ("orchestrator", "chunk_duration_s") in fields
        assert ("stt", "max_chunk_duration_s") in fields
        assert "orchestrator.chunk_duration_s" in problem["detail"]
        assert "stt.max_chunk_duration_s" in problem["detail"]
        assert await _versions(http) == {"stt": 0, "orchestrator": 0}

        small = {
            "chunk_duration_s": 3.0,
            "overlap_duration_s": 0.5,
            "processing_interval_s": 2.5,
            "buffer_duration_s": 4.0,
        }
        assert (await put(http, "orchestrator", small, 0)).status_code == 200
        assert (await put(http, "stt", {"max_chunk_duration_s": 3.5}, 0)).status_code == 200
        # high_accuracy wants 20 s chunks (> 3.5 s) and a beam change: neither may land.
        # the preview says so first, with a 200 and nothing stored
        preview = await http.post("/api/v1/presets/high_accuracy/preview")
        assert preview.status_code == 200, preview.text
        verdict = preview.json()
        assert verdict["compatible"] is False
        assert verdict["violations"]
        assert ["orchestrator", "chunk_duration_s"] in [e["loc"] for e in verdict["errors"]]
        assert await _versions(http) == {"stt": 1, "orchestrator": 1}
        resp = await http.post("/api/v1/presets/high_accuracy/apply")
        assert resp.status_code == 422
        assert {"orchestrator", "stt"} <= set(resp.json()["services"])
        assert await _versions(http) == {"stt": 1, "orchestrator": 1}
        stt = (await http.get("/api/v1/configs/stt")).json()["values"]
        assert stt["beam_size"] == SttConfig().beam_size  # unchanged (high_accuracy's is 5)
        assert stt["beam_size"] != PRESETS["high_accuracy"].patches["stt"]["beam_size"]
        assert stt["max_chunk_duration_s"] == 3.5


async def test_a_preset_gives_the_same_documents_whatever_was_current_before(
    manager_factory: Any, own_broker: Any
) -> None:
    """real_time_optimized then exact_whisper_match leaves exactly exact_whisper_match."""
    manager: RunningManager = manager_factory(mqtt_url=own_broker.url("manager"), models=MODELS)
    async with manager.client("editor") as http:

        async def documents() -> dict[str, Any]:
            return {s: (await http.get(f"/api/v1/configs/{s}")).json()["values"] for s in MODELS}

        assert (await http.post("/api/v1/presets/exact_whisper_match/apply")).status_code == 200
        first = await documents()
        assert (await http.post("/api/v1/presets/real_time_optimized/apply")).status_code == 200
        between = await documents()
        assert between["stt"]["beam_size"] == 1
        assert between["orchestrator"]["preset"] == "real_time_optimized"
        assert (await http.post("/api/v1/presets/exact_whisper_match/apply")).status_code == 200
        assert await documents() == first
        assert first["orchestrator"]["preset"] == "exact_whisper_match"
        assert first["stt"]["beam_size"] == 5


async def test_preview_shows_each_services_diff_and_stores_nothing(
    manager_factory: Any, own_broker: Any
) -> None:
    manager: RunningManager = manager_factory(mqtt_url=own_broker.url("manager"), models=MODELS)
    scoped = create_token_sync(manager.settings.db_file, "stt-only", Role.editor, services=["stt"])
    async with manager.client("viewer") as http:  # a preview changes nothing: a viewer may ask
        resp = await http.post("/api/v1/presets/high_accuracy/preview")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        wanted = PRESETS["high_accuracy"].patches
        assert body["preset"] == "high_accuracy"
        assert (body["changed"], body["compatible"], body["violations"]) == (True, True, [])
        by_service = {s["service"]: s for s in body["services"]}
        assert set(by_service) == {"stt", "orchestrator"}
        assert by_service["orchestrator"]["patch"], "20 s chunks are not the default"
        for service, entry in by_service.items():
            assert (entry["version"], entry["would_be_version"], entry["changed"]) == (0, 1, True)
            # the diff turns the current config into the preset's result
            before = (await http.get(f"/api/v1/configs/{service}")).json()["values"]
            after = jsonpatch.apply_patch(before, entry["patch"])
            assert {f: after[f] for f in wanted[service]} == dict(wanted[service])
        assert await _versions(http) == {"stt": 0, "orchestrator": 0}
        audit = (await http.get("/api/v1/audit")).json()
        assert [a for a in audit if a["action"] == "preset"] == []

        missing = await http.post("/api/v1/presets/no_such/preview")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert "known:" in missing.json()["detail"]
    async with manager.client("editor") as http:
        assert (await http.post("/api/v1/presets/high_accuracy/apply")).status_code == 200
        again = (await http.post("/api/v1/presets/high_accuracy/preview")).json()
        assert again["changed"] is False
        assert [(s["changed"], s["patch"], s["version"]) for s in again["services"]] == [
            (False, [], 1),
            (False, [], 1),
        ]
    async with httpx.AsyncClient(
        base_url=manager.base_url, headers={"Authorization": f"Bearer {scoped}"}
    ) as http:
        outside = await http.post("/api/v1/presets/high_accuracy/preview")
        assert outside.status_code == 403
        assert outside.headers["content-type"].startswith("application/problem+json")
        assert "orchestrator" in outside.json()["detail"]
