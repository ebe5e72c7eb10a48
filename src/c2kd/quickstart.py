"""The quickstart (``c2kd quickstart``): the whole method on the Multi30K proxy benchmark (built by ``c2kd multi30k-proxy``).

``c2kd quickstart`` is the whole method end to end on real multilingual text, on a CPU, with no model hub. It
starts from the best thing a user could do without training and only improves on it:

- **off-the-shelf**: the proxy's "frames" are multilingual USE vectors of each item's other English descriptions,
  so USE's own text tower is an *aligned pair* with them: querying it directly, with no training, is the baseline
  (``c2kd model aligned``). Its text tower also reads multilingual-e5-small (the backbone mix, ``--mix``), through
  a zero-initialised gate, because USE does not read Czech.
- every trained model **starts from that pair** (aligned heads: identity plus zero-initialised residuals; the e5
  map started by ridge regression) and model selection on val includes the start, so training never hands back
  a model that validates worse than the baseline (``best/``, the guarded choice); the tables show each run as
  trained too, at its best validation-average epoch (``best-average/``, the paper's protocol), the guarded row
  beside it (:func:`c2kd.experiments.compared_rows`);
- **zero-shot** (English only), **translate-train** (en de fr cs, NCE) and **C2KD** students; the C2KD teachers
  read the *English* caption: the off-the-shelf pair itself, ``teacher-en`` (the pair trained and selected on
  English alone), the **e5 pair** (e5 queries against e5 passages of the same descriptions: a second training-free
  model that reads its own frames, while the student keeps reading USE ones), or a set of them pooled
  (``TEACHER_SETS``). The quickstart's default is the pair alone: on 2,000 items ``teacher-en`` validates above
  the pair but tests below it, and the e5 pair needs every description embedded by e5 once more.

All backbones are frozen and their caption embeddings cached on disk, so only the heads train (minutes on a CPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from c2kd.experiments import PlannedRun

FRAME_ENCODER = "packaged-muse"
#: the aligned text backbone (it made the frames), then its backbone mix (e5 reads Czech, which USE does not)
TEXT_BACKBONES = ("packaged-muse", "packaged-e5-small")
LANGS = ("en", "de", "fr", "cs")
OFF_THE_SHELF = "off-the-shelf"
TEACHER_EN = "teacher-en"
E5_PAIR = "e5-pair"
#: the e5 pair: e5 reads the caption as a query and the item's descriptions as passages (its own proxy frames)
E5_TEXT, E5_FRAMES = "packaged-e5-small", "packaged-e5-small-passage"
#: who teaches the C2KD student (every teacher reads the English caption): a choice -> its teachers, pooled
TEACHER_SETS = {
    OFF_THE_SHELF: (OFF_THE_SHELF,), TEACHER_EN: (TEACHER_EN,), E5_PAIR: (E5_PAIR,),
    "both": (OFF_THE_SHELF, TEACHER_EN), "pairs": (OFF_THE_SHELF, E5_PAIR), "all": (OFF_THE_SHELF, TEACHER_EN, E5_PAIR),
}
TEACHER_CHOICES = tuple(TEACHER_SETS)
EXAMPLE_QUERIES = (
    ("en", "A group of people dancing on a stage."),
    ("de", "Zwei Hunde rennen durch den Schnee."),
    ("fr", "Un homme fait du vélo dans la rue."),
    ("cs", "Malá holčička si hraje na pláži."),
)


# -- the quickstart pipeline -----------------------------------------------------------------------------------
def _captions(dataset_dir: Path, languages: Sequence[str]) -> list[str]:
    """Every caption of every split in ``languages``."""
    import pyarrow.parquet as pq

    from c2kd.data.dataset import CAPTIONS_FILE

    t = pq.read_table(dataset_dir / CAPTIONS_FILE, columns=["lang", "text"]).to_pydict()
    return [text for text, lang in zip(t["text"], t["lang"]) if lang in languages]


def warm_caches(dataset_dir: Path, cache_dir: Path, echo: Callable[[str], None] = print,
                processes: int = 1) -> dict[str, float]:
    """Embed every caption (all languages) once with each frozen text backbone, in ``processes`` processes;
    returns seconds per backbone."""
    from c2kd.encoders.text.cache import CachedTextBackbone
    from c2kd.encoders.text.loading import build_text_backbone

    seconds = {}
    texts = _captions(dataset_dir, LANGS)
    for name in TEXT_BACKBONES:
        start = time.perf_counter()
        computed = CachedTextBackbone(build_text_backbone(name), cache_dir).warm(texts, processes=processes)
        seconds[name] = time.perf_counter() - start
        echo(f"cache {name}: {len(set(texts))} captions ({', '.join(LANGS)}), {computed} newly embedded, "
             f"{seconds[name]:.0f} s")
    return seconds


def student_model(cache_dir: Path, word_buckets: int | None = None) -> dict:
    """The aligned start every trained run shares (:func:`c2kd.zeroshot.aligned_model_config`): USE text (+ e5
    mixed in) against the mean of the USE frames, with a bag of ``word_buckets`` hashed words beside them (none: no
    word bag)."""
    from c2kd.zeroshot import aligned_model_config

    config = aligned_model_config(TEXT_BACKBONES[0], None, 512, TEXT_BACKBONES[1:], trainable=False,
                                  cache_dir=str(cache_dir), layers=0, word_buckets=word_buckets)
    return config.model_dump(mode="json", exclude_defaults=True)


def off_the_shelf_checkpoint(out: Path, dataset_dir: Path, cache_dir: Path) -> Path:
    """The training-free aligned pair (USE text vs USE frames; e5 mixed in, gated off): the baseline and a teacher."""
    from c2kd.checkpoint import WEIGHTS_FILE
    from c2kd.zeroshot import aligned_checkpoint

    if not (out / WEIGHTS_FILE).exists():
        aligned_checkpoint(out, text=TEXT_BACKBONES[0], mix=TEXT_BACKBONES[1:], frame_encoder=FRAME_ENCODER,
                           data=str(dataset_dir), cache_dir=cache_dir)
    return out


def e5_pair_checkpoint(out: Path, source: Path, dataset_dir: Path, cache_dir: Path,
                       limits: dict[str, int | None], echo: Callable[[str], None] = print, processes: int = 1) -> Path:
    """The second training-free pair, e5 queries against e5 passages of the item's descriptions (its own proxy
    frames, written to ``dataset_dir`` with the same items, ``limits`` per split): a baseline row and a teacher
    that reads its own frames. Returns ``out``; both are built once (the e5 passages are cached in ``cache_dir``,
    embedded in ``processes`` processes).
    """
    from c2kd.checkpoint import WEIGHTS_FILE
    from c2kd.data.multi30k import build_multi30k_proxy
    from c2kd.encoders.text.cache import CachedTextBackbone
    from c2kd.encoders.text.loading import build_text_backbone
    from c2kd.zeroshot import aligned_checkpoint

    passages = CachedTextBackbone(build_text_backbone(E5_FRAMES), cache_dir)
    build_multi30k_proxy(dataset_dir, source, frame_encoder=E5_FRAMES, max_train=limits.get("train"),
                         max_val=limits.get("val"), max_test=limits.get("test"), log=echo, backbone=passages,
                         processes=processes)
    if not (out / WEIGHTS_FILE).exists():
        aligned_checkpoint(out, text=E5_TEXT, frame_encoder=E5_FRAMES, data=str(dataset_dir.resolve()),
                           cache_dir=cache_dir)
    return out


@dataclass(frozen=True)
class QuickstartSettings:
    """The settings of the quickstart's training runs; a sweep varies them with `dataclasses.replace`."""

    epochs: int = 15
    batch_size: int = 128
    lr: float = 3e-4
    seed: int = 0
    device: str = "auto"
    #: C2KD student: weight of NCE (1 - alpha weighs C2KD)
    alpha: float = 0.2
    #: the C2KD teachers, one of ``TEACHER_CHOICES``; ``teacher-en`` is trained first when it teaches
    teachers: str = OFF_THE_SHELF
    #: how several teachers' scores are pooled
    pooler: str = "mean"
    #: rows of the trainable word bag beside the frozen backbones (``c2kd.encoders.words``; None: no word bag)
    word_buckets: int | None = 2**16
    #: epochs of the C2KD student alone (None: ``epochs``); its folder then ends in ``-epochs<N>``
    c2kd_epochs: int | None = None
    progress: bool = True


