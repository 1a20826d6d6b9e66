"""compose.yml cannot run here (no Docker engine); check the properties it must have."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def test_the_expected_services_exist() -> None:
    assert {"mosquitto", "config-manager", "stt", "orchestrator"} <= set(SERVICES)


def test_broker_is_the_official_mosquitto_2_image() -> None:
    assert re.fullmatch(r"eclipse-mosquitto:2(\.\d+)*", SERVICES["mosquitto"]["image"])


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_healthcheck(name: str) -> None:
    check = SERVICES[name].get("healthcheck", {})
    assert check.get("test"), f"{name} has no healthcheck"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_no_service_runs_as_root(name: str) -> None:
    user = str(SERVICES[name].get("user", ""))
    assert user, f"{name} does not set a user"
    assert user.split(":")[0] not in {"0", "root"}


def test_images_built_here_are_multi_stage_and_drop_root() -> None:
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert len(stages) >= 3
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert users
    assert all(u not in {"root", "0"} for u in users)
    for name, service in SERVICES.items():
        build = service.get("build")
        if build:
            assert (REPO / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()
            assert build["target"] in stages, f"{name} builds unknown stage {build['target']}"


@pytest.mark.parametrize("name", ["config-manager", "stt", "orchestrator"])
def test_apps_wait_for_a_healthy_broker(name: str) -> None:
    depends = SERVICES[name]["depends_on"]
    assert depends["mosquitto"]["condition"] == "service_healthy"


def test_every_referenced_file_exists_and_every_volume_is_declared() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_keys_and_passwords_are_mounted_read_only() -> None:
    for name in ("mosquitto", "stt", "orchestrator"):
        for volume in SERVICES[name]["volumes"]:
            source, target = volume.split(":")[:2]
            if "auth" in target or "keys" in target:
                assert volume.endswith(":ro"), f"{name} mounts {source} writable"


def test_workers_get_only_their_own_data_key() -> None:
    for name in ("stt", "orchestrator"):
        env = SERVICES[name]["environment"]
        assert env["CONFIG_LIB_DATA_KEY"].endswith(f"/{name}.key")
        assert all("manager-data" not in v for v in SERVICES[name]["volumes"])
