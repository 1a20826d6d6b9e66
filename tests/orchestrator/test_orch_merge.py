"""Pure tests of the transcript merge rule: final and interim words, seams."""

from __future__ import annotations

from workers.orchestrator.config import OrchestratorConfig
from workers.orchestrator.merge import ChunkWords, TranscriptMerger, Word, join_words
from workers.orchestrator.session import Session
from workers.orchestrator.textnorm import normalize_text, number_to_words, word_error_rate


def _words(chunk: int, *spec: tuple[str, float, float]) -> list[Word]:
    return [Word(start, end, f" {text}", 0.9, chunk) for text, start, end in spec]


def _texts(words: list[Word]) -> str:
    return normalize_text(join_words(words))


def test_words_become_final_when_two_overlapping_decodes_agree() -> None:
    """LocalAgreement: chunk k's reading is interim until chunk k+1 agrees on it."""
    merger = TranscriptMerger()
    # Growing chunks from the session start: [0, 2), [0, 4), [0, 6)
    merger.add(ChunkWords(0, 0.0, 2.0, 0.0, _words(0, ("ask", 0.1, 0.4), ("not", 0.5, 0.8))))
    assert merger.final_words == []
    assert _texts(merger.interim_words) == "ask not"
    merger.add(
        ChunkWords(
            1,
            0.0,
            4.0,
            2.0,
            _words(1, ("ask", 0.1, 0.4), ("not", 0.5, 0.8), ("what", 1.9, 2.2), ("your", 3.6, 4.0)),
        )
    )
    assert _texts(merger.final_words) == "ask not"  # both decodes agree
    assert _texts(merger.interim_words) == "what your"  # heard once so far
    assert merger.seams[-1].method == "agreed"
    merger.add(
        ChunkWords(
            2,
            0.0,
            6.0,
            4.0,
            _words(
                2,
                ("ask", 0.1, 0.4),
                ("not", 0.5, 0.8),
                ("what", 1.9, 2.2),
                ("you", 3.6, 3.8),  # the second decode disagrees: stays interim
                ("can", 4.5, 4.8),
            ),
        )
    )
    assert _texts(merger.final_words) == "ask not what"
    assert _texts(merger.interim_words) == "you can"
    assert _texts(merger.words) == "ask not what you can"
    assert all(w.chunk == 2 for w in merger.interim_words)


def test_a_word_cut_by_the_right_edge_is_replaced_not_kept_twice() -> None:
    """Chunk 0 ends inside "example" and hears "exam"; chunk 1 hears all of it."""
    merger = TranscriptMerger()
    merger.add(ChunkWords(0, 0.0, 3.0, 0.0, _words(0, ("an", 2.2, 2.4), ("exam", 2.5, 3.0))))
    assert _texts(merger.interim_words) == "an exam"
    merger.add(
        ChunkWords(
            1, 0.0, 4.5, 3.0, _words(1, ("an", 2.2, 2.4), ("example", 2.5, 3.3), ("of", 3.4, 3.6))
        )
    )
    assert _texts(merger.final_words) == "an"
    assert _texts(merger.interim_words) == "example of"
    merger.add(
        ChunkWords(
            2,
            1.5,
            6.0,
            3.0,
            _words(2, ("an", 2.2, 2.4), ("example", 2.5, 3.3), ("of", 3.4, 3.6), ("it", 5.0, 5.2)),
            final=True,
        )
    )
    assert _texts(merger.final_words) == "an example of it"
    assert merger.interim_words == []


def test_short_overlap_keeps_a_cut_word_once_in_the_fuller_reading() -> None:
    """0.2 s overlap at 2.8-3.0 s: the word spans the seam; each chunk hears part of it."""
    merger = TranscriptMerger()
    merger.add(ChunkWords(0, 0.0, 3.0, 0.0, _words(0, ("an", 2.2, 2.4), ("exam", 2.5, 2.88))))
    merger.add(ChunkWords(1, 2.8, 6.0, 0.2, _words(1, ("example", 2.82, 3.4), ("of", 3.5, 3.7))))
    # "exam" (mid < t* = 2.9) is forced final, "example" (mid > t*) starts the new chunk:
    # one word; chunk 1 heard more of it (2.8 → 3.4 against 2.5 → 3.0).
    assert _texts(merger.words) == "an example of"
    merger = TranscriptMerger()
    merger.add(ChunkWords(0, 0.0, 3.0, 0.0, _words(0, ("an", 1.9, 2.1), ("example", 2.2, 2.88))))
    merger.add(ChunkWords(1, 2.8, 6.0, 0.2, _words(1, ("sample", 2.82, 3.0), ("of", 3.1, 3.3))))
    # Here chunk 0 heard most of the word (2.2 → 3.0) and chunk 1 only its tail.
    assert _texts(merger.words) == "an example of"


