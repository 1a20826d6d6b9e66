"""Text normalisation and word error rate, for comparing transcripts with references.

Lower case, punctuation stripped, hyphens split, digits spelled out (tiny.en writes
"1455" where LJ Speech's references say "fourteen fifty-five").
"""

from __future__ import annotations

import re

__all__ = ["normalize_text", "normalize_word", "number_to_words", "word_error_rate"]

_ONES = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORDINAL_SUFFIX = re.compile(r"^(\d+)(st|nd|rd|th)$")
_ORDINALS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


_CONTRACTIONS = {
    "i'm": "i am",
    "you're": "you are",
    "we're": "we are",
    "they're": "they are",
    "i've": "i have",
    "you've": "you have",
    "we've": "we have",
    "they've": "they have",
    "i'll": "i will",
    "you'll": "you will",
    "we'll": "we will",
    "they'll": "they will",
}


def _below_100(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")


def _below_1000(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    parts = []
    if hundreds:
        parts.append(f"{_ONES[hundreds]} hundred")
    if rest or not hundreds:
        parts.append(_below_100(rest))
    return " ".join(parts)


def number_to_words(n: int) -> str:
    """Spell out a non-negative integer; 1100–1999 read as years ("fourteen fifty five")."""
    if 1100 <= n <= 1999 and n % 100:
        return f"{_below_100(n // 100)} {_below_100(n % 100)}"
    if 1100 <= n <= 1999:
        return f"{_below_100(n // 100)} hundred"
    parts = []
    for value, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= value:
            parts.append(f"{_below_1000(n // value)} {name}")
            n %= value
    if n or not parts:
        parts.append(_below_1000(n))
    return " ".join(parts)


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINALS:
        last = _ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()


def normalize_word(word: str) -> str:
    """One token, normalised (may expand to several words for numbers)."""
    return normalize_text(word)


def normalize_text(text: str) -> str:
    """Lower-case, strip punctuation, spell out numbers; words joined by single spaces."""
    text = text.lower().replace("’", "'").replace("-", " ").replace("—", " ").replace("–", " ")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 -> 1000
    out: list[str] = []
    for raw in text.split():
        token = re.sub(r"[^\w']", "", raw).strip("'")
        if not token:
            continue
        if token in _CONTRACTIONS:
            out.append(_CONTRACTIONS[token])
            continue
        if token.isdigit():
            out.append(number_to_words(int(token)))
            continue
        m = _ORDINAL_SUFFIX.match(token)
        if m:
            out.append(_ordinal(number_to_words(int(m.group(1)))))
            continue
        out.append(token.replace("'", ""))
    return " ".join(out)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of ``hypothesis`` against ``reference`` after normalising both."""
    import jiwer  # local import: only the CLI, tests and bench need it

    ref = normalize_text(reference)
    hyp = normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp))
