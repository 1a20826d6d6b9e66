"""Pure tests of the transcript merge rule."""

from __future__ import annotations

from workers.orchestrator.merge import ChunkWords, TranscriptMerger, Word, join_words
from workers.orchestrator.textnorm import normalize_text, number_to_words, word_error_rate


def _words(chunk: int, *spec: tuple[str, float, float]) -> list[Word]:
    return [Word(start, end, f" {text}", 0.9, chunk) for text, start, end in spec]


def test_aligned_seam_keeps_each_word_once() -> None:
    merger = TranscriptMerger()
    merger.add(
        ChunkWords(
            0,
            0.0,
            3.0,
            0.0,
            _words(
                0,
                ("ask", 0.1, 0.4),
                ("not", 0.5, 0.8),
                ("what", 0.9, 1.2),
                ("your", 2.0, 2.3),
                ("coun", 2.7, 3.0),
            ),
        )
    )
    merger.add(
        ChunkWords(
            1,
            2.0,
            5.0,
            1.0,
            _words(
                1,
                ("or", 2.0, 2.1),
                ("your", 2.05, 2.35),
                ("country", 2.6, 3.2),
                ("can", 3.3, 3.5),
            ),
        )
    )
    assert normalize_text(merger.text) == "ask not what your country can"
    assert merger.seams[-1].method == "aligned"


def test_midpoint_rule_when_nothing_agrees() -> None:
    merger = TranscriptMerger()
    merger.add(ChunkWords(0, 0.0, 3.0, 0.0, _words(0, ("hello", 0.2, 0.6), ("wor", 2.8, 3.0))))
    # overlap [2.8, 3.0): t* = 2.9; "wor" (mid 2.9) is dropped, chunk 1's "world" kept
    merger.add(ChunkWords(1, 2.8, 5.0, 0.2, _words(1, ("world", 2.8, 3.3), ("again", 3.5, 3.9))))
    assert normalize_text(merger.text) == "hello world again"
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
    c2 = ChunkWords(2, 3.8, 6.0, 0.2, _words(2, ("three", 4.1, 4.5)))
    assert merger.add(c1) is False  # waits for chunk 0
    assert merger.add(c0) is True
    assert merger.add(c1) is False  # duplicate delivery ignored
    merger.add(c2)
    assert normalize_text(merger.text) == "one two three"
    assert merger.next_index == 3


def test_empty_chunks_do_not_break_the_seam() -> None:
    merger = TranscriptMerger()
    merger.add(ChunkWords(0, 0.0, 2.0, 0.0, []))
    merger.add(ChunkWords(1, 1.8, 4.0, 0.2, _words(1, ("hi", 2.1, 2.4))))
    merger.add(ChunkWords(2, 3.8, 6.0, 0.2, []))
    assert normalize_text(merger.text) == "hi"


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
