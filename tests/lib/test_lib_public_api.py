"""The public surface of config_lib, its import footprint, settings and metrics export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import config_lib
from config_lib import (
    ConfigMetrics,
    LibrarySettings,
    default_instance_id,
    env_prefix,
    prometheus_collector,
    validate_name,
)

REPO = Path(__file__).resolve().parents[2]

EXPECTED = {
    # wire format and verification (foundation)
    "DEFAULT_MAX_BYTES", "FORMAT_VERSION", "Envelope", "Limits", "Position",
    "canonical_bytes", "sign_envelope", "verify_envelope",
    # exceptions
    "BadSignature", "ConfigLibError", "Duplicate", "EnvelopeError", "EnvelopeTooLarge",
    "InvalidConfig", "InvalidName", "KeyFileError", "LibraryStateError", "MalformedEnvelope",
    "NoConfig", "NotAuthorised", "Rollback", "SecretError", "ServiceMismatch",
    "ServiceRetired", "StaleEnvelope", "UnknownKey", "Unsigned", "UnsupportedFormat",
    "Outdated", "DigestMismatch", "BadIssuedAt", "FreshnessError", "OutOfRange", "MAX_POSITION",
    "TooDeep", "BadCiphertext", "MAX_DEPTH", "check_ciphertexts",
    # signed freshness (TUF's timestamp role)
    "FreshnessGate", "FreshnessRecord", "FreshnessState", "envelope_digest", "sign_freshness",
    "verify_freshness", "freshness_topic",
    # the root-signed keyset (signing-key rotation)
    "Keyset", "KeysetError", "KEYSET_MAX_BYTES", "KEYSET_TOPIC", "VoidEpoch", "sign_keyset",
    "verify_keyset",
    # signed applied reports (each instance's own key; the manager pins it)
    "REPORT_MAX_BYTES", "ReportError", "VerifiedReport", "load_or_create_report_key",
    "sign_report", "verify_report",
    # keys and secrets
    "DataKey", "SigningKey", "TrustStore", "derive_data_key", "key_id_for", "load_data_key",
    "load_master_key", "load_or_create_master_key", "load_or_create_signing_key",
    "load_signing_key", "save_data_key", "MASK", "decrypt_secrets", "encrypt_secrets",
    "is_encrypted", "mask_secrets", "reencrypt_secrets",
    # topics, transport, files
    "applied_topic", "applied_wildcard", "parse_applied_topic", "parse_updated_topic",
    "report_request_topic", "updated_topic", "validate_name", "sanitize_name", "NAME_ALPHABET",
    "MqttEndpoint",
    "write_atomic",
    # owning background work: one retry policy, one way to stop tasks
    "Backoff", "stop_tasks",
    # the client
    "ConfigLibrary", "ConfigChange", "ConfigSource", "LibrarySettings", "ConfigPipeline",
    "Accepted", "AppliedReport", "ConfigMetrics", "prometheus_collector",
    "default_instance_id", "env_prefix",
    # threaded adapter
    "ThreadedConfig", "initialize_and_subscribe", "sync_module_constants",
}  # fmt: skip


def test_all_is_exactly_the_public_api() -> None:
    assert set(config_lib.__all__) == EXPECTED
    assert len(config_lib.__all__) == len(EXPECTED)
    for name in config_lib.__all__:
        assert hasattr(config_lib, name), name


_BLOCKED_IMPORT = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'fastapi', 'faster_whisper', 'prometheus_client', 'uvicorn'}:
            raise ImportError(f'{name} is blocked in this test')
        return None
sys.meta_path.insert(0, Block())
import config_lib
assert 'fastapi' not in sys.modules and 'faster_whisper' not in sys.modules
from config_lib import ConfigLibrary, initialize_and_subscribe
print('ok', len(config_lib.__all__))
"""


def test_import_works_without_fastapi_and_faster_whisper() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _BLOCKED_IMPORT],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")


def test_env_prefix_and_instance_id() -> None:
    assert env_prefix("stt") == "CONFIG_STT_"
    assert env_prefix("speech-to-text") == "CONFIG_SPEECH_TO_TEXT_"
    assert validate_name(default_instance_id(), "instance")


