"""Text helpers shared by layers: windows over long texts, abbreviation definitions, and the batch of
texts that carries the facts several layers need about each text."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

_BREAKS = ("\n\n", "\n", ". ", "; ", ", ", " ")


def char_windows(text: str, max_chars: int) -> Iterator[tuple[int, str]]:
    """Cut ``text`` into pieces of at most ``max_chars``, preferring paragraph, sentence, then word
    boundaries. Yields ``(offset, piece)``; the pieces concatenate back to ``text``."""
    start = 0
    while len(text) - start > max_chars:
        limit = start + max_chars
        cut = -1
        for sep in _BREAKS:
            pos = text.rfind(sep, start + max_chars // 2, limit)
            if pos != -1:
                cut = pos + len(sep)
                break
        if cut <= start:
            cut = limit
        yield start, text[start:cut]
        start = cut
    yield start, text[start:]


# a sentence end: ". ", "! " or "? " then a capital or a digit, but not after an initial ("E. coli", "John F.
# Kennedy") or a title ("Dr. Smith"); or "; " or a line break
_SENTENCE_END = re.compile(r"(?<!\b[A-Z])(?<!\b(?:Dr|Mr|Ms|St|vs|No|al))[.!?]\s+[A-Z0-9]|;\s|\n")
_BRACKETS = ("()", "[]", "{}")


def well_formed(span: str) -> bool:
    """False for a span that runs across a sentence end (see ``_SENTENCE_END``) or leaves
    a bracket unclosed: a model's span over two sentences or half a parenthesis is no mention."""
    if _SENTENCE_END.search(span):
        return False
    return all(span.count(a) == span.count(b) for a, b in _BRACKETS)


# "(SF)", or "(SF; ...)" / "(SF, ...)": the short form ends at the first ";" or ","
_PAREN = re.compile(r"\(\s*([^()\s;,][^();,]{0,9}?)\s*([;,)])")
_WORD = re.compile(r"\S+")
# the long form of a short form split at a comma never starts with one of these: "risk of stroke (OR, 2.3)"
# defines no "OR" = "of stroke"
_FUNCTION_WORDS = frozenset(["a", "an", "and", "as", "at", "by", "for", "from", "in", "of", "on", "or", "the",
                             "to", "with"])


def short_form_pattern(shorts) -> re.Pattern:
    """Where any of ``shorts`` stands as a word of its own: not inside a longer word or a hyphenated
    name ("HT" is not in "5-HT"); the longest first."""
    alternatives = "|".join(re.escape(s) for s in sorted(shorts, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])")


def abbreviations(text: str) -> dict[str, str]:
    """Short forms defined in the text as ``long form (SF)`` mapped to their long form.

    The Schwartz-Hearst rule: every character of the short form appears, in order, in the long form,
    its first character starting a word; the long form has at most ``min(len(SF) + 5, 2 * len(SF))`` words.
    A plural short form ("ventricular septal defects (VSDs)") defines its singular ("VSD") too.
    """
    found: dict[str, str] = {}
    for match in _PAREN.finditer(text):
        short = match.group(1)
        if not (2 <= len(short) <= 10) or not any(c.isalpha() for c in short) or not short[0].isalnum():
            continue
        if len(short.split()) > 2 or short.endswith("."):  # "(i.e., ...)", "(e.g., ...)": no short form
            continue
        words = _WORD.findall(text[max(0, match.start() - 300) : match.start()])
        window = words[-min(len(short) + 5, 2 * len(short)) :]
        singular = short[:-1] if _is_plural(short) else None
        candidate = " ".join(window)
        long_form = _best_long_form(short, candidate) or (singular and _best_long_form(singular, candidate))
        if not long_form or (match.group(2) != ")" and not _plausible_before_a_comma(short, long_form)):
            continue
        found.setdefault(short, long_form)
        if singular:
            found.setdefault(singular, long_form)
    return found


def expanded(mention: str, defined: dict[str, str]) -> str | None:
    """``mention`` with the short forms ``defined`` in its text written out ("GI AEs" -> "gastrointestinal
    adverse events"), whether it is one or holds some as words; None when it holds none."""
    whole = defined.get(mention.strip())
    if whole or not defined:
        return whole
    out = short_form_pattern(defined).sub(lambda m: defined[m.group(0)], mention)
    return out if out != mention else None


def _plausible_before_a_comma(short: str, long_form: str) -> bool:
    """A short form followed by more in its parenthesis ("(OR, 2.3; 95% CI ...)", "(eg, warfarin)") is
    one only with a capital letter and a long form that does not start with a function word."""
    return any(c.isupper() for c in short) and long_form.split()[0].lower() not in _FUNCTION_WORDS


def _is_plural(short: str) -> bool:
    """"VSDs", "EDDs": an upper-case short form of two or more letters with a plural "s"."""
    return len(short) >= 3 and short.endswith("s") and short[:-1].isupper()


def _best_long_form(short: str, candidate: str) -> str | None:
    s_idx, l_idx = len(short) - 1, len(candidate) - 1
    while s_idx >= 0:
        ch = short[s_idx].lower()
        if not ch.isalnum():
            s_idx -= 1
            continue
        while l_idx >= 0 and (
            candidate[l_idx].lower() != ch or (s_idx == 0 and l_idx > 0 and candidate[l_idx - 1].isalnum())
        ):
            l_idx -= 1
        if l_idx < 0:
            return None
        s_idx -= 1
        l_idx -= 1
    start = candidate.rfind(" ", 0, l_idx + 1) + 1
    long_form = candidate[start:].strip(" ,;:")
    if len(long_form) <= len(short) or long_form.lower().startswith(short.lower() + " "):
        return None
    return long_form


class TextFacts:
    """What several layers need to know about one text, each found once, when first asked for."""

    __slots__ = ("_abbreviations", "text")

    def __init__(self, text: str):
        self.text = text
        self._abbreviations: dict[str, str] | None = None

    @property
    def abbreviations(self) -> dict[str, str]:
        """Short forms defined in the text ("long form (SF)") -> their long form."""
        if self._abbreviations is None:
            self._abbreviations = abbreviations(self.text)
        return self._abbreviations


class TextBatch(list):
    """The texts of one ``execute`` call (a list of strings) with their :class:`TextFacts`.

    The executor hands this one object to every layer that reads the texts, so a fact about a text
    is found once per batch, whichever layers ask for it.
    """

    def __init__(self, texts: Iterable[str] = ()):
        super().__init__(texts)
        self.facts = [TextFacts(text) for text in self]


def facts_of(texts: Sequence[str]) -> list[TextFacts]:
    """The facts of a batch's texts: those it carries, or new ones for a plain list."""
    return texts.facts if isinstance(texts, TextBatch) else [TextFacts(text) for text in texts]
