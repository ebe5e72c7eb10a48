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


def test_a_huge_language_hint_is_refused_without_look_alikes_or_an_echo():
    for huge in ("germanic" * 20, "x" * 1_000_000):
        with pytest.raises(UnknownLanguageError) as err:
            normalize_language(huge)
        message = str(err.value)
        assert len(message) < 300 and huge[:40] not in message and "Did you mean" not in message
        assert f"{len(huge)} characters" in message
    assert normalize_language("  bahasa indonesia  ") == "id"  # the longest known name still works


def test_iso_639_2_codes_are_accepted_and_a_name_prefix_suggests_that_language():
    assert [normalize_language(c) for c in ("deu", "ger", "ces", "cze", "fra", "fre", "zho", "chi", "eng")] == \
        ["de", "de", "cs", "cs", "fr", "fr", "zh", "zh", "en"]
    with pytest.raises(UnknownLanguageError) as info:
        normalize_language("germ")
    assert "'de' (German)" in str(info.value)
    with pytest.raises(UnknownLanguageError) as info:
        normalize_language("czec")
    assert "'cs' (Czech)" in str(info.value)


def test_every_iso_639_2_code_maps_to_a_registered_language():
    from c2kd.languages import ISO_639_2

    assert all(code in LANGUAGES for code in ISO_639_2.values())
    assert not set(ISO_639_2) & set(LANGUAGES)  # three-letter codes never shadow a registry code


def test_the_missing_dataset_hint_names_commands_that_exist(tmp_path):
    import re

    from typer.testing import CliRunner

    from c2kd.cli import app
    from c2kd.data.dataset import VideoTextDataset
    from c2kd.errors import DataError

    with pytest.raises(DataError) as info:
        VideoTextDataset(tmp_path)
    commands = re.findall(r"`c2kd ([a-z0-9 -]+)`", str(info.value))
    assert len(commands) == 3
    for command in commands:
        result = CliRunner().invoke(app, [*command.split(), "--help"])
        assert result.exit_code == 0, f"`c2kd {command}` does not exist: {result.output}"


def test_every_benchmark_language_is_registered():
    for langs in BENCHMARK_LANGUAGES.values():
        assert all(code in LANGUAGES for code in langs)
    assert len(LANGUAGES) >= 100


def test_a_language_named_in_itself_with_or_without_accents():
    from c2kd.languages import ENDONYMS

    for typed, code in (("Deutsch", "de"), ("français", "fr"), ("Francais", "fr"), ("čeština", "cs"),
                        ("cestina", "cs"), ("Español", "es"), ("日本語", "ja"), ("русский", "ru"),
                        ("Tiếng Việt", "vi"), ("tieng viet", "vi"), ("Kiswahili", "sw"), ("中文", "zh")):
        assert normalize_language(typed) == code, typed
    assert set(ENDONYMS) <= set(LANGUAGES)
    assert {code for codes in BENCHMARK_LANGUAGES.values() for code in codes} <= set(ENDONYMS)
