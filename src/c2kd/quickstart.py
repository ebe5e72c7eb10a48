"""Offline real-data commands: build the Multi30K proxy benchmark, and the quickstart run on it.

``c2kd quickstart`` is the whole method end to end on real multilingual text, on a CPU, with no model hub:
build the proxy dataset, train two teachers, then zero-shot, translate-train and C2KD students with frozen,
cached backbones (only the heads and the video tower train), print a per-language table, and answer example
queries in several languages.

Model choice (only three packaged text models exist, and the proxy "video" must be encoded by a model that no
text tower uses):

- proxy frames: multilingual USE (``packaged-muse``), the fastest (~650 sentences/s);
- student: multilingual-e5-small (``packaged-e5-small``), the only packaged model that reads Czech;
- teachers, reading the **English** caption as in C2KD: all-MiniLM-L6-v2 (``packaged-minilm``, English only:
  a legitimate teacher because teachers only read English), and a second e5 tower. The e5 teacher shares the
  student's frozen backbone, so what it can pass on is only the advantage of reading English rather than a
  stronger model; the MiniLM teacher is a genuinely different encoder. Both are trained first (MiniLM on English
  only, which is all it reads; e5 with translate-train, as in the paper) and then frozen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

import typer

FRAME_ENCODER = "packaged-muse"
STUDENT = "packaged-e5-small"
TEACHERS = ("packaged-minilm", "packaged-e5-small")
LANGS = ("en", "de", "fr", "cs")
EXAMPLE_QUERIES = (
    ("en", "A group of people dancing on a stage."),
    ("de", "Zwei Hunde rennen durch den Schnee."),
    ("fr", "Un homme fait du vélo dans la rue."),
    ("cs", "Malá holčička si hraje na pláži."),
)


def multi30k_proxy_command(
    out: Path = typer.Option(Path("data/multi30k-proxy"), "--out", "-o", help="Dataset folder to write."),
    data: Optional[Path] = typer.Option(
        None, "--data", help="Multi30K folder (with task1/ and task2/). Default: $C2KD_DATA, then ../shared/data, "
                             "then a download from the public Multi30K repository."),
    frame_encoder: str = typer.Option(
        FRAME_ENCODER, help="Text backbone that encodes the proxy frames (a preset of c2kd.encoders.registry); "
                            "choose one that is neither the student's nor a teacher's text encoder."),
    max_train: Optional[int] = typer.Option(None, min=1, help="Keep only the first N training items (speed)."),
    max_val: Optional[int] = typer.Option(None, min=1, help="Keep only the first N validation items."),
    max_test: Optional[int] = typer.Option(None, min=1, help="Keep only the first N test items."),
    download: bool = typer.Option(True, help="Download Multi30K when it is not found locally."),
    batch_size: int = typer.Option(256, min=1),
) -> None:
    """Build the Multi30K PROXY dataset: captions in en/de/fr/cs; each item's 'video' is its four other English
    descriptions encoded as frames. It measures cross-lingual retrieval on real text, not vision."""
    from c2kd.data.multi30k import build_multi30k_proxy, locate_multi30k

    located = locate_multi30k(data, download=download)
    typer.echo(located.message)
    build_multi30k_proxy(out, located.root, frame_encoder=frame_encoder, max_train=max_train, max_val=max_val,
                         max_test=max_test, batch_size=batch_size, log=typer.echo)


# -- the quickstart pipeline -----------------------------------------------------------------------------------
def _captions(dataset_dir: Path, languages: Sequence[str]) -> list[str]:
    """Every caption of every split in ``languages``."""
    import pyarrow.parquet as pq

    from c2kd.data.dataset import CAPTIONS_FILE

    t = pq.read_table(dataset_dir / CAPTIONS_FILE, columns=["lang", "text"]).to_pydict()
    return [text for text, lang in zip(t["text"], t["lang"]) if lang in languages]


def warm_caches(dataset_dir: Path, cache_dir: Path, echo: Callable[[str], None] = print) -> dict[str, float]:
    """Embed every caption once with each frozen backbone (students: all languages; MiniLM: English)."""
    from c2kd.encoders.cache import CachedTextBackbone
    from c2kd.encoders.registry import build_text_backbone

    seconds = {}
    for name, langs in ((STUDENT, LANGS), ("packaged-minilm", ("en",))):
        start = time.perf_counter()
        cached = CachedTextBackbone(build_text_backbone(name), cache_dir)
        texts = _captions(dataset_dir, langs)
        computed = sum(cached.warm(texts, max_tokens) for max_tokens in (35, 40))  # train and eval limits
        seconds[name] = time.perf_counter() - start
        echo(f"cache {name}: {len(set(texts))} captions ({', '.join(langs)}), {computed} newly embedded, "
             f"{seconds[name]:.0f} s")
    return seconds


def run_configs(dataset_dir: Path, runs_dir: Path, cache_dir: Path, epochs: int, batch_size: int, lr: float,
                seed: int, device: str, alpha: float, pooler: str) -> dict[str, dict]:
    """The five training runs, in order: two teachers, then zero-shot, translate-train and C2KD students."""

    def config(name: str, stage: str, text: str, run_seed: int, **extra) -> dict:
        data = {"path": str(dataset_dir), **extra.pop("data", {})}
        return {
            "stage": stage, "data": data, "seed": run_seed, "epochs": epochs, "batch_size": batch_size,
            "device": device, "out_dir": str(runs_dir / name), "tensorboard": False,
            "optim": {"lr": lr, "lr_decay": 0.9},
            "model": {"text": {"name": text, "trainable": False, "cache_dir": str(cache_dir)},
                      "video": {"feature_dim": 512}},
            **extra,
        }

    teachers = [str(runs_dir / "teacher-minilm"), str(runs_dir / "teacher-e5")]
    return {
        "teacher-minilm": config("teacher-minilm", "zero-shot", "packaged-minilm", seed + 101,
                                 data={"eval_languages": ["en"]}),
        "teacher-e5": config("teacher-e5", "translate-train", STUDENT, seed + 102),
        "zero-shot": config("zero-shot", "zero-shot", STUDENT, seed),
        "translate-train": config("translate-train", "translate-train", STUDENT, seed),
        # one folder per C2KD setting, so that `--alpha` / `--pooler` sweeps reuse the teachers and baselines
        "c2kd": config(f"c2kd-{pooler}-alpha{alpha:g}", "c2kd", STUDENT, seed, loss={"alpha": alpha},
                       teachers={"checkpoints": teachers, "pooler": pooler, "language": "english"}),
    }


def results_table(results: dict[str, dict], metrics: Sequence[str] = ("R@1", "R@5", "R@10")) -> str:
    """Markdown: one row per run, text-to-video metrics per language and their average."""
    from c2kd.evaluation.report import markdown_table

    header = ["setting", *(f"{lang} {m}" for m in metrics[:1] for lang in (*LANGS, "average")),
              *(f"average {m}" for m in metrics[1:])]
    rows = []
    for name, res in results.items():
        t2v = res["t2v"]
        cells = [f"{t2v[lang]['R@1']:.1f}" if lang in t2v else "-" for lang in (*LANGS, "average")]
        rows.append([name, *cells, *(f"{t2v['average'][m]:.1f}" for m in metrics[1:])])
    return markdown_table(header, rows)


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


def run_quickstart(out: Path, data: Path | None = None, download: bool = True, max_train: int | None = 2000,
                   max_val: int | None = 500, max_test: int | None = 1000, epochs: int = 10, batch_size: int = 64,
                   lr: float = 5e-4, seed: int = 0, device: str = "auto", alpha: float = 0.5, pooler: str = "max",
                   echo: Callable[[str], None] = print) -> dict[str, dict]:
    """Build the proxy data, warm the caches, train the five runs (resumable), return their test results."""
    from c2kd.data.multi30k import build_multi30k_proxy, locate_multi30k
    from c2kd.io import write_json, write_text
    from c2kd.train.config import TrainConfig
    from c2kd.train.run import finished_run_metrics, train

    started = time.perf_counter()
    out = Path(out)
    located = locate_multi30k(data, download=download)
    echo(located.message)
    dataset_dir, cache_dir, runs_dir = out / "data", out / "cache", out / "runs"
    build_multi30k_proxy(dataset_dir, located.root, frame_encoder=FRAME_ENCODER, max_train=max_train,
                         max_val=max_val, max_test=max_test, log=echo)
    timings = {"data": time.perf_counter() - started}
    timings.update({f"cache {k}": v for k, v in warm_caches(dataset_dir, cache_dir, echo).items()})
    results: dict[str, dict] = {}
    configs = run_configs(dataset_dir, runs_dir, cache_dir, epochs, batch_size, lr, seed, device, alpha, pooler)
    for name, cfg in configs.items():
        config = TrainConfig.model_validate(cfg)
        start = time.perf_counter()
        metrics = finished_run_metrics(config)
        if metrics is None:
            echo(f"training {name} ...")
            train(config, resume=True)
            metrics = finished_run_metrics(config)
        results[name] = metrics
        timings[f"train {name}"] = time.perf_counter() - start
        echo(f"{name}: test t2v average R@1 {results[name]['t2v']['average']['R@1']:.1f} "
             f"({timings[f'train {name}']:.0f} s)")
    timings["total"] = time.perf_counter() - started
    table = results_table(results)
    echo("\nMulti30K PROXY test (text -> 'video' = the item's four other English descriptions; "
         f"{results['c2kd']['protocol']['videos']} items). R@1 per language:\n")
    echo(table)
    write_text(out / "results.md", table + "\n")
    write_json(out / "results.json", {"results": results, "seconds": timings, "source": str(located.root),
                                      "settings": {"max_train": max_train, "max_val": max_val, "max_test": max_test,
                                                   "epochs": epochs, "lr": lr, "alpha": alpha, "pooler": pooler,
                                                   "seed": seed}})
    echo("\nExample queries (C2KD student, test items shown by their English caption):")
    example_queries(Path(configs["c2kd"]["out_dir"]), dataset_dir, echo)
    echo(f"\ndone in {timings['total'] / 60:.1f} min; results in {out / 'results.md'} and {out / 'results.json'}")
    return results


def quickstart_command(
    out: Path = typer.Option(Path("runs/quickstart"), "--out", "-o", help="Folder for data, caches and runs."),
    data: Optional[Path] = typer.Option(None, "--data", help="Multi30K folder (default: $C2KD_DATA, "
                                                             "../shared/data, or download)."),
    download: bool = typer.Option(True, help="Download Multi30K when it is not found locally."),
    max_train: int = typer.Option(2000, min=64, help="Training items (the e5 cache is the slow part)."),
    max_val: int = typer.Option(500, min=16),
    max_test: int = typer.Option(1000, min=16),
    epochs: int = typer.Option(10, min=1),
    lr: float = typer.Option(5e-4, help="Adam learning rate of the heads (backbones are frozen)."),
    seed: int = typer.Option(0),
    alpha: float = typer.Option(0.5, min=0.0, max=0.99, help="C2KD student: weight of NCE; 1 - alpha weighs C2KD."),
    pooler: str = typer.Option("max", help="C2KD student: how the teachers' scores are pooled (min, max, mean)."),
    device: str = typer.Option("auto"),
    threads: int = typer.Option(
        0, min=0, help="CPU threads for torch and the e5 engine; 0 = auto (1 when the machine is busy: on a loaded "
                       "2-core machine two OpenMP threads made a training step ~10x and e5 ~2x slower)."),
) -> None:
    """Run C2KD end to end on real multilingual text with packaged models (no hub): Multi30K proxy data,
    two teachers, zero-shot / translate-train / C2KD students, a per-language table and example queries."""
    from c2kd.runtime import set_cpu_threads
    from c2kd.similarity import POOLERS

    if pooler not in POOLERS:
        raise typer.BadParameter(f"{pooler!r} is not a pooler; choose one of {', '.join(POOLERS)}",
                                 param_hint="--pooler")
    typer.echo(f"using {set_cpu_threads(threads)} CPU thread(s)")
    run_quickstart(out, data, download, max_train, max_val, max_test, epochs, lr=lr, seed=seed, device=device,
                   alpha=alpha, pooler=pooler, echo=typer.echo)


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart_command)
    app.command("multi30k-proxy")(multi30k_proxy_command)
