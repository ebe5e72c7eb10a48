"""Dataset commands: ``c2kd data synthetic|check``, ``c2kd multi30k-proxy``, ``c2kd import-data``, ``c2kd translate``.

Heavy imports stay inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from c2kd.defaults import PROXY_FRAME_ENCODER
from c2kd.errors import ConfigError
from c2kd.options import comma_list, key_value_pairs

data_app = typer.Typer(help="Make and check datasets, join feature stores (`c2kd import-data` imports the "
                                "authors' release).", no_args_is_help=True)

#: What the dataset writers below leave in their folder: one of these lets a rerun resume (or rewrite) it.
DATASET_MARKER = ("dataset.json", "store.json", "features", "captions.parquet")


def check_dataset_out(out: Path, inputs: tuple[Path | None, ...] = ()) -> None:
    """Refuse a dataset output folder that holds files of the user's, or that is, holds or lies in an input.

    These commands add to a folder (and resume), so an existing one must be a dataset or store already."""
    from c2kd.io import check_output

    check_output(out, DATASET_MARKER, inputs=inputs, overwrite_option=None)


@data_app.command("synthetic")
def data_synthetic(
    out: Path = typer.Option(..., help="Output dataset folder."),
    train: int = typer.Option(400), val: int = typer.Option(80), test: int = typer.Option(120),
    languages: str = typer.Option("en,de,fr,cs"),
    captions: int = typer.Option(5, help="Captions per video."),
    dim: int = typer.Option(64, help="Frame feature size."),
    missing_test: int = typer.Option(0, help="Test videos listed without features (counted as misses)."),
    seed: int = typer.Option(0),
) -> None:
    """Generate a small learnable multilingual dataset (non-English captions noisier than English)."""
    from c2kd.data.synthetic import SyntheticConfig, generate_synthetic

    check_dataset_out(out)

    cfg = SyntheticConfig(n_train=train, n_val=val, n_test=test, languages=comma_list(languages) or ["en"],
                          captions_per_video=captions, feature_dim=dim, missing_test_videos=missing_test, seed=seed)
    typer.echo(f"wrote {generate_synthetic(out, cfg)}")


@data_app.command("check")
def data_check(path: Path = typer.Argument(..., help="Dataset folder.")) -> None:
    """Validate a dataset (captions, languages, features: NaN/inf, dimensions) and summarise it.

    A dataset with a train split is also checked as `c2kd train` reads it by default: every training video has
    features and captions in every language, and a val split exists.
    """
    from rich.console import Console
    from rich.table import Table

    from c2kd.data.dataset import VideoTextDataset
    from c2kd.train.config import DataConfig

    problems: list[str] = []
    ds = VideoTextDataset(path, problems)
    problems += ds.features.damaged_shards()
    if problems:  # every damaged file, not only the first
        from c2kd.errors import DamagedFileError

        for problem in problems[:-1]:
            typer.secho(f"error: {problem}", fg=typer.colors.RED, err=True)
        raise DamagedFileError(f"{problems[-1]}" + (f" ({len(problems)} damaged files)" if len(problems) > 1 else ""))
    table = Table(title=f"{ds.name}: {len(ds.features)} videos with {ds.features.dim}-d features")
    for col in ("split", "videos", "missing", "no text", *ds.languages):
        table.add_column(col, justify="right")
    for name in ds.splits:
        s = ds.split(name)
        counts = [str(sum(1 for r in s.captions[lang] for c in r if c is not None)) for lang in ds.languages]
        table.add_row(name, str(len(s)), str(len(s.missing_video_ids)), str(s.blank_captions), *counts)
    Console().print(table)
    defaults = DataConfig(path=str(path))  # the splits `c2kd train` reads unless told otherwise
    if defaults.train_split in ds.splits:
        ds.check_trainable(defaults.train_split, defaults.val_split)
        typer.echo("ok: no problems found")
    else:
        typer.echo(f"ok: no problems found; no {defaults.train_split!r} split, so the dataset serves evaluation only")


@data_app.command("concat-features")
def data_concat_features(
    inputs: list[Path] = typer.Argument(..., help="Feature stores, or dataset folders, of the same videos."),
    out: Path = typer.Option(..., help="Output store (a dataset folder when the inputs are dataset folders); "
                                       "rerun to finish an interrupted join."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Join frame features side by side, video by video: what a fused model reads when its members read different
    frame encoders (give the stores in the order of its members)."""
    from c2kd.data.concat import concat_features
    from c2kd.data.features import FeatureStore, store_root
    from c2kd.encoders.frames import describe_parts, store_frame_encoder

    check_dataset_out(out, tuple(inputs))
    written = concat_features(inputs, out, progress=progress)
    store = FeatureStore(store_root(written))
    parts = store_frame_encoder(store.meta)
    typer.echo(f"wrote {written}: {len(store)} videos, {describe_parts(parts) if parts else store.dim}")