@dataclass(frozen=True)
class ProxySize:
    """How many Multi30K items the proxy keeps per split (None: all; embedding captions with e5 is the slow
    part)."""

    max_train: int | None = 2000
    max_val: int | None = 500
    max_test: int | None = 1000


def run_configs(dataset_dir: Path, runs_dir: Path, cache_dir: Path, settings: QuickstartSettings,
                teachers_dir: Path | None = None) -> dict[str, dict]:
    """The training runs, in order: [teacher-en,] zero-shot, translate-train, C2KD (all from the aligned start).

    Each run's folder is ``runs_dir/<name>``; C2KD's name holds its setting (``c2kd-<teachers>-alpha<alpha>``,
    ``c2kd-<teachers>-<pooler>-alpha<alpha>`` for several teachers, ``c2kd-<pooler>-alpha<alpha>`` for ``both``, as
    it was named before the other sets), so a sweep over settings reuses the other runs. The C2KD teachers read
    English: the training-free pairs (``teachers_dir / off-the-shelf`` and ``/ e5-pair``, default ``runs_dir``;
    see :func:`off_the_shelf_checkpoint`, :func:`e5_pair_checkpoint`) and ``teacher-en`` (the off-the-shelf pair
    trained on English captions and selected on English alone), their scores pooled with ``pooler``.
    """
    if settings.teachers not in TEACHER_CHOICES:
        raise ValueError(f"teachers={settings.teachers!r}: choose one of {', '.join(TEACHER_CHOICES)}")
    s = settings

    def config(name: str, stage: str, **extra) -> dict:
        data = {"path": str(dataset_dir), **extra.pop("data", {})}
        return {
            "stage": stage, "data": data, "seed": s.seed, "epochs": s.epochs,
            "batch_size": s.batch_size, "device": s.device, "out_dir": str(runs_dir / name), "tensorboard": False,
            "optim": {"lr": s.lr, "lr_decay": 0.9}, "model": student_model(cache_dir, s.word_buckets),
            "progress": s.progress,
            **extra,
        }

    teachers, runs = [], {}
    for teacher in TEACHER_SETS[s.teachers]:
        if teacher == TEACHER_EN:
            runs[TEACHER_EN] = config(TEACHER_EN, "zero-shot", data={"eval_languages": ["en"]})
            teachers.append(runs[TEACHER_EN]["out_dir"])
        else:
            teachers.append(str((teachers_dir or runs_dir) / teacher))
    runs["zero-shot"] = config("zero-shot", "zero-shot")
    runs["translate-train"] = config("translate-train", "translate-train")
    setting = (s.teachers if len(teachers) == 1 else s.pooler if s.teachers == "both"
               else f"{s.teachers}-{s.pooler}")
    name = f"c2kd-{setting}-alpha{s.alpha:g}" + (f"-epochs{s.c2kd_epochs}" if s.c2kd_epochs else "")
    runs["c2kd"] = config(name, "c2kd", loss={"alpha": s.alpha},
                          teachers={"checkpoints": teachers, "pooler": s.pooler, "language": "english"})
    if s.c2kd_epochs:
        runs["c2kd"]["epochs"] = s.c2kd_epochs
    return runs


