"""Commands: ``c2kd index build|add|remove|info``, ``c2kd search``, ``c2kd moments``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from c2kd.defaults import INDEX_LENGTHS, INDEX_OPTION_NAMES, INDEX_STRIDE, WHOLE_UP_TO
from c2kd.io import json_text

index_app = typer.Typer(help="Build and update video indexes (embeddings + metadata).", no_args_is_help=True)

BACKEND_HELP = "exact (numpy, default), faiss (approximate: IVF or HNSW), qdrant, milvus (vector databases)"


def _option_help() -> str:
    listed = "; ".join(f"{owner}: " + ", ".join(names) for owner, names in INDEX_OPTION_NAMES.items() if names)
    return f"setting name=value, repeatable ({listed}; ranges and meanings: docs/search.md)"


OPTION_HELP = _option_help()
#: the default window lengths as the command line takes them, "2,4,8"
LENGTHS = ",".join(f"{x:g}" for x in INDEX_LENGTHS)
ID_COLUMN_HELP = "the --metadata column that holds the video id (e.g. clip_name for MSR-VTT's files)"


def _read_ids(ids: list[str], ids_file: Path | None) -> list[str]:
    out = list(ids)
    if ids_file is not None:
        if not ids_file.exists():
            from c2kd.errors import DataError

            raise DataError(f"ids file {ids_file} not found")
        out += [line.strip() for line in ids_file.read_text().splitlines() if line.strip()]
    return out


@index_app.command("build")
def index_build(
    checkpoint: Path = typer.Option(..., help="checkpoint (or run folder) whose video tower embeds videos: "
                                              "trained, or made by `c2kd model aligned` or `c2kd model fuse`"),
    features: Path = typer.Option(..., help="feature store (`c2kd extract` output) or dataset folder"),
    out: Path = typer.Option(..., "--out", "-o", help="index folder to write (an index there is replaced "
                                                      "atomically; another folder only with --overwrite)"),
    backend: str = typer.Option("exact", help=BACKEND_HELP),
    option: list[str] = typer.Option([], "--option", "-O", metavar="NAME=VALUE", help=OPTION_HELP),
    metadata: Path | None = typer.Option(None, help="per-video metadata: JSON lines/CSV/parquet, a row per video"),
    id_column: str = typer.Option("video_id", help=ID_COLUMN_HELP),
    tag: list[str] = typer.Option([], help="tag every video: a word (added to 'tags') or field=value"),
    videos: list[Path] = typer.Option([], help="folder with the video files (<id>.<ext>), for playback; "
                                               "their poster frames are taken now and kept in the index"),
    split: list[str] = typer.Option([], help="index only this split of a dataset folder, e.g. test "
                                             "(repeatable)"),
    moment_lengths: str = typer.Option(LENGTHS,
                                       help="window lengths (seconds) of the moment entries of videos longer than "
                                            "the longest; 'none': one whole-clip entry per video"),
    moment_stride: float = typer.Option(INDEX_STRIDE, help="window stride, a fraction of each length"),
    whole_up_to: float = typer.Option(WHOLE_UP_TO, help="videos at most this many seconds long stay one "
                                                        "whole-clip entry (dataset clips)"),
    vectors: str = typer.Option("float32", help="how entry vectors are stored: float32, or float16 (half the "
                                                "disk; scores differ by ~1e-3)"),
    batch_size: int = typer.Option(256, help="clips or windows per forward pass"),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace OUT even when it is not an index (what is "
                                                              "in it is deleted)"),
    said_encoder: str = typer.Option("auto", help="text encoder of the said moments (the store's subtitles and "
                                                  "speech): auto (packaged-e5-small when the store holds timed "
                                                  "text), a text preset, hub id or folder, model (the checkpoint's "
                                                  "text tower), or none"),
) -> None:
    """Embed every video of a feature store with the student's video tower and write an index: one entry per
    moment window of a long video, one whole-clip entry per short one; the store's timed text (subtitles,
    speech) as said moments beside them."""
    import time

    from c2kd.index import VideoIndex, parse_options
    from c2kd.index.options import split_options
    from c2kd.index.segments import MANIFEST
    from c2kd.io import check_output
    from c2kd.search.building import build_index, parse_tags, read_metadata_file

    _not_a_setting(out)
    split_options(backend, parse_options(option))  # bad settings refused before the model loads
    check_output(out, MANIFEST, inputs=(checkpoint, features, metadata), overwrite=overwrite)
    windows = _windows(moment_lengths, moment_stride, whole_up_to)
    started = time.perf_counter()
    path = build_index(checkpoint, features, out, backend=backend, options=parse_options(option),
                       metadata=read_metadata_file(metadata, id_column) if metadata else None, tags=parse_tags(tag),
                       video_roots=videos, batch_size=batch_size, device=device, splits=split, windows=windows,
                       dtype=vectors, overwrite=overwrite)
    seconds = time.perf_counter() - started
    with VideoIndex.open(path) as index:
        typer.echo(f"indexed {len(index)} videos as {index.entries} entries into {path} ({index.backend.name}; "
                   f"{seconds:.1f} s, {index.entries / max(seconds, 1e-9):.0f} entries/s)")
        ids = index.ids
    _index_said(path, features, said_encoder, checkpoint, device, ids)


def _index_said(path: Path, features: Path, name: str, checkpoint: Path, device: str, ids) -> None:
    """The said moments of the indexed videos (c2kd.search.said_search.index_said), with a line saying so."""
    from c2kd.search.said_search import index_said

    said = index_said(path, features, name, checkpoint, device, ids,
                      warn=lambda line: typer.echo(f"warning: {line}", err=True))
    if said is not None:
        typer.echo(f"said moments: {len(said)} entries of {len(said.videos)} videos ({said.encoder})")
    elif name not in ("auto", "none"):
        typer.echo("said moments: the indexed videos have no timed text (subtitles or speech)")


def _windows(lengths: str, stride: float, whole_up_to: float):
    """``--moment-lengths 4,8,16`` / ``none``, ``--moment-stride`` and ``--whole-up-to`` as :class:`Windows`."""
    from c2kd.search.moments import Windows
    from c2kd.search.query import QueryError

    if lengths.strip().lower() in ("none", "0", ""):
        return Windows((), stride, whole_up_to)
    try:
        values = tuple(float(x) for x in lengths.split(",") if x.strip())
    except ValueError:
        raise QueryError(f"--moment-lengths {lengths!r} must be seconds, e.g. 4,8,16,32, or 'none'") from None
    return Windows(values, stride, whole_up_to)


@index_app.command("add")
def index_add(
    index: Path = typer.Argument(..., help="index folder"),
    features: Path | None = typer.Option(None, help="feature store holding the new videos (default: the "
                                                       "store the index was built from)"),
    id: list[str] = typer.Option([], "--id", help="add only these video ids (repeatable)"),
    ids_file: Path | None = typer.Option(None, help="file with one video id per line"),
    replace: bool = typer.Option(False, help="re-embed videos that are already in the index"),
    checkpoint: Path | None = typer.Option(None, help="default: the checkpoint the index was built with"),
    metadata: Path | None = typer.Option(None, help="per-video metadata: JSON lines/CSV/parquet, a row per video"),
    id_column: str = typer.Option("video_id", help=ID_COLUMN_HELP),
    tag: list[str] = typer.Option([], help="tag the added videos: a word or field=value"),
    device: str = typer.Option("cpu"),
) -> None:
    """Embed and add videos (all of the store's videos that the index lacks, or the given ids)."""
    from c2kd.search.building import add_to_index, parse_tags, read_metadata_file

    wanted = _read_ids(id, ids_file) or None
    added = add_to_index(index, features, ids=wanted, replace=replace, checkpoint=checkpoint,
                         metadata=read_metadata_file(metadata, id_column) if metadata else None, tags=parse_tags(tag),
                         device=device)
    typer.echo(f"added {added} videos to {index}")
    if added:
        _add_said(index, features, wanted, checkpoint, device)


def _add_said(index: Path, features: Path | None, wanted, checkpoint: Path | None, device: str) -> None:
    """The said moments of the videos just added, beside those of the others (same encoder as the index's)."""
    from c2kd.data.features import store_root
    from c2kd.index import VideoIndex
    from c2kd.search.said import SaidIndex, build_said, said_encoder_for

    with VideoIndex.open(index) as opened:
        info, ids = opened.info, opened.ids
    store = store_root(features or info["features"])
    existing = SaidIndex.open(index)
    encoder = said_encoder_for(existing.encoder if existing is not None else "auto", store,
                               checkpoint or info.get("checkpoint"), device)
    if encoder is None:
        return
    added = [v for v in (wanted or ids) if v in set(ids)]
    said = build_said(index, store, encoder, ids=added, keep=existing)
    if said is not None:
        from c2kd.search.said_search import warn_unknown_languages

        warn_unknown_languages(said, encoder, store, lambda line: typer.echo(f"warning: {line}", err=True))
        typer.echo(f"said moments: {len(said)} entries of {len(said.videos)} videos ({encoder.name})")


@index_app.command("remove")
def index_remove(
    index: Path = typer.Argument(..., help="index folder"),
    ids: list[str] = typer.Argument(None, help="video ids to remove"),
    ids_file: Path | None = typer.Option(None, help="file with one video id per line"),
    missing_ok: bool = typer.Option(False, help="ignore ids that are not in the index"),
) -> None:
    """Remove videos from an index (no rebuild: only the segments holding them are rewritten)."""
    from c2kd.errors import DataError
    from c2kd.index import VideoIndex

    wanted = _read_ids(ids or [], ids_file)
    if not wanted:
        raise DataError("give video ids to remove (arguments or --ids-file)")
    from c2kd.search.posters import remove_posters

    with VideoIndex.open(index) as idx:
        removed = idx.remove(wanted, missing_ok=missing_ok)
        remove_posters(idx.root, [v for v in wanted if v not in idx])
        typer.echo(f"removed {removed} videos from {index}; {len(idx)} remain")


@index_app.command("info")
def index_info(index: Path = typer.Argument(..., help="index folder"),
               as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Show an index's size, backend and build information."""
    from c2kd.index import VideoIndex

    with VideoIndex.open(index) as idx:
        info = idx.describe()
    if as_json:
        typer.echo(json_text(info))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from c2kd.search.query import printable

    table = Table(title=escape(printable(f"index {index}")), show_header=False)
    for key, value in info.items():
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)
        table.add_row(key, escape(printable(text)))
    Console().print(table)


def _print_results(pages, as_json: bool) -> None:
    """Search pages as JSON, or as one table each: rank, video, what found it (searches by channel), the best
    moment, score, and what the video is (or, for a said moment, the line said there)."""
    if as_json:
        payload = [page.to_dict() for page in pages]
        typer.echo(json_text(payload[0] if len(payload) == 1 else payload))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from c2kd.search.query import printable

    console = Console()
    for page in pages:
        lang = f" [{page.query.lang}]" if page.query.lang else ""
        channel = f"{page.channel}, " if page.channel is not None else ""
        title = escape(printable(f"{page.query.text}{lang}  ({channel}{page.took_ms:.1f} ms)"))
        if not page.hits:
            console.print(f"{title}: no results (no video matches the filters)")
            continue
        table = Table(title=title)
        with_moments = any(hit.moments for hit in page.hits)  # clips indexed whole have none to show
        by_channel = page.channel is not None
        rows = [(str(hit.rank), escape(printable(hit.video_id)), *([hit.found_by or ""] if by_channel else []),
                 *([_moments_text(hit.moments)] if with_moments else []), f"{hit.score:.4f}",
                 escape(printable(getattr(hit.moment, "text", "") or describe(hit.metadata)))) for hit in page.hits]
        columns = [("rank", "right"), ("video", "left"), *([("found by", "left")] if by_channel else []),
                   *([("moment", "left")] if with_moments else []), ("score", "right")]
        used = 1  # the table's left border
        for i, (column, justify) in enumerate(columns):  # as wide as they need: the last is cut
            width = max([len(column), *(len(row[i]) for row in rows)])
            table.add_column(column, justify=justify, no_wrap=True, width=width)  # type: ignore[arg-type]
            used += width + 3  # padding and border
        table.add_column("said there, or title or caption" if by_channel else "title or caption", no_wrap=True,
                         overflow="ellipsis", max_width=max(10, console.width - used - 3))
        for row in rows:
            table.add_row(*row)
        console.print(table)


#: metadata fields that say what a video is, in the order a result's text is taken from them
TEXT_FIELDS = ("title", "caption", "description")


def describe(metadata: dict) -> str:
    """What a result is, in one line: its title, caption or description, else its first caption (empty when
    the metadata holds no text: no ``key=value`` list)."""
    for field in TEXT_FIELDS:
        value = metadata.get(field)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    captions = metadata.get("captions")
    if isinstance(captions, list) and captions and isinstance(captions[0], str):
        return " ".join(captions[0].split())
    return ""


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes}:{rest:04.1f}"


