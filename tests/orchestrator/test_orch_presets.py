"""Presets and cross-service rules: registered by the workers through entry points,
checked by the manager's mechanism; presets are reproducible."""

from __future__ import annotations

import json
import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from config_manager import compatibility, presets
from config_manager.compatibility import RULES, Violation, check_compatibility, load_rules
from config_manager.merge_patch import merge_patch
from config_manager.presets import PRESETS, get_preset, load_presets, preset_names
from workers.orchestrator import presets as speech_presets
from workers.orchestrator import rules as speech_rules
from workers.orchestrator.config import OrchestratorConfig
from workers.stt.config import SttConfig

REPO = Path(__file__).resolve().parents[2]
NAMES = {"exact_whisper_match", "optimized_performance", "high_accuracy", "real_time_optimized"}
MODELS: dict[str, type[BaseModel]] = {"orchestrator": OrchestratorConfig, "stt": SttConfig}


def _stt_model() -> type[BaseModel]:
    return SttConfig


def test_the_manager_gets_the_workers_presets_and_rules_through_entry_points() -> None:
    declared = {ep.name: ep.value for ep in entry_points(group=presets.ENTRY_POINT_GROUP)}
    assert set(declared) == NAMES == set(speech_presets.PRESETS)
    assert all(v.startswith("workers.orchestrator.presets:") for v in declared.values())
    assert preset_names() == sorted(NAMES)
    for name in NAMES:
        data = speech_presets.PRESETS[name]
        assert PRESETS[name].to_dict() == {
            "name": name,
            "description": data["description"],
            "patches": {svc: dict(p) for svc, p in data["patches"].items()},
        }
        json.dumps(PRESETS[name].to_dict())  # JSON-ready
    declared_rules = {
        ep.name: ep.value for ep in entry_points(group=compatibility.ENTRY_POINT_GROUP)
    }
    assert set(declared_rules) == set(RULES)
    for name, rule in RULES.items():
        assert rule is getattr(speech_rules, name)


def test_the_manager_has_no_speech_specific_code() -> None:
    """No preset, rule or field of the speech workers is written into the manager (only
    ``stack.py``, the ``make run`` launcher, starts the worker processes by module name)."""
    for path in (REPO / "config_manager").rglob("*.py"):
        if path.name == "stack.py":
            continue
        text = path.read_text(encoding="utf-8")
        for word in ("chunk_duration", "beam_size", "max_chunk", "workers", "high_accuracy"):
            assert word not in text, f"{path.relative_to(REPO)} mentions {word!r}"


def test_entry_points_of_another_package_are_loaded_and_broken_ones_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A distribution of its own (a dist-info on sys.path) registers a preset and a rule."""
    (tmp_path / "extra_speech.py").write_text(
        "GOOD = {'description': 'two services', 'patches': {'a': {'x': 1}, 'b': {'y': None}}}\n"
        "BAD = ['not', 'a', 'mapping']\n"
        "def rule(configs):\n"
        "    return ('x too big', ('a.x', 'b.y')) if 'a' in configs else None\n",
        encoding="utf-8",
    )
    info = tmp_path / "extra_speech-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: extra-speech\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[test.presets]\ngood = extra_speech:GOOD\nbad = extra_speech:BAD\n"
        "missing = extra_speech:NOPE\n\n"
        "[test.rules]\nx_rule = extra_speech:rule\nnot_callable = extra_speech:GOOD\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.ERROR):
        found = load_presets("test.presets")
        rules = load_rules("test.rules")
    assert list(found) == ["good"]
    assert found["good"].services == ("a", "b")
    assert found["good"].fields == {"a": ("x",), "b": ("y",)}
    assert list(rules) == ["x_rule"]
    for broken in ("bad", "missing", "not_callable"):
        assert broken in caplog.text
    model = OrchestratorConfig()
    assert check_compatibility({"a": model}, rules) == [
        Violation("x_rule", "x too big", ("a.x", "b.y"))
    ]
    assert check_compatibility({}, rules) == []
    sys.modules.pop("extra_speech", None)


def test_every_preset_owns_the_stated_fields_and_sets_all_of_them() -> None:
    for name in NAMES:
        preset = get_preset(name)
        assert preset.fields == {
            "orchestrator": tuple(sorted(speech_presets.ORCHESTRATOR_FIELDS)),
            "stt": tuple(sorted(speech_presets.STT_FIELDS)),
        }
        assert preset.patches["orchestrator"]["preset"] == name
        assert preset.description
    # every chunking field is a preset's; only deployment choices are left alone
    assert set(OrchestratorConfig.model_fields) - speech_presets.ORCHESTRATOR_FIELDS == {
        "sample_rate",
        "session_idle_timeout_s",
    }
    assert not speech_presets.STT_FIELDS & {"model", "device", "compute_type", "cpu_threads"}


def _apply(preset_name: str, current: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the manager stores: each service's patch merged into its current document."""
    out = dict(current)
    for service, patch in get_preset(preset_name).to_dict()["patches"].items():
        merged = merge_patch(current[service], patch)
        out[service] = MODELS[service].model_validate(merged).model_dump(mode="json")
    return out