def test_midpoint_rule_when_nothing_agrees() -> None:
    merger = TranscriptMerger()
    merger.add(ChunkWords(0, 0.0, 3.0, 0.0, _words(0, ("hello", 0.2, 0.6), ("wor", 2.8, 3.0))))
    # overlap [2.8, 3.0): t* = 2.9; "wor" (mid 2.9) is not final, chunk 1's "world" replaces it
    merger.add(ChunkWords(1, 2.8, 5.0, 0.2, _words(1, ("world", 2.8, 3.3), ("again", 3.5, 3.9))))
    assert normalize_text(merger.text) == "hello world again"
    assert _texts(merger.final_words) == "hello"
    assert merger.seams[-1].method == "midpoint"


def test_midpoint_rule_drops_the_later_chunks_edge_word() -> None:
    merger = TranscriptMerger()
    merger.add(ChunkWords(0, 0.0, 3.0, 0.0, _words(0, ("big", 2.0, 2.4), ("dog", 2.45, 2.8))))
    # chunk 1 hears only the tail of "dog" (mid 2.875 < t* = 2.9) and calls it "og"
    merger.add(ChunkWords(1, 2.8, 5.0, 0.2, _words(1, ("og", 2.8, 2.95), ("runs", 3.1, 3.5))))
    assert normalize_text(merger.text) == "big dog runs"


def test_out_of_order_and_duplicate_chunks() -> None:
    merger = TranscriptMerger()
    c0 = ChunkWords(0, 0.0, 2.0, 0.0, _words(0, ("one", 0.1, 0.5)))
    c1 = ChunkWords(1, 1.8, 4.0, 0.2, _words(1, ("two", 2.1, 2.5)))
    c2 = ChunkWords(2, 3.8, 6.0, 0.2, _words(2, ("three", 4.1, 4.5)), final=True)
    assert merger.add(c1) is False  # waits for chunk 0
    assert merger.add(c0) is True
    assert merger.add(c1) is False  # duplicate delivery ignored
    merger.add(c2)
    assert normalize_text(merger.final_text) == "one two three"
    assert merger.next_index == 3


def test_empty_chunks_do_not_break_the_seam() -> None:
    merger = TranscriptMerger()
    merger.add(ChunkWords(0, 0.0, 2.0, 0.0, []))
    merger.add(ChunkWords(1, 1.8, 4.0, 0.2, _words(1, ("hi", 2.1, 2.4))))
    merger.add(ChunkWords(2, 3.8, 6.0, 0.2, []))
    assert normalize_text(merger.text) == "hi"


def test_session_document_marks_final_and_interim_words() -> None:
    config = OrchestratorConfig(
        chunk_duration_s=4.0,
        overlap_duration_s=2.0,
        processing_interval_s=2.0,
        buffer_duration_s=6.0,
        sample_rate=1000,
        max_chunks_in_flight=0,
    )
    session = Session("s1", config, 3, clock=lambda: 0.0)
    chunks = session.feed(b"\x00\x00" * 4000, 0.0)
    assert [(c.start_s, c.end_s) for c in chunks] == [(0.0, 2.0), (0.0, 4.0)]

    def body(chunk_id: int, *spec: tuple[str, float, float]) -> dict[str, object]:
        words = [{"start": s, "end": e, "word": f" {t}", "probability": 0.9} for t, s, e in spec]
        return {"chunk_id": chunk_id, "segments": [{"words": words}]}

    session.on_transcript(body(0, ("so", 0.2, 0.5), ("my", 1.7, 2.0)))
    doc = session.document()
    assert doc["final"] is False
    assert [w["final"] for w in doc["words"]] == [False, False]
    assert (doc["final_text"], doc["interim_text"], doc["text"]) == ("", "so my", "so my")
    session.on_transcript(body(1, ("so", 0.2, 0.5), ("my", 1.7, 2.0), ("fellow", 3.5, 3.9)))
    doc = session.document()
    assert [(w["word"], w["final"]) for w in doc["words"]] == [
        (" so", True),
        (" my", True),
        (" fellow", False),
    ]
    assert (doc["final_text"], doc["interim_text"]) == ("so my", "fellow")
    last = session.feed(b"\x00\x00" * 500, 4.0) + session.end()
    assert [(c.start_s, c.end_s, c.final) for c in last] == [(2.0, 4.5, True)]
    assert session.document()["final"] is False
    session.on_transcript(body(2, ("my", 1.7, 2.0), ("fellow", 3.5, 4.0)))
    doc = session.document()
    assert doc["final"] is True
    assert all(w["final"] for w in doc["words"])
    assert doc["interim_text"] == ""
    assert doc["text"] == doc["final_text"] == "so my fellow"


def test_join_words_handles_whisper_spacing() -> None:
    words = [
        Word(0, 1, " Hello,", chunk=0),
        Word(1, 2, " i", chunk=0),
        Word(2, 3, ".e.", chunk=0),
        Word(3, 4, "world", chunk=1),
    ]
    assert join_words(words) == "Hello, i.e. world"