@data_app.command("subtitles")
def data_subtitles(
    store: Path = typer.Argument(..., help="Feature store, or a dataset folder holding one."),
    files: list[Path] = typer.Argument(..., help="Subtitle files named VIDEO_ID.srt or VIDEO_ID.LANG.srt (also .vtt, .ass, .ssa), e.g. video9770.de.srt."),
    encoding: str | None = typer.Option(None, help="Text encoding of the files (default: UTF-8, else guessed with "
                                                   "a warning)."),
) -> None:
    """Attach subtitle files to the videos of a store made without video files (the Multi30K proxy, imported
    features): their lines become the videos' timed text. Every file is read first; a bad one is an error and
    nothing is written. A file attached again replaces what it gave before."""
    from c2kd.features.timed_text.attach import attach_subtitles

    report = attach_subtitles(store, files, encoding, warn=lambda m: typer.echo(f"warning: {m}", err=True))
    typer.echo(f"attached {report.files} file(s) to {report.videos} video(s) of {report.store}: "
               f"{report.segments} timed text segments")


def multi30k_proxy_command(
    out: Path = typer.Option(Path("data/multi30k-proxy"), "--out", "-o", help="Dataset folder to write."),
    data: Path | None = typer.Option(
        None, "--data", help="Multi30K folder (with task1/ and task2/). Default: $C2KD_DATA, then ../shared/data, "
                             "then a download from the public Multi30K repository."),
    frame_encoder: str = typer.Option(
        PROXY_FRAME_ENCODER, help="Text backbone that encodes the proxy frames (a preset of c2kd.encoders.text.presets); "
                            "choose one that is neither the student's nor a teacher's text encoder."),
    max_train: int | None = typer.Option(None, min=1, help="Keep only the first N training items (speed)."),
    max_val: int | None = typer.Option(None, min=1, help="Keep only the first N validation items."),
    max_test: int | None = typer.Option(None, min=1, help="Keep only the first N test items."),
    download: bool = typer.Option(True, help="Download Multi30K when it is not found locally."),
    batch_size: int = typer.Option(256, min=1),
    cache: Path | None = typer.Option(None, help="Frozen-backbone cache folder: descriptions the frame encoder "
                                                 "embedded before (e.g. for the quickstart) are read back, new "
                                                 "ones kept (resumable; shared with `c2kd train`'s "
                                                 "model.text.cache_dir)."),
    processes: int = typer.Option(1, min=1, help="With --cache: embed the missing descriptions in this many "
                                                 "single-thread processes first (e.g. 2 on 2 cores)."),
) -> None:
    """Build the Multi30K PROXY dataset: captions in en/de/fr/cs; each item's 'video' is its four other English
    descriptions encoded as frames. It measures cross-lingual retrieval on real text, not vision."""
    from c2kd.data.multi30k import build_multi30k_proxy, locate_multi30k

    if processes > 1 and cache is None:  # before a download
        raise ConfigError("--processes embeds into a cache: give --cache DIR too")
    check_dataset_out(out, (data, cache))
    located = locate_multi30k(data, download=download)
    typer.echo(located.message)
    backbone = None
    if cache is not None:
        from c2kd.encoders.text.cache import CachedTextBackbone
        from c2kd.encoders.text.loading import build_text_backbone

        backbone = CachedTextBackbone(build_text_backbone(frame_encoder), cache)
    build_multi30k_proxy(out, located.root, frame_encoder=frame_encoder, max_train=max_train, max_val=max_val,
                         max_test=max_test, batch_size=batch_size, log=typer.echo, backbone=backbone,
                         processes=processes)


