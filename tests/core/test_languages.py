import pytest

from c2kd.errors import UnknownLanguageError
from c2kd.languages import BENCHMARK_LANGUAGES, LANGUAGES, normalize_language, normalize_languages


def test_aliases_and_names():
    assert normalize_language("cz") == "cs"
    assert normalize_language(" DE ") == "de"
    assert normalize_language("zh_CN") == "zh"
    assert normalize_language("pt-BR") == "pt"
    assert normalize_language("Vietnamese") == "vi"
    assert normalize_languages(["en", "cz", "cs", "de"]) == ["en", "cs", "de"]


def test_unknown_code_suggests_close_matches():
    with pytest.raises(UnknownLanguageError, match="Did you mean"):
        normalize_language("germn")
    with pytest.raises(UnknownLanguageError):
        normalize_language("")


def test_every_benchmark_language_is_registered():
    for langs in BENCHMARK_LANGUAGES.values():
        assert all(code in LANGUAGES for code in langs)
    assert len(LANGUAGES) >= 100
