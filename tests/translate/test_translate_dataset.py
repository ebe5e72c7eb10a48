"""Caption translation: aligned rows, coverage counts, resume after an interruption, multi-target models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from caption_set import ENGLISH

from c2kd.data.dataset import VideoTextDataset
from c2kd.data.translate import (
    Coverage,
    TranslationInterrupted,
    Translator,
    coverage_table,
    language_token_candidates,
    translate_dataset,
)
from c2kd.errors import ConfigError, DataError
from c2kd.languages import BENCHMARK_LANGUAGES


def rows(root: Path, lang: str | None = None) -> list[tuple]:
    t = pq.read_table(root / "captions.parquet").to_pydict()
    out = list(zip(t["video_id"], t["split"], t["lang"], t["caption_index"], t["text"]))
    return sorted(r for r in out if lang is None or r[2] == lang)


def reference_translation(model_dir: str, text: str) -> str:
    """One sentence at a time with plain transformers: independent of the batching and chunking under test."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    enc = tok([text], return_tensors="pt")
    enc.pop("token_type_ids", None)
    with torch.no_grad():
        ids = model.generate(**enc, max_new_tokens=8, num_beams=1)
    return tok.batch_decode(ids, skip_special_tokens=True)[0].strip()


def english_rows() -> list[tuple[str, str, int, str]]:
    return [(v, s, k, t) for (v, s), caps in ENGLISH.items() for k, t in enumerate(caps)]


def test_per_language_models_add_aligned_rows(dataset: Path, marian_models: str) -> None:
    translator = Translator(marian_models, batch_size=2, max_new_tokens=8)
    coverage = translate_dataset(dataset, ["de", "fr"], translator, chunk_size=3, progress=False)
    n_rows = len(english_rows())
    blank = sum(1 for *_, t in english_rows() if not t.strip())
    assert coverage == [
        Coverage("de", n_rows, n_rows - blank, blank, 0),
        Coverage("fr", n_rows, 0, n_rows, n_rows - blank),
    ]
    unique = {t.strip() for *_, t in english_rows()} - {""}
    assert translator.translated == {"de": len(unique), "fr": len(unique)}  # duplicates translated once

    de = rows(dataset, "de")
    expected_keys = sorted((v, s, k) for v, s, k, t in english_rows() if t.strip())
    assert [(v, s, k) for v, s, _, k, _ in de] == expected_keys
    english = {(v, s, k): t for v, s, k, t in english_rows()}
    model_de = marian_models.replace("{lang}", "de")
    cache: dict[str, str] = {}
    for v, s, _, k, text in de:
        src = english[(v, s, k)]
        cache.setdefault(src, reference_translation(model_de, src))
        assert text == cache[src], (src, text)
    assert len(set(cache.values())) > 1, "the random model's outputs depend on the input"
    assert rows(dataset, "en") and rows(dataset, "ja") == [("v0", "train", "ja", 0, "料理")]  # others kept

    ds = VideoTextDataset(dataset)
    assert ds.languages == ["en", "de", "ja"]  # fr has no rows: every output was empty
    assert ds.meta["source"] == {"format": "test"}  # earlier metadata kept
    assert ds.meta["translations"]["fr"]["all"]["empty_outputs"] == n_rows - blank
    assert ds.meta["translations"]["de"]["all"]["model"] == model_de
    train = ds.split("train", ["en", "de"], training=True)
    assert train.shared_caption_indices(train.video_ids.index("v3"), ["en", "de"]) == [0]
    table = coverage_table(coverage)
    assert "| de | 12 | 11 | 1 | 0 |" in table and "| fr | 12 | 0 | 12 | 11 |" in table


def test_resume_after_interruption_does_nothing_twice(
    tmp_path: Path, dataset: Path, marian_models: str
) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(dataset, reference)
    translate_dataset(
        reference, ["de", "es"], Translator(marian_models, max_new_tokens=8), chunk_size=2, progress=False
    )

    before = rows(dataset)
    done: list[tuple[str, int]] = []

    def stop_after_three(lang: str, chunk: int) -> None:
        done.append((lang, chunk))
        if len(done) == 3:
            raise TranslationInterrupted("injected")

    first = Translator(marian_models, max_new_tokens=8)
    with pytest.raises(TranslationInterrupted):
        translate_dataset(
            dataset, ["de", "es"], first, chunk_size=2, progress=False, on_chunk=stop_after_three
        )
    assert rows(dataset) == before, "captions.parquet is untouched until every chunk is done"
    work = next((dataset / ".translate").iterdir())
    assert sorted(p.name for p in work.glob("*/chunk-*.json")) == [
        "chunk-00000.json",
        "chunk-00001.json",
        "chunk-00002.json",
    ]
    second_done: list[tuple[str, int]] = []
    second = Translator(marian_models, max_new_tokens=8)
    translate_dataset(
        dataset,
        ["de", "es"],
        second,
        chunk_size=2,
        progress=False,
        on_chunk=lambda lang, c: second_done.append((lang, c)),
    )
    unique = len({t.strip() for *_, t in english_rows()} - {""})
    n_chunks = (unique + 1) // 2
    assert not set(done) & set(second_done)
    assert sorted(done + second_done) == [(lang, c) for lang in ("de", "es") for c in range(n_chunks)]
    assert first.translated["de"] + second.translated["de"] == unique  # each text translated exactly once
    assert second.translated["es"] == unique
    assert rows(dataset) == rows(reference)


