"""Validation of user queries: text, language hint, k. Every failure is a :class:`QueryError` saying what to fix."""

from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from c2kd.errors import C2KDError, UnknownLanguageError
from c2kd.languages import normalize_language

#: longest accepted query, in characters (the text tower reads at most ~40 tokens anyway)
MAX_QUERY_CHARS = 500
MAX_K = 1000
MAX_BATCH = 1000


class QueryError(C2KDError, ValueError):
    """A query that cannot be run: empty, too long, wrong type, unknown language, bad k."""


#: bidirectional controls: they reorder the text shown around them
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: characters that show nothing: a query of only these (and spaces) is empty. Kept inside a query (a zero-width
#: joiner or non-joiner shapes emoji and Persian or Indic words)
INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff")


def is_control(char: str) -> bool:
    """Whether ``char`` acts on a terminal instead of showing: C0/C1 controls (ESC, BEL, ...), bidi controls."""
    return unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS


def printable(text: str) -> str:
    """``text`` with each control character shown as its escape (``\\x1b``), safe to print on a terminal."""
    return "".join(char.encode("unicode_escape").decode("ascii") if is_control(char) else char for char in text)


def validate_text(text: object, what: str = "query") -> str:
    """Clean a query and check it is a non-empty string of at most :data:`MAX_QUERY_CHARS` characters.

    Runs of white space and control characters (ESC, BEL, bidi controls, ...) become one space; a query of only
    zero-width characters (:data:`INVISIBLE`) and spaces is empty.
    """
    if not isinstance(text, str):
        raise QueryError(f"the {what} must be a string, got {type(text).__name__}")
    clean = " ".join("".join(" " if is_control(char) else char for char in text).split())
    if not clean.translate({ord(char): None for char in INVISIBLE}).strip():
        raise QueryError(f"the {what} is empty: type a few words describing the video")
    if len(clean) > MAX_QUERY_CHARS:
        raise QueryError(f"the {what} has {len(clean)} characters; the limit is {MAX_QUERY_CHARS}. Shorten it.")
    return clean


def validate_language(code: object) -> str | None:
    """Normalise an optional language hint with the project's registry (``None``/"" -> None)."""
    if code is None or (isinstance(code, str) and not code.strip()):
        return None
    if not isinstance(code, str):
        raise QueryError(f"the language must be a code such as 'de', got {type(code).__name__}")
    try:
        return normalize_language(code)
    except UnknownLanguageError as exc:
        raise QueryError(str(exc)) from None


def validate_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise QueryError(f"k must be an integer, got {k!r}")
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k must be between 1 and {MAX_K}, got {k}")
    return k


@dataclass(frozen=True)
class Query:
    """A validated query: cleaned text and normalised language hint (None = not given)."""

    text: str
    lang: str | None = None

    @classmethod
    def make(cls, text: object, lang: object = None) -> Query:
        return cls(validate_text(text), validate_language(lang))


def read_queries(path: str | os.PathLike, default_lang: str | None = None) -> tuple[list[Query], list[str]]:
    """Queries from a file: JSON lines (``{"query": ..., "lang": ...}``) or plain text, one query per line.

    Blank lines and lines starting with ``#`` are skipped. A line that is not a valid query (empty text, unknown
    language, bad JSON, bytes that are not UTF-8) is skipped too and reported: returns the queries and one
    ``FILE:LINE: problem`` per skipped line. A file with no valid query is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise QueryError(f"queries file {path} not found" if not path.exists() else
                         f"queries file {path} is a folder; give a file of queries, one per line")
    out: list[Query] = []
    skipped: list[str] = []
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
        data = data[3:]
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            skipped.append(f"{path}:{number}: byte {raw[exc.start]:#04x} at column {exc.start + 1} is not UTF-8; "
                           "save the file as UTF-8")
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            if line.lstrip().startswith("{"):
                row = json.loads(line)
                text = row.get("query", row.get("text"))
                out.append(Query.make(text, row.get("lang", default_lang)))
            else:
                out.append(Query.make(line, default_lang))
        except (QueryError, json.JSONDecodeError) as exc:
            skipped.append(f"{path}:{number}: {exc}")
    if not out:
        first = f"; {skipped[0]}" if skipped else ""
        raise QueryError(f"{path} holds no queries (one per line, or JSON lines with a 'query' field){first}")
    if len(out) > MAX_BATCH * 100:
        raise QueryError(f"{path}: {len(out)} queries; split the file (at most {MAX_BATCH * 100})")
    return out, skipped