@pytest.mark.parametrize(
    ("host", "program", "expected"),
    [
        ("web1.example.com", "stt", "web1-stt"),  # only the first label of a FQDN
        ("box", "my.tool", "box-my-tool"),  # a dotted script name
        ("a b", "x*y+z#", "a-b-x-y-z"),
        ("", "", "host"),  # nothing usable: still a valid name
        ("h" * 80, "stt", "h" * 64),
    ],
)
def test_instance_ids_from_dotted_or_odd_hostnames_are_sanitised(
    monkeypatch: pytest.MonkeyPatch, host: str, program: str, expected: str
) -> None:
    import config_lib._settings as settings_module

    monkeypatch.setattr(settings_module.platform, "node", lambda: host)
    monkeypatch.setattr(settings_module, "_program_name", lambda: program)
    instance = default_instance_id()
    assert instance == expected
    assert validate_name(instance, "instance") == instance


def test_library_settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONFIG_LIB_MQTT_URL", "mqtt://u:p@broker.example:1884")
    monkeypatch.setenv("CONFIG_LIB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CONFIG_LIB_INITIAL_WAIT", "0.5")
    settings = LibrarySettings()
    assert settings.initial_wait == 0.5
    endpoint = settings.endpoint("stt")
    assert endpoint is not None
    assert (endpoint.host, endpoint.port, endpoint.username, endpoint.password) == (
        "broker.example",
        1884,
        "u",
        "p",
    )
    assert settings.lkg_path("stt") == tmp_path / "lkg" / "stt.json"


def test_settings_default_user_is_service_and_password_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    password_file = tmp_path / "secrets" / "mqtt" / "stt.password"
    password_file.parent.mkdir(parents=True)
    password_file.write_text("pw-from-file\n")
    settings = LibrarySettings(data_dir=tmp_path, mqtt_url="mqtt://127.0.0.1:1999")
    endpoint = settings.endpoint("stt")
    assert endpoint is not None
    assert (endpoint.username, endpoint.password) == ("stt", "pw-from-file")
    assert LibrarySettings(mqtt_url="").endpoint("stt") is None


def test_prometheus_collector_exports_counters() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    metrics = ConfigMetrics(received=3, applied=1, lkg_save_failed=1)
    metrics.rejected["bad_signature"] += 2
    registry = CollectorRegistry()
    registry.register(prometheus_collector(metrics, service="stt", instance="host-a"))
    text = generate_latest(registry).decode()
    assert (
        'config_lib_messages_total{instance="host-a",outcome="received",service="stt"} 3.0' in text
    )
    assert (
        'config_lib_rejected_total{instance="host-a",reason="bad_signature",service="stt"} 2.0'
        in text
    )
    assert 'config_lib_lkg_save_failures_total{instance="host-a",service="stt"} 1.0' in text
    assert metrics.snapshot()["rejected"] == {"bad_signature": 2}


def _python_blocks(markdown: str) -> list[str]:
    blocks: list[str] = []
    current: list[str] = []
    inside = False
    for line in markdown.splitlines():
        if line.strip() == "```python":
            inside, current = True, []
        elif line.strip() == "```" and inside:
            inside = False
            blocks.append("\n".join(current))
        elif inside:
            current.append(line)
    return blocks


def test_docs_snippets_compile_and_the_first_one_runs(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "config_lib.md").read_text()
    blocks = _python_blocks(doc)
    assert len(blocks) >= 3
    for i, block in enumerate(blocks):
        compile(block, f"docs/config_lib.md[{i}]", "exec")
    namespace: dict[str, object] = {"__name__": "doc_snippet"}
    code = compile(blocks[0], "docs/config_lib.md[0]", "exec", dont_inherit=True)
    exec(code, namespace)  # noqa: S102 - running our own documentation snippet
    model = namespace["SttConfig"]
    assert model().beam_size == 5  # type: ignore[operator]
    imported = {name for name in namespace if name in config_lib.__all__}
    assert {"ConfigChange", "ConfigLibrary", "LibrarySettings"} <= imported