def import_data_command(
    splits: list[str] = typer.Argument(
        ..., help="SPLIT=FILE.pkl for each split, e.g. train=train.pkl test=test.pkl"
    ),
    fmt: str = typer.Option(..., "--format", help="msrvtt, vatex, youcook2, rudder, or a layout .json file."),
    features: str = typer.Option("2d", "--features", help="2d (CLIP frame features) or 3d (S3D)."),
    out: Path = typer.Option(..., "--out", help="Dataset folder to write (resumable)."),
    test_csv: Path | None = typer.Option(
        None,
        "--test-csv",
        help="Full listing of the test split (MSR-VTT: MSRVTT_JSFUSION_test.csv); videos "
        "it lists without features are counted as missing.",
    ),
    languages: str | None = typer.Option(None, help="Comma-separated languages (default: the dataset's)."),
    name: str | None = typer.Option(None, help="Dataset name (default: the format's)."),
) -> None:
    """Import the authors' released split files (pickled lists of dicts) into a c2kd dataset."""
    from c2kd.data.importers import get_layout, import_release

    split_files = key_value_pairs(splits, "split")
    check_dataset_out(out, (*(Path(f) for f in split_files.values()), test_csv))
    listings = {}
    if test_csv is not None:
        if "test" not in split_files:
            raise ConfigError(
                f"--test-csv lists the 'test' split, but no test=FILE was given ({sorted(split_files)})"
            )
        listings["test"] = test_csv
    report = import_release(
        get_layout(fmt), features, split_files, out, languages=comma_list(languages), listings=listings, name=name
    )
    typer.echo(report.markdown())
    for split in report.splits.values():
        if split.ignored_keys:
            typer.echo(f"{split.split}: ignored keys {split.ignored_keys}")
        if split.listing_caption_mismatches:
            typer.echo(
                f"{split.split}: {split.listing_caption_mismatches} English caption(s) differ from the "
                "CSV; the pickle's were kept"
            )
    missing = {k: v for k, v in report.missing_videos.items() if v}
    if missing:
        typer.echo(f"videos without features, counted as misses at evaluation: {missing}")
    typer.echo(f"wrote {out} ({report.feature_dim}-d {features} features)")


def translate_command(
    dataset: Path = typer.Option(..., "--dataset", help="Dataset folder whose captions are translated."),
    to: str = typer.Option(..., "--to", help="Comma-separated target languages, e.g. de,fr,cs."),
    model: str = typer.Option(
        "Helsinki-NLP/opus-mt-en-{lang}",
        "--model",
        help="Hugging Face seq2seq model; {lang} = one model per language, else a multi-target model "
        "(e.g. facebook/nllb-200-distilled-600M, facebook/m2m100_418M).",
    ),
    source: str = typer.Option("en", "--source", help="Language of the captions to translate."),
    splits: str | None = typer.Option(None, "--splits", help="Comma-separated splits (default: all)."),
    code: list[str] = typer.Option(
        [], "--code", metavar="LANG=CODE", help="LANG=CODE for the model's language code, e.g. sw=swc."
    ),
    batch_size: int = typer.Option(32, "--batch-size"),
    chunk_size: int = typer.Option(256, "--chunk-size", help="Captions per saved chunk (the resume unit)."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens"),
    num_beams: int = typer.Option(1, "--num-beams"),
    device: str = typer.Option("auto", "--device"),
    dtype: str = typer.Option("auto", "--dtype", help="auto, float32, float16 or bfloat16."),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads for torch (default: torch's)."
    ),
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="Chunk folder (default DATASET/.translate/KEY)."
    ),
    replace: bool = typer.Option(False, "--replace", help="Replace captions a target language already has."),
) -> None:
    """Machine-translate a dataset's captions into new languages (resumable; adds aligned caption rows)."""
    from c2kd.data.translate import Translator, coverage_table, translate_dataset

    translator = Translator(
        model,
        source=source,
        codes=key_value_pairs(code, "--code"),
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        threads=threads,
    )
    coverage = translate_dataset(
        dataset,
        comma_list(to) or [],
        translator,
        splits=comma_list(splits),
        work_dir=work_dir,
        chunk_size=chunk_size,
        replace=replace,
    )
    typer.echo(coverage_table(coverage))
    typer.echo(f"wrote {dataset / 'captions.parquet'}")


def register(app: typer.Typer) -> None:
    """Add ``multi30k-proxy``, ``import-data``, ``translate`` and the ``data`` group to the ``c2kd`` command."""
    app.command("multi30k-proxy")(multi30k_proxy_command)
    app.command("import-data")(import_data_command)
    app.command("translate")(translate_command)
    app.add_typer(data_app, name="data")
