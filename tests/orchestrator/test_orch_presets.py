"""Pure tests of the presets and the cross-service compatibility rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from config_manager.compatibility import RULES, Violation, check_compatibility
from config_manager.presets import PRESETS, get_preset, preset_names
from workers.orchestrator.config import OrchestratorConfig

EXPECTED = {
    "exact_whisper_match": (3.0, 0.2, 3.0, 4.0),
    "optimized_performance": (2.5, 0.3, 2.2, 6.0),
    "high_accuracy": (4.0, 0.8, 3.2, 8.0),
    "real_time_optimized": (2.0, 0.2, 1.8, 4.0),
}


def _merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON Merge Patch (the manager's job; repeated here to check the presets)."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            out[key] = _merge_patch(out.get(key) or {}, value)
        else:
            out[key] = value
    return out


def _stt_model() -> type[BaseModel]:
    from workers.stt.config import SttConfig

    return SttConfig


def test_four_presets_with_the_design_figures() -> None:
    assert preset_names() == sorted(EXPECTED)
    for name, (chunk, overlap, interval, buffer) in EXPECTED.items():
        patch = PRESETS[name].patches["orchestrator"]
        assert (
            patch["chunk_duration_s"],
            patch["overlap_duration_s"],
            patch["processing_interval_s"],
            patch["buffer_duration_s"],
        ) == (chunk, overlap, interval, buffer)
        assert patch["preset"] == name
        assert PRESETS[name].description
        json.dumps(PRESETS[name].to_dict())  # JSON-ready


def test_every_preset_applies_to_defaults_and_is_compatible() -> None:
    stt_model = _stt_model()
    for preset in PRESETS.values():
        configs: dict[str, BaseModel] = {}
        for service, model in (("orchestrator", OrchestratorConfig), ("stt", stt_model)):
            base = model().model_dump(mode="json")
            patch = dict(preset.patches.get(service, {}))
            configs[service] = model.model_validate(_merge_patch(base, patch))
        assert check_compatibility(configs) == [], preset.name


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="high_accuracy"):
        get_preset("nope")
    assert get_preset("high_accuracy").services == ("orchestrator", "stt")


def test_presets_are_read_only() -> None:
    with pytest.raises(TypeError):
        PRESETS["x"] = PRESETS["high_accuracy"]  # type: ignore[index]
    with pytest.raises(TypeError):
        PRESETS["high_accuracy"].patches["orchestrator"]["chunk_duration_s"] = 1  # type: ignore[index]


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