def _moments_text(moments) -> str:
    """``0:12.0-0:20.0`` for the best moment, ``(+2 more moments)`` when the video has other matching ones."""
    if not moments:
        return ""
    best = moments[0]
    more = f" (+{len(moments) - 1} more moment{'s' if len(moments) > 2 else ''})" if len(moments) > 1 else ""
    return f"{_clock(best.start)}-{_clock(best.end)}{more}"


def search(
    index: Path = typer.Argument(..., help="index folder"),
    query: str | None = typer.Argument(None, help="the query, in any language"),
    lang: str | None = typer.Option(None, help="language of the query (a hint, validated; e.g. de, cs, ja)"),
    k: int = typer.Option(10, "-k", help="number of results"),
    queries: Path | None = typer.Option(None, help="file of queries: one per line, or JSON lines "
                                                      "{\"query\": ..., \"lang\": ...}"),
    filter: list[str] = typer.Option([], "--filter", "-f", metavar="FIELD=VALUE", help="metadata filter field=value[,value] (repeatable)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    checkpoint: Path | None = typer.Option(None, help="default: the checkpoint the index was built with"),
    option: list[str] = typer.Option([], "--option", "-O", metavar="NAME=VALUE", help=OPTION_HELP),
    group: bool = typer.Option(True, "--group/--no-group", help="rank videos by their best moment (default), or "
                                                                "the moments themselves across the collection"),
    out: Path | None = typer.Option(None, "--out", "-o", help="with --queries: write the answers to this JSON-lines "
                                                        "file as they come (one line per query, a progress line "
                                                        "meanwhile); run the same command again to answer only "
                                                        "the queries it lacks"),
    device: str = typer.Option("cpu"),
    channel: str | None = typer.Option(None, help="what finds the videos: shown (the pictures), said (subtitles "
                                                  "and speech) or both (default when the index has said moments)"),
) -> None:
    """Rank the indexed videos for a text query in any language: a video scores as its best moment, shown
    with its time (long videos are indexed as moment windows); what is said in them too, when the index
    holds their subtitles or speech (each result says what found it)."""
    from c2kd.index import parse_filter_options, parse_options
    from c2kd.search.batch import answered
    from c2kd.search.channels import check_channel
    from c2kd.search.engine import SearchEngine
    from c2kd.search.query import Query, QueryError, printable, read_queries, validate_k, validate_language

    validate_k(k)
    if channel is not None:
        check_channel(channel)
    if (query is None) == (queries is None):
        raise QueryError("give either a QUERY argument or --queries FILE")
    batch, skipped = (read_queries(queries, validate_language(lang)) if queries is not None
                      else ([Query.make(query, lang)], []))
    for problem in skipped:
        typer.echo(f"warning: skipped {printable(problem)}", err=True)
    if out is not None:
        _not_a_setting(out)
    if out is not None and queries is None:
        raise QueryError("--out writes the answers of a batch: give --queries FILE")
    done = answered(out, batch) if out is not None else set()
    if out is not None and len(done) == len(batch):
        typer.echo(f"all {len(batch)} queries are answered in {out}")
        return
    filters = parse_filter_options(filter)
    options = parse_options(option)
    from c2kd.index import VideoIndex

    opened = VideoIndex.open(index, options)  # the options are checked here, before the model loads
    try:
        engine = SearchEngine.open(opened, checkpoint=checkpoint, device=device, moments=False, shared=False)
    except BaseException:
        opened.close()
        raise
    try:
        _warn_of_absent_values(engine, filters)
        if out is not None:
            _answer_batch(engine, batch, out, done, k, filters, group, channel)
        elif as_json:
            _print_results(engine.search_many(batch, k=k, filters=filters, group=group, channel=channel), as_json)
        else:  # each table as soon as its query is answered
            for page in engine.search_each(batch, k=k, filters=filters, group=group, channel=channel):
                _print_results([page], as_json)
    finally:
        engine.close()


def _not_a_setting(out: Path) -> None:
    """Refuse an output named like a backend setting: ``-o nprobe=64`` meant ``--option`` before ``-o`` became
    ``--out`` in every command."""
    if "=" in out.name and not out.exists():
        from c2kd.errors import ConfigError

        raise ConfigError(f"-o/--out {out}: -o names the output in every command now; give backend settings "
                          f"with --option (or -O), e.g. --option {out.name}")


def _warn_of_absent_values(engine, filters) -> None:
    """A filter value no indexed video has (a typo such as ``split=tset``) is named with the field's values."""
    fields = engine.index.fields() if engine.index is not None else {}
    for field, wanted in (filters or {}).items():
        have = fields.get(field, {})
        values = wanted if isinstance(wanted, list | tuple | set) else [wanted]
        absent = [v for v in values if v not in have and str(v) not in {str(h) for h in have}]
        if have and absent:
            shown = ", ".join(sorted(map(str, have))[:20]) + (" ..." if len(have) > 20 else "")
            typer.echo(f"warning: no indexed video has {field}={absent[0]}; its values: {shown}", err=True)


def _answer_batch(engine, batch, out: Path, done: set[int], k: int, filters, group: bool,
                  channel: str | None) -> None:
    """Answer the queries ``out`` lacks into it, with a progress line; Ctrl-C keeps every answer written."""
    from c2kd.progress import progress_bar
    from c2kd.search.batch import answer_into

    bar = progress_bar(total=len(batch), initial=len(done), desc="searching", unit="query")
    count = 0
    try:
        for _ in answer_into(out, engine, batch, k, filters, group, done, channel):
            bar.update(1)
            count += 1
    except KeyboardInterrupt:
        from c2kd.progress import LogLines

        if not isinstance(bar, LogLines):  # a terminal's bar ends its line; a log gets no "done" line
            bar.close()
        typer.echo(f"interrupted: {len(done) + count} of {len(batch)} queries are answered in {out}; run the same "
                   "command again to answer the rest", err=True)
        raise typer.Exit(130) from None
    bar.close()
    before = f" ({len(done)} were answered before)" if done else ""
    typer.echo(f"answered {count} queries into {out}{before}")


def moments(
    video: str = typer.Argument(..., help="a video id of --index or --features, or a video file"),
    query: str = typer.Argument(..., help="what happens in the moment, in any language"),
    checkpoint: Path | None = typer.Option(None, help="checkpoint: trained, or made by `c2kd model aligned` or "
                                                      "`c2kd model fuse` (default: the one of --index)"),
    index: Path | None = typer.Option(None, help="index holding the video: its moment entries are scored, "
                                                 "nothing is re-embedded"),
    features: Path | None = typer.Option(None, help="feature store holding the video (when VIDEO is an id)"),
    lang: str | None = typer.Option(None, help="language of the query (a hint, validated)"),
    k: int = typer.Option(5, "-k", help="number of moments"),
    lengths: str = typer.Option(LENGTHS,
                                help="window lengths in seconds, comma-separated (stride: half a length, as in an "
                                     "index)"),
    iou: float = typer.Option(0.5, help="drop a moment overlapping a better one by more than this IoU"),
    encoder: str | None = typer.Option(None, help="frame encoder for a video file (default: the one the "
                                                     "checkpoint records, with its model; else from the model's "
                                                     "feature size)"),
    fps: float = typer.Option(1.0, help="frames per second sampled from a video file"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    device: str = typer.Option("cpu"),
    channel: str | None = typer.Option(None, help="shown (the pictures), said (subtitles and speech) or both "
                                                  "(default when the index has said moments)"),
) -> None:
    """Find the moments of one video that match a query (sliding windows + non-maximum suppression); with an
    index that has said moments, its shown and said moments in one ranking, each saying what found it."""
    from c2kd.errors import DataError
    from c2kd.search.channels import check_channel
    from c2kd.search.engine import SearchEngine
    from c2kd.search.model import recorded
    from c2kd.search.moments import check_lengths
    from c2kd.search.query import QueryError

    try:
        window_lengths = [float(x) for x in lengths.split(",") if x.strip()]
    except ValueError:
        raise QueryError(f"--lengths {lengths!r} must be numbers of seconds, e.g. 2,4,8") from None
    check_lengths(window_lengths)
    if not math.isfinite(fps) or fps <= 0:
        raise DataError(f"--fps {fps}: give a positive number of frames per second, e.g. --fps 1")
    path = Path(video)
    is_file = path.is_file()
    if not is_file and features is None and index is None:
        raise DataError(f"{video!r} is not a video file; to use it as a video id, pass --index INDEX or "
                        "--features STORE")
    if index is None and checkpoint is None:
        raise DataError("give --checkpoint (or --index, whose checkpoint is then used)")
    if channel is not None and check_channel(channel) != "shown" and is_file:
        raise QueryError(f"--channel {channel}: a video file's moments are found by its pictures; index the video "
                         "with its subtitles or speech to search what is said in it")
    engine = SearchEngine.open(index, checkpoint=checkpoint, features=features if not is_file else None,
                               device=device)
    try:
        if is_file:
            from c2kd.search.extracting import encoder_for_file, features_from_file

            parts = engine.model.frame_encoder
            name, options = encoder_for_file(parts, engine.model.feature_dim, encoder)
            options.setdefault("device", device)
            used = checkpoint or recorded(None, engine.index.info if engine.index else {}, "checkpoint", index)
            feats, times, length = features_from_file(path, name, fps, options, expected=parts, checkpoint=used)
            response = engine.moments_of(path.stem, feats, times, query, lang, k, window_lengths, iou, length)
        else:
            response = engine.moments(video, query, lang, k, window_lengths, iou, channel)
    finally:
        engine.close()
    if as_json:
        typer.echo(json_text(response.to_dict()))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from c2kd.search.query import printable

    table = Table(title=escape(printable(f"{response.video_id}: {response.query.text} "
                                         f"({_clock(response.duration)} video)")))
    for column in ("rank", "start", "end", "score"):
        table.add_column(column, justify="right")
    said = any(getattr(m, "found_by", None) for m in response.moments)
    if said:
        table.add_column("found by")
        table.add_column("said")
    for m in response.moments:  # times as `search` shows them
        kinds = (getattr(m, "found_by", ""), escape(printable(getattr(m, "text", "")))) if said else ()
        table.add_row(str(m.rank), _clock(m.start), _clock(m.end), f"{m.score:.4f}", *kinds)
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``index`` (build/add/remove/info), ``search`` and ``moments`` to the ``c2kd`` command."""
    app.add_typer(index_app, name="index")
    app.command("search")(search)
    app.command("moments")(moments)
