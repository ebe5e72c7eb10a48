"""Machine translation of a dataset's captions into new languages (how Multi-YouCook2 was made).

Reader -> translator -> writer:

* the source-language captions of ``captions.parquet`` are deduplicated and sorted by length (less padding);
* a :class:`Translator` (any ``AutoModelForSeq2SeqLM`` + ``AutoTokenizer``) translates them in batches, either
  with one model per language (a name with ``{lang}``, e.g. ``Helsinki-NLP/opus-mt-en-{lang}``) or with one
  multi-target model whose target-language token is found in its vocabulary (NLLB ``deu_Latn``, M2M-100
  ``__de__``, mBART-50 ``de_DE``; codes mapped from :mod:`c2kd.languages`);
* every chunk of translations is saved atomically in a work folder keyed by model, settings and source texts,
  so a killed run resumes at the first unfinished chunk and never translates a chunk twice;
* the translations become new caption rows (same video, split and caption index as their English source)
  written into ``captions.parquet`` atomically, with a per-language coverage report.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from c2kd.errors import C2KDError, ConfigError, DataError
from c2kd.io import write_json
from c2kd.languages import ENGLISH, normalize_language, normalize_languages
from c2kd.runtime import resolve_device

#: registry code -> NLLB-200 (FLORES-200) code.
# fmt: off
NLLB_CODES: dict[str, str] = {
    "af": "afr_Latn", "am": "amh_Ethi", "ar": "arb_Arab", "as": "asm_Beng", "az": "azj_Latn",
    "be": "bel_Cyrl", "bg": "bul_Cyrl", "bn": "ben_Beng", "bo": "bod_Tibt", "bs": "bos_Latn",
    "ca": "cat_Latn", "ceb": "ceb_Latn", "cs": "ces_Latn", "cy": "cym_Latn", "da": "dan_Latn",
    "de": "deu_Latn", "el": "ell_Grek", "en": "eng_Latn", "eo": "epo_Latn", "es": "spa_Latn",
    "et": "est_Latn", "eu": "eus_Latn", "fa": "pes_Arab", "fi": "fin_Latn", "fr": "fra_Latn",
    "ga": "gle_Latn", "gd": "gla_Latn", "gl": "glg_Latn", "gu": "guj_Gujr", "ha": "hau_Latn",
    "he": "heb_Hebr", "hi": "hin_Deva", "hr": "hrv_Latn", "ht": "hat_Latn", "hu": "hun_Latn",
    "hy": "hye_Armn", "id": "ind_Latn", "ig": "ibo_Latn", "is": "isl_Latn", "it": "ita_Latn",
    "ja": "jpn_Jpan", "jv": "jav_Latn", "ka": "kat_Geor", "kk": "kaz_Cyrl", "km": "khm_Khmr",
    "kn": "kan_Knda", "ko": "kor_Hang", "ku": "kmr_Latn", "ky": "kir_Cyrl", "lb": "ltz_Latn",
    "lo": "lao_Laoo", "lt": "lit_Latn", "lv": "lvs_Latn", "mg": "plt_Latn", "mi": "mri_Latn",
    "mk": "mkd_Cyrl", "ml": "mal_Mlym", "mn": "khk_Cyrl", "mr": "mar_Deva", "ms": "zsm_Latn",
    "mt": "mlt_Latn", "my": "mya_Mymr", "ne": "npi_Deva", "nl": "nld_Latn", "no": "nob_Latn",
    "ny": "nya_Latn", "oc": "oci_Latn", "or": "ory_Orya", "pa": "pan_Guru", "pl": "pol_Latn",
    "ps": "pbt_Arab", "pt": "por_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl", "rw": "kin_Latn",
    "sa": "san_Deva", "sd": "snd_Arab", "si": "sin_Sinh", "sk": "slk_Latn", "sl": "slv_Latn",
    "sm": "smo_Latn", "sn": "sna_Latn", "so": "som_Latn", "sr": "srp_Cyrl", "st": "sot_Latn",
    "su": "sun_Latn", "sv": "swe_Latn", "sw": "swh_Latn", "ta": "tam_Taml", "te": "tel_Telu",
    "tg": "tgk_Cyrl", "th": "tha_Thai", "tk": "tuk_Latn", "tl": "tgl_Latn", "tr": "tur_Latn",
    "tt": "tat_Cyrl", "ug": "uig_Arab", "uk": "ukr_Cyrl", "ur": "urd_Arab", "uz": "uzn_Latn",
    "vi": "vie_Latn", "wo": "wol_Latn", "xh": "xho_Latn", "yi": "ydd_Hebr", "yo": "yor_Latn",
    "zh": "zho_Hans", "zu": "zul_Latn",
}
# fmt: on

#: registry code -> mBART-50 code.
# fmt: off
MBART50_CODES: dict[str, str] = {
    "af": "af_ZA", "ar": "ar_AR", "az": "az_AZ", "bn": "bn_IN", "cs": "cs_CZ", "de": "de_DE", "en": "en_XX",
    "es": "es_XX", "et": "et_EE", "fa": "fa_IR", "fi": "fi_FI", "fr": "fr_XX", "gl": "gl_ES", "gu": "gu_IN",
    "he": "he_IL", "hi": "hi_IN", "hr": "hr_HR", "id": "id_ID", "it": "it_IT", "ja": "ja_XX", "ka": "ka_GE",
    "kk": "kk_KZ", "km": "km_KH", "ko": "ko_KR", "lt": "lt_LT", "lv": "lv_LV", "mk": "mk_MK", "ml": "ml_IN",
    "mn": "mn_MN", "mr": "mr_IN", "my": "my_MM", "ne": "ne_NP", "nl": "nl_XX", "pl": "pl_PL", "ps": "ps_AF",
    "pt": "pt_XX", "ro": "ro_RO", "ru": "ru_RU", "si": "si_LK", "sl": "sl_SI", "sv": "sv_SE", "sw": "sw_KE",
    "ta": "ta_IN", "te": "te_IN", "th": "th_TH", "tl": "tl_XX", "tr": "tr_TR", "uk": "uk_UA", "ur": "ur_PK",
    "vi": "vi_VN", "xh": "xh_ZA", "zh": "zh_CN",
}
# fmt: on

WORK_DIR = ".translate"


def language_token_candidates(lang: str, codes: Mapping[str, str] | None = None) -> list[str]:
    """Target-language tokens a multi-target model may use for ``lang``, most specific first.

    Example:
        >>> language_token_candidates("cs")
        ['ces_Latn', '__cs__', 'cs_CZ']
    """
    lang = normalize_language(lang)
    out = [codes[lang]] if codes and lang in codes else []
    out += [c for c in (NLLB_CODES.get(lang), f"__{lang}__", MBART50_CODES.get(lang)) if c]
    return list(dict.fromkeys(out))


class Translator:
    """Batched translation with a Hugging Face seq2seq model; generic over ``AutoModelForSeq2SeqLM``.

    Args:
        model: a hub name or local folder; with ``{lang}`` in it, one model per target language
            (``Helsinki-NLP/opus-mt-en-{lang}``), else one multi-target model (NLLB, M2M-100, mBART-50).
        source: source language of the captions.
        codes: registry code -> code to use instead of the built-in tables (in ``{lang}`` or as target
            token).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
        dtype: ``auto`` (float16 on CUDA, float32 on CPU), ``float32``, ``float16`` or ``bfloat16``.
        threads: CPU threads for torch (None: torch's default; 1 is fastest for small models on a busy
            machine).
    """

    def __init__(
        self,
        model: str,
        source: str = ENGLISH,
        codes: Mapping[str, str] | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 32,
        max_input_tokens: int = 256,
        max_new_tokens: int = 128,
        num_beams: int = 1,
        threads: int | None = None,
    ):
        self.model_name = str(model)
        self.source = normalize_language(source)
        self.codes = {normalize_language(k): v for k, v in (codes or {}).items()}
        self.device = str(resolve_device(device))
        self.dtype = dtype
        self.batch_size = batch_size
        self.max_input_tokens = max_input_tokens
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.threads = threads
        self.per_language = "{lang}" in self.model_name
        self.translated: Counter[str] = Counter()  # texts sent to generate(), per target language
        self._loaded: tuple[str, Any, Any] | None = None  # (model name, model, tokenizer)

    @property
    def settings(self) -> dict:
        """What determines the outputs (keys the work folder; batch size and device do not)."""
        return {
            "model": self.model_name,
            "source": self.source,
            "codes": self.codes,
            "max_input_tokens": self.max_input_tokens,
            "max_new_tokens": self.max_new_tokens,
            "num_beams": self.num_beams,
        }

    def model_for(self, lang: str) -> str:
        lang = normalize_language(lang)
        return (
            self.model_name.replace("{lang}", self.codes.get(lang, lang))
            if self.per_language
            else self.model_name
        )

    def _load(self, lang: str) -> tuple[Any, Any]:
        name = self.model_for(lang)
        if self._loaded is not None and self._loaded[0] == name:
            return self._loaded[1], self._loaded[2]
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self._loaded = None  # free the previous language's model first
        if self.threads and not self.device.startswith("cuda"):
            torch.set_num_threads(self.threads)
        dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
        if self.dtype == "auto":
            dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        elif self.dtype in dtypes:
            dtype = dtypes[self.dtype]
        else:
            raise ConfigError(f"--dtype {self.dtype!r}: use auto, float32, float16 or bfloat16")
        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
            model = AutoModelForSeq2SeqLM.from_pretrained(name, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load translation model {name!r} ({exc}). Give a Hugging Face seq2seq model name "
                "or folder; per-language Marian models use a name with {lang}, e.g. "
                "Helsinki-NLP/opus-mt-en-{lang}."
            ) from exc
        model.to(self.device).eval()
        self._loaded = (name, model, tokenizer)
        return model, tokenizer

    def _language_token(self, tokenizer: Any, lang: str) -> str | None:
        vocab = tokenizer.get_vocab()
        return next((tok for tok in language_token_candidates(lang, self.codes) if tok in vocab), None)

    def target_token_id(self, lang: str) -> int | None:
        """Id of the token forced first in the output (multi-target models), None for per-language ones."""
        if self.per_language:
            return None
        _, tokenizer = self._load(lang)
        token = self._language_token(tokenizer, lang)
        if token is None:
            raise ConfigError(
                f"model {self.model_name!r} has no target-language token for {lang!r} (tried "
                f"{language_token_candidates(lang, self.codes)}). Pass --code {lang}=TOKEN, or use one "
                "model per language with {lang} in --model."
            )
        return int(tokenizer.convert_tokens_to_ids(token))

    def generate_ids(self, texts: Sequence[str], lang: str):
        """Output token ids of one batch.

        Shape:
            returns [len(texts), L] int64 (L = longest output, padded)
        """
        import torch

        model, tokenizer = self._load(lang)
        forced = self.target_token_id(lang)
        if not self.per_language and hasattr(tokenizer, "src_lang"):
            source_token = self._language_token(tokenizer, self.source)
            if source_token is not None:
                tokenizer.src_lang = source_token
        inputs = tokenizer(
            list(texts), return_tensors="pt", padding=True, truncation=True, max_length=self.max_input_tokens
        )
        inputs.pop("token_type_ids", None)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "num_beams": self.num_beams}
        if forced is not None:
            kwargs["forced_bos_token_id"] = forced
        with torch.inference_mode():
            out = model.generate(**inputs, **kwargs)
        self.translated[normalize_language(lang)] += len(texts)
        return out.cpu()

    def translate(self, texts: Sequence[str], lang: str) -> list[str]:
        """Translate ``texts`` from the source language into ``lang``, ``batch_size`` at a time."""
        _, tokenizer = self._load(lang)
        out: list[str] = []
        for start in range(0, len(texts), self.batch_size):
            ids = self.generate_ids(texts[start : start + self.batch_size], lang)
            out += [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return out


@dataclass
class Coverage:
    """Per-language outcome: ``translated + missing == source_captions``; empty outputs count as missing."""

    language: str
    source_captions: int
    translated: int
    missing: int
    empty_outputs: int


def coverage_table(rows: Sequence[Coverage]) -> str:
    """Markdown table of :class:`Coverage` rows."""
    lines = [
        "| language | source captions | translated | missing | empty outputs |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {c.language} | {c.source_captions} | {c.translated} | {c.missing} | {c.empty_outputs} |"
        for c in rows
    ]
    return "\n".join(lines)


class TranslationInterrupted(C2KDError):
    """Raised by an ``on_chunk`` hook to stop a run; finished chunks are kept."""


def _read_captions(root: Path) -> tuple[dict, dict[str, list]]:
    import pyarrow.parquet as pq

    from c2kd.data.dataset import CAPTION_COLUMNS, CAPTIONS_FILE, DATASET_FILE

    meta_path = root / DATASET_FILE
    if not meta_path.exists():
        raise DataError(
            f"{meta_path} not found: --dataset must be a c2kd dataset folder (see `c2kd import-data`)"
        )
    meta = json.loads(meta_path.read_text("utf-8"))
    table = pq.read_table(root / CAPTIONS_FILE).to_pydict()
    return meta, {c: list(table[c]) for c in CAPTION_COLUMNS}


def translate_dataset(
    dataset: str | os.PathLike,
    targets: Sequence[str],
    translator: Translator,
    splits: Sequence[str] | None = None,
    work_dir: str | os.PathLike | None = None,
    chunk_size: int = 256,
    replace: bool = False,
    progress: bool = True,
    on_chunk: Callable[[str, int], None] | None = None,
) -> list[Coverage]:
    """Translate the dataset's source-language captions into ``targets`` and add them to ``captions.parquet``.

    Args:
        splits: only captions of these splits (default: all).
        work_dir: where chunks are kept (default ``DATASET/.translate/<key>``, the key hashing the model, its
            settings and the source texts, so a changed dataset or model starts afresh).
        chunk_size: captions per saved chunk (a killed run loses at most one chunk per language).
        replace: replace captions a target language already has (otherwise that is an error).
        on_chunk: called with (language, chunk index) after each chunk is saved.

    Returns the coverage per target language.
    """
    from c2kd.data.dataset import save_dataset
    from c2kd.progress import progress_bar

    root = Path(dataset)
    meta, cols = _read_captions(root)
    targets = normalize_languages(targets)
    source = translator.source
    if not targets:
        raise ConfigError("no target language given; use --to de,fr,...")
    if source in targets:
        raise ConfigError(f"--to contains the source language {source!r}")
    split_set = set(splits) if splits else None
    n_rows = len(cols["video_id"])
    in_scope = [split_set is None or cols["split"][i] in split_set for i in range(n_rows)]
    src_rows = [i for i in range(n_rows) if cols["lang"][i] == source and in_scope[i]]
    if not src_rows:
        raise DataError(
            f"{root}: no {source!r} captions"
            + (f" in splits {sorted(split_set)}" if split_set else "")
            + " to translate"
        )
    existing = Counter(cols["lang"][i] for i in range(n_rows) if in_scope[i] and cols["lang"][i] in targets)
    if existing and not replace:
        scope = f" (splits {sorted(split_set)})" if split_set else ""
        raise DataError(
            f"{root}: the dataset already has captions in {dict(existing)}{scope}; pass --replace to replace "
            "them with new translations, or leave these languages out of --to"
        )
    texts = sorted({cols["text"][i].strip() for i in src_rows} - {""}, key=lambda t: (len(t), t))
    key = hashlib.sha256(json.dumps([translator.settings, texts], ensure_ascii=False).encode()).hexdigest()[
        :16
    ]
    work = Path(work_dir) if work_dir else root / WORK_DIR / key
    manifest = work / "manifest.json"
    if manifest.exists():
        stored = json.loads(manifest.read_text("utf-8"))
        if stored.get("key") != key:
            raise DataError(
                f"{manifest}: this work folder belongs to another model, setting or caption set "
                f"(key {stored.get('key')} != {key}); use another --work-dir or delete it"
            )
        chunk_size = int(stored["chunk_size"])
    else:
        write_json(
            manifest,
            {
                "key": key,
                "settings": translator.settings,
                "texts": len(texts),
                "chunk_size": chunk_size,
                "dataset": str(root),
            },
        )
    n_chunks = (len(texts) + chunk_size - 1) // chunk_size
    todo = [
        (lang, c)
        for lang in targets
        for c in range(n_chunks)
        if not (work / lang / f"chunk-{c:05d}.json").exists()
    ]
    with progress_bar(
        total=n_chunks * len(targets),
        initial=n_chunks * len(targets) - len(todo),
        unit="chunk",
        desc="translate",
        disable=not progress,
    ) as bar:
        for lang, c in todo:
            bar.set_postfix(lang=lang)
            part = texts[c * chunk_size : (c + 1) * chunk_size]
            out = translator.translate(part, lang)
            write_json(
                work / lang / f"chunk-{c:05d}.json",
                {"language": lang, "chunk": c, "sources": part, "translations": out},
            )
            bar.update(1)
            if on_chunk is not None:
                on_chunk(lang, c)

    coverage: list[Coverage] = []
    new_rows: dict[str, list] = {c: [] for c in cols}
    for lang in targets:
        mapping: dict[str, str] = {}
        for c in range(n_chunks):
            chunk = json.loads((work / lang / f"chunk-{c:05d}.json").read_text("utf-8"))
            if chunk["sources"] != texts[c * chunk_size : (c + 1) * chunk_size]:
                raise DataError(
                    f"{work / lang}/chunk-{c:05d}.json does not match the captions; delete {work}"
                )
            mapping.update(zip(chunk["sources"], chunk["translations"], strict=True))
        written = empty = 0
        for i in src_rows:
            text = mapping.get(cols["text"][i].strip(), "")
            if cols["text"][i].strip() and not text:
                empty += 1
            if not text:
                continue
            for col in ("video_id", "split", "caption_index"):
                new_rows[col].append(cols[col][i])
            new_rows["lang"].append(lang)
            new_rows["text"].append(text)
            written += 1
        coverage.append(Coverage(lang, len(src_rows), written, len(src_rows) - written, empty))

    # replaced: the target languages' rows of the translated splits; rows of other splits stay
    keep = [i for i in range(n_rows) if not (in_scope[i] and cols["lang"][i] in targets)]
    merged = {c: [cols[c][i] for i in keep] + new_rows[c] for c in cols}
    extra = {k: v for k, v in meta.items() if k not in ("format", "version", "name", "languages", "features")}
    provenance = dict(extra.get("translations", {}))
    scope = ",".join(sorted(split_set)) if split_set else "all"
    for cov in coverage:
        entry = {
            "model": translator.model_for(cov.language),
            "source": source,
            "work": str(work),
            **asdict(cov),
        }
        provenance[cov.language] = {**provenance.get(cov.language, {}), scope: entry}
    extra["translations"] = provenance
    save_dataset(
        root, merged, name=meta.get("name", root.name), features=meta.get("features", "features"), **extra
    )
    write_json(work / "coverage.json", [asdict(c) for c in coverage])
    return coverage
