"""Query validation and query files."""

from __future__ import annotations

import pytest

from c2kd.search.query import (
    MAX_QUERY_CHARS,
    Query,
    QueryError,
    printable,
    read_queries,
    validate_k,
    validate_language,
)


def test_text_is_cleaned_and_checked():
    assert Query.make("  a  dog\n runs ").text == "a dog runs"
    for bad in ("", "   \n\t", None, 3, ["a"]):
        with pytest.raises(QueryError):
            Query.make(bad)
    Query.make("x" * MAX_QUERY_CHARS)
    with pytest.raises(QueryError, match="limit is"):
        Query.make("x" * (MAX_QUERY_CHARS + 1))


def test_language_hint_uses_the_registry():
    assert validate_language("cz") == "cs" and validate_language("Japanese") == "ja"
    assert validate_language(None) is None and validate_language(" ") is None
    assert validate_language("sw") == "sw" and validate_language("yo") == "yo"  # never seen in training: fine
    with pytest.raises(QueryError, match="Unknown language code 'xx'"):
        validate_language("xx")
    with pytest.raises(QueryError):
        validate_language(5)


def test_k_bounds():
    assert validate_k(3) == 3
    for bad in (0, -1, 10_001, True, "5", 2.5):
        with pytest.raises(QueryError):
            validate_k(bad)


def test_query_file_formats(tmp_path):
    f = tmp_path / "q.txt"
    f.write_text('# comment\na dog runs\n\n{"query": "ein Hund", "lang": "de"}\n{"text": "un chien"}\n', "utf-8")
    queries, skipped = read_queries(f, default_lang="fr")
    assert queries == [Query("a dog runs", "fr"), Query("ein Hund", "de"), Query("un chien", "fr")]
    assert skipped == []
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    with pytest.raises(QueryError, match="no queries"):
        read_queries(empty)


def test_a_bad_line_is_skipped_and_reported_not_the_whole_batch(tmp_path):
    f = tmp_path / "q.txt"
    f.write_text('ok\n{"query": ""}\n{"query": "x", "lang": "klingon"}\n{"query": 5}\n\x1b\x07\nlast one\n', "utf-8")
    queries, skipped = read_queries(f)
    assert queries == [Query("ok"), Query("last one")]
    assert [problem.split(": ")[0] for problem in skipped] == [f"{f}:{n}" for n in (2, 3, 4, 5)]
    assert "empty" in skipped[0] and "klingon" in skipped[1]
    only_bad = tmp_path / "bad.txt"
    only_bad.write_text('{"query": "  "}\n', "utf-8")
    with pytest.raises(QueryError, match=r"no queries.*bad.txt:1: the query is empty"):
        read_queries(only_bad)


def test_control_characters_never_reach_the_model_or_the_terminal():
    assert Query.make("\x1b[31mred\x1b[0m \x07bell\u202eevil").text == "[31mred [0m bell evil"
    for bad in ("\x1b", "\x07\x00\x7f", "\u202e\u2066"):
        with pytest.raises(QueryError, match="empty"):
            Query.make(bad)
    assert Query.make("نیم\u200cفاصله").text == "نیم\u200cفاصله"  # a zero-width non-joiner is text, kept
    assert printable("id\x1b[2Jx\u202e") == "id\\x1b[2Jx\\u202e"
    assert printable("Ünïcode 犬") == "Ünïcode 犬"


def test_a_line_that_is_not_utf8_is_skipped_with_its_line_number(tmp_path):
    f = tmp_path / "q.txt"
    f.write_bytes(b'\xef\xbb\xbfdog\n\xff\ncat \xc3\n{"query": "\xfe"}\nbird\n')
    queries, skipped = read_queries(f)
    assert queries == [Query("dog"), Query("bird")]
    assert [problem.split(": ")[0] for problem in skipped] == [f"{f}:{n}" for n in (2, 3, 4)]
    assert "0xff" in skipped[0] and "UTF-8" in skipped[0] and "column 5" in skipped[1]
    with pytest.raises(QueryError, match="folder"):
        read_queries(tmp_path)


@pytest.mark.parametrize("invisible", ["\u200b", "\u200c", "\u200d", "\ufeff", "\u200b \u200d\ufeff\u2060"])
def test_a_query_of_only_zero_width_characters_is_empty(invisible):
    with pytest.raises(QueryError, match="empty"):
        Query.make(invisible)
    assert Query.make(f"dog{invisible}").text == f"dog{invisible}".strip()