def test_presets_are_reproducible_whatever_was_current_before() -> None:
    defaults = {s: m().model_dump(mode="json") for s, m in MODELS.items()}
    # a config far from every preset: every owned field changed
    odd = {
        "orchestrator": {
            **defaults["orchestrator"],
            "chunk_duration_s": 25.0,
            "overlap_duration_s": 1.0,
            "processing_interval_s": 20.0,
            "buffer_duration_s": 30.0,
            "boundary_search_s": 2.0,
            "max_chunks_in_flight": 3,
            "final_after_pause_s": 0.7,
            "preset": "custom",
        },
        "stt": {
            **defaults["stt"],
            "beam_size": 2,
            "temperature": 0.4,
            "temperature_increment_on_fallback": 0.2,
            "compression_ratio_threshold": None,
            "log_prob_threshold": None,
            "repetition_penalty": 1.5,
            "no_repeat_ngram_size": 0,
            "vad_filter": not defaults["stt"]["vad_filter"],
            "vad": {
                "threshold": 0.9,
                "min_speech_duration_ms": 5,
                "min_silence_duration_ms": 5,
                "speech_pad_ms": 5,
            },
            "word_timestamps": False,
            "condition_on_previous_text": True,
            "no_speech_threshold": 0.1,
        },
    }
    for service in MODELS:
        changed = {f for f in odd[service] if odd[service][f] != defaults[service][f]}
        owned = (
            speech_presets.ORCHESTRATOR_FIELDS
            if service == "orchestrator"
            else (speech_presets.STT_FIELDS)
        )
        assert changed == set(owned), service  # the test really moves every owned field
    for name in NAMES:
        fresh = _apply(name, defaults)
        assert _apply(name, odd) == fresh, name
        for other in NAMES:  # the case: one preset after another
            assert _apply(name, _apply(other, defaults)) == fresh, (other, name)


def test_every_preset_applies_to_defaults_and_is_compatible() -> None:
    defaults = {s: m().model_dump(mode="json") for s, m in MODELS.items()}
    for name in NAMES:
        applied = _apply(name, defaults)
        configs = {s: MODELS[s].model_validate(v) for s, v in applied.items()}
        assert check_compatibility(configs) == [], name


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="high_accuracy"):
        get_preset("nope")
    assert get_preset("high_accuracy").services == ("orchestrator", "stt")


def test_presets_are_read_only() -> None:
    with pytest.raises(TypeError):
        PRESETS["x"] = PRESETS["high_accuracy"]  # type: ignore[index]
    with pytest.raises(TypeError):
        PRESETS["high_accuracy"].patches["orchestrator"]["chunk_duration_s"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        speech_presets.HIGH_ACCURACY["patches"]["stt"]["beam_size"] = 1  # type: ignore[index]


def test_chunk_longer_than_stt_max_names_both_fields() -> None:
    stt_model = _stt_model()
    stt = stt_model.model_validate({"max_chunk_duration_s": 5.0})
    orch = OrchestratorConfig(
        chunk_duration_s=6.0,
        overlap_duration_s=1.0,
        processing_interval_s=5.0,
        buffer_duration_s=8.0,
    )
    violations = check_compatibility({"orchestrator": orch, "stt": stt})
    assert [v.rule for v in violations] == ["chunk_within_stt_max"]
    assert violations[0].fields == ("orchestrator.chunk_duration_s", "stt.max_chunk_duration_s")
    assert violations[0].services == ("orchestrator", "stt")
    assert "5.0" in violations[0].message
    assert "6.0" in violations[0].message


def test_sample_rate_not_accepted_names_both_fields() -> None:
    stt = _stt_model()()
    orch = OrchestratorConfig(sample_rate=8000)
    violations = check_compatibility({"orchestrator": orch, "stt": stt})
    assert [v.rule for v in violations] == ["sample_rate_accepted"]
    assert violations[0].fields[0] == "orchestrator.sample_rate"
    assert violations[0].fields[1].startswith("stt.")
    assert violations[0].fields[1].removeprefix("stt.") in type(stt).model_fields


@pytest.mark.parametrize(
    ("values", "rule"),
    [
        ({"chunk_duration_s": 2.0, "overlap_duration_s": 2.0}, "overlap_shorter_than_chunk"),
        ({"chunk_duration_s": 2.0, "processing_interval_s": 2.5}, "interval_within_chunk"),
        (
            {"chunk_duration_s": 4.0, "overlap_duration_s": 1.0, "buffer_duration_s": 4.5},
            "buffer_holds_chunk_and_overlap",
        ),
    ],
)
def test_single_service_rules_on_stored_configs(values: dict[str, float], rule: str) -> None:
    # The model refuses these on validation; model_construct stands for a config that
    # reached the store some other way (e.g. an older schema), which the report must flag.
    base = OrchestratorConfig().model_dump()
    orch = OrchestratorConfig.model_construct(**{**base, **values})
    violations = check_compatibility({"orchestrator": orch})
    assert rule in [v.rule for v in violations]
    v = next(v for v in violations if v.rule == rule)
    assert all(f.startswith("orchestrator.") for f in v.fields)
    assert len(v.fields) >= 2


def test_rules_without_the_other_service_are_skipped() -> None:
    assert check_compatibility({"orchestrator": OrchestratorConfig()}) == []
    assert check_compatibility({}) == []
    assert set(RULES) == {
        "overlap_shorter_than_chunk",
        "interval_within_chunk",
        "buffer_holds_chunk_and_overlap",
        "sample_rate_accepted",
        "chunk_within_stt_max",
    }
    assert Violation("r", "m", ("a.x", "b.y")).to_dict() == {
        "rule": "r",
        "message": "m",
        "fields": ["a.x", "b.y"],
    }


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"overlap_duration_s": 16.0}, "overlap_duration_s must be shorter"),
        ({"processing_interval_s": 17.0}, "processing_interval_s must not be longer"),
        ({"buffer_duration_s": 6.5}, "buffer_duration_s must hold"),
        ({"chunk_duration_s": 0.0}, "greater than 0"),
        ({"unknown": 1}, "Extra inputs are not permitted"),
    ],
)
def test_orchestrator_config_refuses_bad_values(values: dict[str, Any], fragment: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=fragment):
        OrchestratorConfig.model_validate(values)
