"""Person names without a model: name-shaped words, bundled word lists, context rules.

A capitalised word is a name only with evidence: a context that introduces one (``Dear``,
``my name is``, ``Name:``, a title, a signature after ``Regards,``) or a given name from the
bundled multilingual list followed by a surname-shaped word. Given names that are also common
words, places or product names (``Will``, ``Paris``, ``Claude``) need a strong context.
"""

from __future__ import annotations

import re
from enum import Enum
from functools import cache
from importlib import resources

__all__ = [
    "LOWER",
    "NAMES",
    "NAME_WORD",
    "PARTICLE",
    "UPPER",
    "Evidence",
    "ambiguous_given_names",
    "given_names",
    "name_span",
    "not_name_words",
]


def _letters(predicate_name: str) -> str:
    """Latin letters beyond ASCII (Latin-1, Extended-A/B) as a regex class body."""
    chars = (chr(c) for c in range(0xC0, 0x250))
    return "".join(ch for ch in chars if getattr(ch, predicate_name)() and ch.isalpha())


UPPER = "A-Z" + _letters("isupper")
LOWER = "a-z" + _letters("islower")

# Surname shapes: Smith, O'Brien, McDonald, MacLeod, D'Angelo, Smith-Jones, Müller, Łukasz.
# Possessive quantifiers: nothing after a name word can start with a lower-case letter, so
# giving letters back on a failed match is wasted work.
NAME_WORD = (
    rf"[{UPPER}](?:['’][{UPPER}])?+[{LOWER}]++(?:[{UPPER}][{LOWER}]++)?+(?:-[{UPPER}][{LOWER}]++)?+"
)
_TOKEN = rf"(?:{NAME_WORD}|[{UPPER}]\.)"
_PARTICLES = (
    "van", "von", "der", "den", "de", "da", "di", "del", "della", "du", "le", "la", "al", "el",
    "bin", "ibn", "ter", "ten", "dos", "das", "do", "zu", "af", "av", "y",
)
PARTICLE = "(?:" + "|".join(_PARTICLES) + ")"
# One to four name words on one line, with particles (Ludwig van Beethoven) and initials.
NAMES = rf"{NAME_WORD}(?:[ \t]+(?:{PARTICLE}[ \t]+){{0,2}}{_TOKEN}){{0,3}}"

_WORD_RE = re.compile(r"\S+")
_PARTICLE_SET = frozenset(_PARTICLES)


class Evidence(Enum):
    """How much the context around a name-shaped match says that it is a name."""

    STRONG = "strong"  # Dear X, my name is X, Mr X, a signature: any capitalised words
    LABELLED = "labelled"  # Name: X, "name": "X": two words, or a known given name
    WEAK = "weak"  # Hi X, I am X: a known, unambiguous given name
    PAIR = "pair"  # no context: a known, unambiguous given name and a surname


@cache
def _load(filename: str) -> frozenset[str]:
    """Whitespace-separated words of a bundled data file; ``#`` starts a comment."""
    text = resources.files("llm_proxy.redact").joinpath("data", filename).read_text("utf-8")
    words: set[str] = set()
    for line in text.splitlines():
        words.update(line.split("#", 1)[0].split())
    return frozenset(words)


def given_names() -> frozenset[str]:
    """Common given names across many languages, capitalised as written."""
    return _load("given_names.txt")


def ambiguous_given_names() -> frozenset[str]:
    """Given names that are also words, places or products: they need a strong context."""
    return _load("ambiguous_given_names.txt")


def not_name_words() -> frozenset[str]:
    """Capitalised words that never start or end a name (The, Team, Customer, Monday, …)."""
    return _load("not_name_words.txt")


def _is_given(word: str, *, allow_ambiguous: bool) -> bool:
    candidates = (word, word.split("-", 1)[0])
    if not any(w in given_names() for w in candidates):
        return False
    return allow_ambiguous or not any(w in ambiguous_given_names() for w in candidates)


def name_span(text: str, start: int, end: int, evidence: Evidence) -> tuple[int, int] | None:
    """Trim a name-shaped match to the name itself, or reject it.

    Trailing particles, initials and words such as ``Team`` are dropped; a match that starts
    with such a word is no name. What else is required depends on the ``evidence``.
    """
    words = [(m.start(), m.end(), m.group()) for m in _WORD_RE.finditer(text, start, end)]
    stop = not_name_words()
    if not words or words[0][2] in stop:
        return None
    while words and (words[-1][2] in stop or words[-1][2] in _PARTICLE_SET
                     or words[-1][2].endswith(".")):
        words.pop()
    name_words = [w for _, _, w in words if w not in _PARTICLE_SET]
    if not name_words:
        return None
    first = name_words[0]
    if evidence is Evidence.LABELLED and not (
        len(name_words) > 1 or _is_given(first, allow_ambiguous=True)
    ):
        return None
    if evidence in (Evidence.WEAK, Evidence.PAIR) and not _is_given(first, allow_ambiguous=False):
        return None
    if evidence is Evidence.PAIR and (
        len(name_words) < 2 or any(w in stop for w in name_words[1:])
    ):
        return None
    return words[0][0], words[-1][1]