def test_existing_language_needs_replace(dataset: Path, marian_models: str) -> None:
    translate_dataset(dataset, ["de"], Translator(marian_models, max_new_tokens=8), progress=False)
    first = rows(dataset)
    with pytest.raises(DataError, match=r"already has captions in \{'de': 11\}.*--replace"):
        translate_dataset(dataset, ["de"], Translator(marian_models, max_new_tokens=8), progress=False)
    again = Translator(marian_models, max_new_tokens=8)
    translate_dataset(dataset, ["de"], again, replace=True, progress=False)
    assert rows(dataset) == first and again.translated["de"] == 0  # finished chunks are reused


def test_multi_target_model_forces_the_language_token(dataset: Path, m2m_model: Path) -> None:
    translator = Translator(str(m2m_model), max_new_tokens=6)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(m2m_model)
    for lang in ("de", "fr"):
        ids = translator.generate_ids(["a dog runs in the park", "people dance"], lang)
        assert ids[:, 1].tolist() == [tok.convert_tokens_to_ids(f"__{lang}__")] * 2  # after the start token
    coverage = translate_dataset(dataset, ["de", "fr"], translator, splits=["test"], progress=False)
    assert [c.source_captions for c in coverage] == [2, 2]
    assert {r[1] for r in rows(dataset, "de")} == {"test"}
    test_rows = rows(dataset, "de")
    # then the train split: the test split's translations stay, --replace only touches the splits translated
    with pytest.raises(DataError, match=r"already has captions in \{'de': 2\} \(splits \['test'\]\)"):
        translate_dataset(dataset, ["de"], translator, splits=["test"], progress=False)
    translate_dataset(dataset, ["de"], translator, splits=["train"], progress=False)
    assert [r for r in rows(dataset, "de") if r[1] == "test"] == test_rows
    translate_dataset(dataset, ["de"], translator, splits=["train"], replace=True, progress=False)
    assert [r for r in rows(dataset, "de") if r[1] == "test"] == test_rows
    assert len(rows(dataset, "de")) == 2 + 9
    assert set(VideoTextDataset(dataset).meta["translations"]["de"]) == {"test", "train"}
    with pytest.raises(
        ConfigError, match=r"no target-language token for 'sw' \(tried \['swh_Latn', '__sw__'"
    ):
        translator.generate_ids(["x"], "sw")


def test_language_codes_come_from_the_registry() -> None:
    assert language_token_candidates("cz") == ["ces_Latn", "__cs__", "cs_CZ"]
    assert language_token_candidates("zh", {"zh": "zho_Hant"})[0] == "zho_Hant"
    for langs in BENCHMARK_LANGUAGES.values():
        for lang in langs:
            assert language_token_candidates(lang)[0].endswith(
                ("_Latn", "_Hans", "_Cyrl", "_Deva", "_Knda", "_Jpan")
            )
    assert (
        Translator("Helsinki-NLP/opus-mt-en-{lang}", codes={"sw": "swc"}).model_for("sw")
        == "Helsinki-NLP/opus-mt-en-swc"
    )


def test_bad_requests(dataset: Path, marian_models: str, tmp_path: Path) -> None:
    t = Translator(marian_models, max_new_tokens=8)
    with pytest.raises(ConfigError, match="source language 'en'"):
        translate_dataset(dataset, ["de", "en"], t, progress=False)
    with pytest.raises(DataError, match="no 'en' captions in splits"):
        translate_dataset(dataset, ["de"], t, splits=["val"], progress=False)
    with pytest.raises(DataError, match=r"dataset\.json not found"):
        translate_dataset(tmp_path / "nowhere", ["de"], t, progress=False)
    with pytest.raises(ConfigError, match="cannot load translation model"):
        translate_dataset(dataset, ["de"], Translator(str(tmp_path / "no-model-{lang}")), progress=False)
    assert json.loads((dataset / "dataset.json").read_text())["languages"] == ["en", "ja"]