def test_normalizer_spells_numbers_like_ljspeech() -> None:
    assert number_to_words(1455) == "fourteen fifty five"
    assert number_to_words(42) == "forty two"
    assert number_to_words(1500) == "fifteen hundred"
    assert number_to_words(2024) == "two thousand twenty four"
    assert normalize_text("The 15th century, 42-line Bible!") == (
        "the fifteenth century forty two line bible"
    )
    assert word_error_rate("In fourteen sixty-five", "in 1465") == 0.0
    assert word_error_rate("a b c d", "a b x d") == 0.25


def test_cli_shows_interim_words_greyed_and_the_tail_that_fits() -> None:
    from workers.orchestrator.__main__ import DIM, RESET, live_transcript

    doc = {"final_text": "ask not what your country", "interim_text": "can do for"}
    line = live_transcript(doc, 80)
    assert line == f"ask not what your country {DIM}can do for{RESET}"
    tail = live_transcript(doc, 20)  # too narrow: the end is kept, final part shortened
    assert tail.endswith(f"{DIM}can do for{RESET}")
    assert len(tail.replace(DIM, "").replace(RESET, "")) <= 20
    assert DIM not in live_transcript({"final_text": "all decided", "interim_text": ""}, 80)


def test_pause_rule_makes_the_words_before_a_pause_final_at_the_first_decode() -> None:
    """final_after_pause_s: a word followed by enough silence in a chunk's reading is final
    at once, with every word before it; words running on to the chunk edge stay interim."""
    words = _words(
        0,
        ("ask", 0.1, 0.4),
        ("not", 0.5, 0.8),  # 0.8 s of silence follows
        ("what", 1.6, 1.9),
        ("your", 2.0, 2.3),
        ("country", 2.4, 3.9),  # still being spoken at the chunk edge (4.0)
    )
    off = TranscriptMerger()
    off.add(ChunkWords(0, 0.0, 4.0, 0.0, words))
    assert off.final_words == []  # without the rule: nothing final after one decode
    merger = TranscriptMerger(pause_final_s=0.5)
    merger.add(ChunkWords(0, 0.0, 4.0, 0.0, words))
    assert _texts(merger.final_words) == "ask not"
    assert _texts(merger.interim_words) == "what your country"
    assert merger.seams[-1].method == "first"
    assert merger.seams[-1].paused == 2
    # a shorter pause than the setting changes nothing
    strict = TranscriptMerger(pause_final_s=0.9)
    strict.add(ChunkWords(0, 0.0, 4.0, 0.0, words))
    assert strict.final_words == []


def test_pause_rule_counts_silence_before_the_chunk_end_and_never_doubles_a_word() -> None:
    merger = TranscriptMerger(pause_final_s=0.5)
    merger.add(ChunkWords(0, 0.0, 2.0, 0.0, _words(0, ("ask", 0.1, 0.4), ("not", 0.5, 1.9))))
    assert merger.final_words == []  # "not" runs to the edge: it may be cut
    # the next chunk disagrees on the first word (no agreement) but hears silence after
    # "not": both become final by the pause rule, from this chunk's reading
    merger.add(ChunkWords(1, 0.0, 4.0, 2.0, _words(1, ("asked", 0.1, 0.4), ("nothing", 0.5, 1.2))))
    assert _texts(merger.final_words) == "asked nothing"
    assert merger.interim_words == []
    assert merger.seams[-1].method == "pause"
    # a later chunk repeating the same audio adds no word twice
    merger.add(
        ChunkWords(
            2,
            0.0,
            6.0,
            4.0,
            _words(2, ("asked", 0.1, 0.4), ("nothing", 0.5, 1.2), ("more", 4.5, 4.8)),
        )
    )
    assert _texts(merger.final_words) == "asked nothing more"
    assert merger.interim_words == []


def test_session_takes_the_pause_rule_from_its_config_and_from_a_hot_change() -> None:
    config = OrchestratorConfig(final_after_pause_s=0.5)
    session = Session("s", config, 1)
    chunks = session.feed(b"\0\0" * round(config.hop_duration_s * config.sample_rate), 0.0)
    assert [c.index for c in chunks] == [0]
    body = {
        "chunk_id": 0,
        "segments": [
            {
                "words": [
                    {"start": 0.1, "end": 0.4, "word": " ask"},
                    {"start": 0.5, "end": 0.7, "word": " not"},
                ]
            }
        ],
    }
    assert session.on_transcript(body)
    document = session.document()
    assert [w["final"] for w in document["words"]] == [True, True]
    assert document["final_text"] == "ask not"
    assert document["interim_text"] == ""
    off = Session("t", OrchestratorConfig(), 1)
    off.feed(b"\0\0" * round(config.hop_duration_s * config.sample_rate), 0.0)
    off.on_transcript(body)
    assert [w["final"] for w in off.document()["words"]] == [False, False]
    off.apply(config, 2)  # the rule follows a hot change from the next merged chunk
    second = off.feed(b"\0\0" * round(config.hop_duration_s * config.sample_rate), 1.5)
    assert [c.index for c in second] == [1]
    off.on_transcript({**body, "chunk_id": 1})
    assert [w["final"] for w in off.document()["words"]] == [True, True]