def quickstart_plan(dataset_dir: Path, runs_dir: Path, cache_dir: Path, settings: QuickstartSettings,
                    teachers_dir: Path | None = None) -> dict[str, PlannedRun]:
    """The quickstart's runs (`run_configs`), validated, by name; run them with `c2kd.experiments.in_order`."""
    from c2kd.experiments import planned_runs

    return planned_runs(run_configs(dataset_dir, runs_dir, cache_dir, settings, teachers_dir))


def evaluate_checkpoint(checkpoint: Path, dataset_dir: Path) -> dict:
    """Test metrics of a checkpoint or fused checkpoint (t2v and v2t), kept in ``<checkpoint>/test_metrics.json``
    once computed."""
    import json

    from c2kd.checkpoint import TEST_METRICS_FILE
    from c2kd.data.dataset import VideoTextDataset
    from c2kd.evaluation.evaluator import RetrievalEvaluator
    from c2kd.formats import load_model
    from c2kd.io import write_json

    path = checkpoint / TEST_METRICS_FILE
    if path.exists():
        return json.loads(path.read_text())
    model = load_model(checkpoint)
    results = RetrievalEvaluator(VideoTextDataset(dataset_dir).split("test", list(LANGS)))(model.eval())
    write_json(path, results)
    return results


def results_table(results: dict[str, dict], direction: str = "t2v",
                  metrics: Sequence[str] = ("R@1", "R@5", "R@10")) -> str:
    """Markdown: one row per run, R@1 per language and their average, then average R@5 / R@10."""
    from c2kd.evaluation.report import markdown_table

    header = ["setting", *(f"{lang} {m}" for m in metrics[:1] for lang in (*LANGS, "average")),
              *(f"average {m}" for m in metrics[1:])]
    rows = []
    for name, res in results.items():
        per_lang = res[direction]
        cells = [f"{per_lang[lang]['R@1']:.1f}" if lang in per_lang else "-" for lang in (*LANGS, "average")]
        rows.append([name, *cells, *(f"{per_lang['average'][m]:.1f}" for m in metrics[1:])])
    return markdown_table(header, rows)


