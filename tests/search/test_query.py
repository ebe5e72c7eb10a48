"""Query validation and query files."""

from __future__ import annotations

import pytest

from c2kd.search.query import MAX_QUERY_CHARS, Query, QueryError, read_queries, validate_k, validate_language


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
    queries = read_queries(f, default_lang="fr")
    assert queries == [Query("a dog runs", "fr"), Query("ein Hund", "de"), Query("un chien", "fr")]
    bad = tmp_path / "bad.txt"
    bad.write_text('ok\n{"query": "x", "lang": "klingon"}\n', "utf-8")
    with pytest.raises(QueryError, match=r"bad.txt:2"):
        read_queries(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    with pytest.raises(QueryError, match="no queries"):
        read_queries(empty)
