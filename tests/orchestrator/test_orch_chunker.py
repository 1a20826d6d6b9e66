"""Pure tests of the chunker: coverage, exact overlaps, bounded buffer, hot-apply."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.orchestrator.chunker import Chunk, Chunker
from workers.orchestrator.config import OrchestratorConfig

RATE = 1000  # small rate keeps the property tests fast; arithmetic is in samples


def _cfg(
    chunk: float, overlap: float, interval: float, buffer: float, search: float = 0.0
) -> OrchestratorConfig:
    return OrchestratorConfig(
        chunk_duration_s=chunk,
        overlap_duration_s=overlap,
        processing_interval_s=interval,
        buffer_duration_s=buffer,
        sample_rate=RATE,
        boundary_search_s=search,
    )


@st.composite
def configs(draw: st.DrawFn) -> OrchestratorConfig:
    chunk = draw(st.integers(20, 400)) / 100
    overlap = draw(st.integers(1, int(chunk * 100) - 1)) / 100
    interval = draw(st.integers(1, int(chunk * 100))) / 100
    buffer = chunk + overlap + draw(st.integers(0, 300)) / 100
    search = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
    return _cfg(chunk, overlap, interval, buffer, search)


def _check_stream(audio: np.ndarray, chunks: list[Chunk], overlaps: dict[int, int]) -> None:
    """Chunks tile the audio exactly; each repeats exactly the expected overlap."""
    assert chunks, "no chunk emitted"
    assert chunks[0].start_sample == 0
    assert chunks[-1].end_sample == len(audio)
    assert all(not c.final for c in chunks[:-1])
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for prev, cur in itertools.pairwise(chunks):
        assert cur.overlap_samples == prev.end_sample - cur.start_sample
        expected = min(overlaps[cur.index], len(prev.samples))
        assert cur.overlap_samples == expected, (cur.index, cur.overlap_samples, expected)
        assert cur.end_sample > prev.end_sample  # always some new audio
    for c in chunks:
        assert np.array_equal(c.samples, audio[c.start_sample : c.end_sample])


@settings(max_examples=150, deadline=None)
@given(
    cfg=configs(),
    total=st.integers(1, 20_000),
    frames=st.lists(st.integers(1, 9000), min_size=1, max_size=40),
)
def test_chunks_cover_input_with_exact_overlap(
    cfg: OrchestratorConfig, total: int, frames: list[int]
) -> None:
    rng = np.random.default_rng(total)
    audio = rng.integers(-30000, 30000, total).astype(np.int16)
    chunker = Chunker(cfg, version=1)
    chunks: list[Chunk] = []
    pos, i = 0, 0
    while pos < total:
        n = frames[i % len(frames)]
        chunks += chunker.feed(audio[pos : pos + n])
        assert chunker.buffered_samples <= chunker.max_buffer_samples
        pos += n
        i += 1
    chunks += chunker.flush()
    assert chunker.received_samples == total
    overlap = round(cfg.overlap_duration_s * RATE)
    _check_stream(audio, chunks, dict.fromkeys(range(len(chunks)), overlap))
    hop = round(cfg.hop_duration_s * RATE)
    search = min(round(cfg.boundary_search_s * RATE), hop // 2)
    for c in chunks[:-1]:
        # one hop of new audio (less when the end moved to a quiet point) after the overlap;
        # the first chunk is one hop, the next ones repeat all the audio until it fits
        assert hop - search <= len(c.samples) - c.overlap_samples <= hop
        assert c.overlap_samples == min(
            overlap, c.end_sample - (len(c.samples) - c.overlap_samples)
        )
    assert all(len(c.samples) <= round(cfg.chunk_duration_s * RATE) for c in chunks)
    assert {c.config_version for c in chunks} == {1}


@settings(max_examples=150, deadline=None)
@given(
    first=configs(),
    second=configs(),
    total=st.integers(1, 20_000),
    switch_at=st.integers(0, 20_000),
    frame=st.integers(1, 5000),
)
def test_config_change_takes_effect_at_next_chunk(
    first: OrchestratorConfig,
    second: OrchestratorConfig,
    total: int,
    switch_at: int,
    frame: int,
) -> None:
    rng = np.random.default_rng(total + switch_at)
    audio = rng.integers(-30000, 30000, total).astype(np.int16)
    chunker = Chunker(first, version=1)
    chunks: list[Chunk] = []
    switched = False
    pos = 0
    while pos < total:
        if not switched and pos >= switch_at:
            chunks += chunker.apply(second, version=2)
            switched = True
            assert chunker.buffered_samples <= chunker.max_buffer_samples
        chunks += chunker.feed(audio[pos : pos + frame])
        assert chunker.buffered_samples <= chunker.max_buffer_samples
        pos += frame
    chunks += chunker.flush()
    ov1 = round(first.overlap_duration_s * RATE)
    ov2 = round(second.overlap_duration_s * RATE)
    # The first chunk after the switch can reach back only as far as the old config's
    # buffer bound kept audio: max(overlap, buffer - hop) of the old config.
    kept_by_first = max(
        ov1, round(first.buffer_duration_s * RATE) - round(first.hop_duration_s * RATE)
    )
    expected = {}
    for c in chunks:
        if c.config_version == 1:
            expected[c.index] = ov1
        elif c.index > 0 and chunks[c.index - 1].config_version == 1:
            expected[c.index] = min(ov2, kept_by_first)
        else:
            expected[c.index] = ov2
    _check_stream(audio, chunks, expected)
    versions = [c.config_version for c in chunks]
    assert versions == sorted(versions)  # once switched, never back
    if switched and total - switch_at > 0:
        assert versions[-1] == 2


def test_preset_layout_in_seconds() -> None:
    cfg = OrchestratorConfig(
        chunk_duration_s=2.5,
        overlap_duration_s=0.3,
        processing_interval_s=2.2,
        buffer_duration_s=6.0,
        boundary_search_s=0.0,
    )
    chunker = Chunker(cfg, version=3)
    audio = np.zeros(16000 * 10, dtype=np.int16)
    chunks = chunker.feed(audio) + chunker.flush()
    assert [(c.start_s, c.end_s) for c in chunks[:3]] == [(0.0, 2.2), (1.9, 4.4), (4.1, 6.6)]
    assert chunks[1].overlap_s == pytest.approx(0.3)
    assert chunks[-1].end_s == 10.0
    assert chunks[-1].final
    assert all(c.config_version == 3 for c in chunks)


def test_chunk_ends_in_the_quiet_gap() -> None:
    cfg = OrchestratorConfig(
        chunk_duration_s=3.0,
        overlap_duration_s=0.5,
        processing_interval_s=2.5,
        buffer_duration_s=4.0,
        boundary_search_s=0.5,
    )
    rng = np.random.default_rng(1)
    audio = rng.integers(-8000, 8000, 16000 * 6).astype(np.int16)
    audio[int(16000 * 2.20) : int(16000 * 2.30)] = 0  # a pause 0.2-0.3 s before 2.5 s
    chunks = Chunker(cfg).feed(audio)
    assert 2.20 < chunks[0].end_s < 2.30
    assert chunks[1].start_s == pytest.approx(chunks[0].end_s - 0.5)


def test_flush_without_audio_emits_nothing_and_closes() -> None:
    chunker = Chunker(OrchestratorConfig())
    assert chunker.flush() == []
    with pytest.raises(RuntimeError):
        chunker.feed(np.zeros(10, dtype=np.int16))


def test_flush_marks_last_chunk_final_when_no_tail() -> None:
    cfg = _cfg(2.0, 0.5, 1.5, 3.0)
    chunker = Chunker(cfg)
    chunks = chunker.feed(np.ones(1500, dtype=np.int16))  # exactly one chunk (one hop)
    assert len(chunks) == 1
    assert not chunks[0].final
    tail = chunker.flush()
    assert tail == []  # nothing new to send; the session layer closes on its own


def test_sample_rate_cannot_change_mid_session() -> None:
    chunker = Chunker(OrchestratorConfig())
    with pytest.raises(ValueError, match="sample_rate"):
        chunker.apply(OrchestratorConfig(sample_rate=8000), version=2)