#: the settings that make one C2KD student differ from another (its row is labelled with them)
STUDENT_SETTINGS = ("alpha", "teachers", "pooler", "epochs", "lr", "batch_size", "seed", "max_train", "max_val",
                    "max_test")


def student_label(settings: dict) -> str:
    """The C2KD row's name: ``c2kd (alpha 0.2, teachers off-the-shelf)``, with the pooler when it is not mean."""
    pooler = settings.get("pooler", "mean")
    return (f"c2kd (alpha {settings['alpha']:g}, teachers {settings['teachers']}"
            f"{'' if pooler == 'mean' else ', pooler ' + str(pooler)})")


def earlier_students(previous: dict | None, settings: dict) -> dict[str, dict]:
    """The C2KD results of earlier quickstarts (``previous``: the ``results.json`` they left) whose settings differ
    from ``settings``, by :func:`student_label` (a label that recurs names its other settings too): what a rerun
    keeps beside its own rows."""
    if not previous:
        return {}
    runs = [(previous.get("settings", {}), previous.get("results", {}).get("c2kd"))]
    runs += [(run.get("settings", {}), run.get("results")) for run in previous.get("earlier", [])]
    mine = {k: settings.get(k) for k in STUDENT_SETTINGS}
    out: dict[str, dict] = {}
    for earlier, result in runs:
        if not result or "alpha" not in earlier or {k: earlier.get(k) for k in STUDENT_SETTINGS} == mine:
            continue
        label = student_label(earlier)
        if label == student_label(settings) or label in out:
            others = [k for k in STUDENT_SETTINGS if k not in ("alpha", "teachers", "pooler")]
            label = label[:-1] + ", " + ", ".join(f"{k} {earlier.get(k)}" for k in others
                                                  if earlier.get(k) != settings.get(k)) + ")"
        out.setdefault(label, {"settings": earlier, "results": result})
    return out


def previous_results(path: Path) -> dict | None:
    """What an earlier quickstart left in ``results.json`` (None: no file, or one that cannot be read)."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def gain_over(results: dict[str, dict], name: str, reference: str, direction: str = "t2v") -> str:
    """R@1 of run ``name`` minus that of ``reference`` per language and on average, both as trained (at their
    best validation-average epochs): ``"en +0.4, de +1.2, ..."``."""
    from c2kd.experiments import as_trained

    ours, theirs = as_trained(results[name])[direction], as_trained(results[reference])[direction]
    return ", ".join(f"{lang} {ours[lang]['R@1'] - theirs[lang]['R@1']:+.1f}" for lang in (*LANGS, "average")
                     if lang in ours and lang in theirs)


def below_baseline(results: dict[str, dict], name: str, baseline: str = OFF_THE_SHELF,
                   direction: str = "t2v") -> list[str]:
    """Languages in which run ``name`` as trained has a lower R@1 than ``baseline`` (as ``"cs 30.1 < 34.2"``)."""
    from c2kd.experiments import as_trained

    ours, base = as_trained(results[name])[direction], as_trained(results[baseline])[direction]
    return [f"{lang} {ours[lang]['R@1']:.1f} < {base[lang]['R@1']:.1f}" for lang in LANGS
            if lang in ours and lang in base and ours[lang]["R@1"] < base[lang]["R@1"]]


def example_queries(checkpoint: Path, dataset_dir: Path, echo: Callable[[str], None] = print, k: int = 3) -> None:
    """Rank the test items for a few free-text queries in four languages with the C2KD student."""
    from c2kd.checkpoint import load_checkpoint
    from c2kd.data.dataset import VideoTextDataset

    model, _ = load_checkpoint(checkpoint)
    model.eval()
    test = VideoTextDataset(dataset_dir).split("test", ["en"])
    videos = model.embed_videos([test.frames(i) for i in range(len(test))])
    queries = model.embed_texts([q for _, q in EXAMPLE_QUERIES])
    scores = queries @ videos.T
    for (lang, query), row in zip(EXAMPLE_QUERIES, scores):
        echo(f"[{lang}] {query}")
        for rank, i in enumerate(row.topk(k).indices.tolist(), 1):
            echo(f"   {rank}. {test.video_ids[i]}  {test.captions['en'][i][0]}  ({row[i]:.2f})")


def build_proxy(out: Path, size: ProxySize, data: Path | None, download: bool,
                echo: Callable[[str], None]) -> tuple[Path, Path, Path, Path]:
    """Locate Multi30K (``data``, else as :func:`~c2kd.data.multi30k.locate_multi30k` says) and build the proxy of
    ``size`` in ``out/data`` (resumable). Returns the Multi30K folder, and the data, cache and runs folders."""
    from c2kd.data.multi30k import build_multi30k_proxy, locate_multi30k

    located = locate_multi30k(data, download=download)
    echo(located.message)
    dataset_dir, cache_dir, runs_dir = out / "data", out / "cache", out / "runs"
    build_multi30k_proxy(dataset_dir, located.root, frame_encoder=FRAME_ENCODER, max_train=size.max_train,
                         max_val=size.max_val, max_test=size.max_test, log=echo)
    return located.root, dataset_dir, cache_dir, runs_dir


def run_quickstart(out: Path, settings: QuickstartSettings = QuickstartSettings(), size: ProxySize = ProxySize(),
                   data: Path | None = None, download: bool = True, echo: Callable[[str], None] = print,
                   processes: int = 1) -> dict[str, dict]:
    """Build the proxy data (``size``), warm the caches (in ``processes`` processes), evaluate the off-the-shelf
    pair, train the runs of ``settings`` (resumable), and return every test result (off-the-shelf first)."""
    from c2kd.experiments import compared_rows, guard_note, guarded_label, in_order, train_or_read
    from c2kd.io import write_json, write_text

    started = time.perf_counter()
    out = Path(out)
    source, dataset_dir, cache_dir, runs_dir = build_proxy(out, size, data, download, echo)
    timings = {"data": time.perf_counter() - started}
    timings.update({f"cache {k}": v for k, v in warm_caches(dataset_dir, cache_dir, echo, processes).items()})
    results: dict[str, dict] = {
        OFF_THE_SHELF: evaluate_checkpoint(off_the_shelf_checkpoint(runs_dir / OFF_THE_SHELF, dataset_dir, cache_dir),
                                           dataset_dir)}
    echo(f"{OFF_THE_SHELF} (USE text vs USE frames, no training): test t2v average R@1 "
         f"{results[OFF_THE_SHELF]['t2v']['average']['R@1']:.1f}")
    if E5_PAIR in TEACHER_SETS[settings.teachers]:
        limits = {"train": size.max_train, "val": size.max_val, "test": size.max_test}
        e5_pair = e5_pair_checkpoint(runs_dir / E5_PAIR, source, out / "data-e5", cache_dir, limits, echo,
                                     processes)
        results[E5_PAIR] = evaluate_checkpoint(e5_pair, out / "data-e5")
        echo(f"{E5_PAIR} (e5 text vs e5 frames, no training): test t2v average R@1 "
             f"{results[E5_PAIR]['t2v']['average']['R@1']:.1f}")
    plan = quickstart_plan(dataset_dir, runs_dir, cache_dir, settings)
    for run in in_order(plan.values()):
        name = run.name
        start = time.perf_counter()
        echo(f"{name} ...")
        results[name] = train_or_read(run.config)
        timings[f"train {name}"] = time.perf_counter() - start
        echo(f"{name}: test t2v average R@1 {results[name]['t2v']['average']['R@1']:.1f} "
             f"({timings[f'train {name}']:.0f} s)")
    timings["total"] = time.perf_counter() - started
    run_settings = {**asdict(size), **{k: getattr(settings, k) for k in (
        "epochs", "batch_size", "lr", "alpha", "teachers", "pooler", "seed")}}
    earlier = earlier_students(previous_results(out / "results.json"), run_settings)
    # the rows shown: this run's, its C2KD student named by its settings, then the students of earlier settings;
    # every trained run as trained (best validation-average epoch), then its guarded best/ beside it
    named = {(student_label(run_settings) if name == "c2kd" else name): res for name, res in results.items()}
    named.update({label: run["results"] for label, run in earlier.items()})
    shown = compared_rows(named)
    tables = {direction: results_table(shown, direction) for direction in ("t2v", "v2t")}
    echo(f"\nMulti30K PROXY test ({results['c2kd']['protocol']['videos']} items; 'video' = the item's four other "
         "English descriptions as USE frames). The rows before the trained runs are the baselines (no "
         "training).\n")
    echo("text -> video\n" + tables["t2v"] + "\n\nvideo -> text\n" + tables["v2t"])
    note = guard_note(named)
    echo("\n" + note)
    gain = gain_over(results, "c2kd", "translate-train")
    echo(f"\nC2KD student vs translate-train, both as trained (t2v R@1): {gain}")
    worse = below_baseline(results, "c2kd")
    echo("C2KD student (as trained) vs off-the-shelf: " + ("at or above it in every language" if not worse
                                                           else "BELOW it in " + ", ".join(worse)))
    write_text(out / "results.md", "## text -> video\n\n" + tables["t2v"] + "\n\n## video -> text\n\n"
               + tables["v2t"] + f"\n\n{note}\n\nC2KD vs translate-train, both as trained (t2v R@1): {gain}\n")
    from c2kd.evaluation.plots import png_or_reason, recall_figure

    guarded = {guarded_label(name, res): name for name, res in named.items() if "selection" in res}
    echo(png_or_reason(out / "results.png", lambda: recall_figure(
        shown, title="Multi30K PROXY test: each run as trained, then guarded (hatched)", guarded=guarded)))
    # results: each run's test_metrics.json (best/, guarded, at the top; "as_trained": best-average/); rows: the
    # table as shown
    write_json(out / "results.json", {"results": results, "rows": shown, "seconds": timings,
                                      "source": str(source), "settings": run_settings,
                                      "earlier": list(earlier.values())})
    echo("\nExample queries (C2KD student, test items shown by their English caption):")
    example_queries(plan["c2kd"].folder, dataset_dir, echo)
    echo(f"\ndone in {timings['total'] / 60:.1f} min; results in {out / 'results.md'} and {out / 'results.json'}")
    echo("\n".join(next_commands(plan["c2kd"].folder, dataset_dir, out / "index")))
    return results


def quickstart_index(out: Path, settings: QuickstartSettings = QuickstartSettings()) -> Path:
    """An index of the test items of the quickstart in ``out``, embedded by its C2KD student (run it first):
    what ``c2kd quickstart --serve`` serves."""
    from c2kd.search.building import build_index

    student = quickstart_plan(out / "data", out / "runs", out / "cache", settings)["c2kd"].folder
    return build_index(student, out / "data", out / "index", splits=("test",), progress=False)


#: the aligned pair (text preset, frame encoder preset) to search real videos with (docs/search.md#pairs)
BEST_PAIR = ("siglip2-so400m-patch14-384-text", "siglip2-so400m-patch14-384")


def next_commands(checkpoint: Path, dataset_dir: Path, index: Path) -> list[str]:
    """What to run next with the quickstart's student: index the proxy items, search them, serve them."""
    return ["\nNext: index the proxy's items with the C2KD student, search them in any language, serve them "
            "(this model reads the text proxy, not video)",
            f"  c2kd index build --checkpoint {checkpoint} --features {dataset_dir} --out {index}",
            f"  c2kd search {index} \"ein Hund rennt über eine Wiese\"",
            f"  c2kd serve {index}",
            "For your own videos, the best pair is SigLIP 2 (a hub download; a GPU for So400m, docs/search.md#pairs):",
            f"  c2kd model aligned --text {BEST_PAIR[0]} --frame-encoder {BEST_PAIR[1]} --out runs/siglip2",
            "  c2kd extract VIDEOS --checkpoint runs/siglip2 --out features/ --device cuda",
            "  c2kd index build --checkpoint runs/siglip2 --features features/ --out index/ --videos VIDEOS"]
