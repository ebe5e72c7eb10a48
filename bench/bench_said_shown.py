"""What is shown, what is said, or both: search inside long videos where some items are talks, on real text.

Long videos are joined from the items of the Multi30K proxy (as ``bench_long_video.py`` joins them: a seeded
shuffle, ``--items`` per video, each feature row held 1 s, so an item lasts 4 s). Two layouts:

- **talks and scenes**: each item is, at random (half each), a *talk* or a *scene*. A talk's pictures are "a
  person talking" (4 rows, each one of a few generic sentences such as "A person is talking to the camera.",
  embedded by the proxy's frame encoder like its frames) and its subtitle line is an independent German
  description of the item's image (Multi30K task2 German, one of the five at random: written by German speakers,
  not a translation of any query), timed to the item's span. A scene keeps the proxy's own frames and has no
  subtitle.
- **pictured and subtitled**: every item keeps its frames and also has its German line.

Queries: each item's task1 caption in en, de, fr, cs; the answer is the long video holding the item, and the
item's span inside it. Everything goes through the product: a feature store with timed text, ``build_index``
(shown entries, the checkpoint's video tower over windows), ``build_said`` (said entries embedded by the words'
text encoder), the shown index's search and the said entries' scores ranked by :mod:`c2kd.search.channels`.

Chosen on ``val`` (mean video R@1 over both layouts and all languages): the words' text encoder (the packaged
e5, USE = ``packaged-muse``, or the index model's own text tower ``model``) and the fusion rule
(:func:`c2kd.search.channels.calibrate`: videos standardised per channel with statistics learned on val or per
query, the said weight, sum or max of the weighted channels; then, by val moment R@1, whether a moment found by
both channels ranks above every moment found by one). Reported on ``test`` per language: video R@1 and moment R@1 (IoU 0.5) for shown
only, said only and both; entries, build time, and the search time of one query by both channels (p50 / p99,
query embedding included, through :meth:`c2kd.search.engine.SearchEngine.search_page`).

The model: ``--checkpoint``, by default the quickstart's C2KD student in ``runs/quickstart/runs`` (made by
``c2kd quickstart``; the bench stops with an error naming that command when it is missing).

Usage:
    python bench/bench_said_shown.py                        # 200 val and 400 test items
    python bench/bench_said_shown.py --val-items 0 --test-items 0 --json out.json   # every item (3.7 min)
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from bench_long_video import Split, iou, write_store

from c2kd.data.features import FeatureStore, store_root
from c2kd.data.multi30k import SPLITS, encode_frames, locate_multi30k
from c2kd.data.timed_text import Segment, TimedTextWriter
from c2kd.encoders.text.loading import build_text_backbone
from c2kd.index import VideoIndex
from c2kd.search.building import build_index
from c2kd.search.channels import (
    RULES,
    SCALES,
    WEIGHTS,
    Fusion,
    calibrate,
    fuse_moments,
    fuse_videos,
    fused_video_scores,
)
from c2kd.search.engine import CANDIDATES, SearchEngine
from c2kd.search.model import load_search_model
from c2kd.search.said import SaidEncoder, SaidIndex, build_said
from c2kd.search.said_search import SaidChannel

#: what a talk's pictures show: generic sentences, embedded like the proxy's frames
TALKING = ("A person is talking to the camera.", "A man is speaking in front of a camera.",
           "A woman is talking to the camera.", "Someone is giving a talk.",
           "A person is speaking to an audience.", "A speaker explains something while looking at the camera.")
ENCODERS = ("packaged-e5-small", "packaged-muse", "model")
LAYOUTS = ("talks and scenes", "pictured and subtitled")
CHANNELS = ("shown", "said", "both")
LANGS = ("en", "de", "fr", "cs")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Memo:
    """A words' encoder that embeds each text once (the same queries and lines serve both layouts)."""

    def __init__(self, encoder: SaidEncoder) -> None:
        self.encoder, self.name, self.dim = encoder, encoder.name, encoder.dim
        self.lines: dict[str, np.ndarray] = {}
        self.queries: dict[str, np.ndarray] = {}

    @staticmethod
    def _cached(cache: dict[str, np.ndarray], embed, texts) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in cache))
        if todo:
            cache.update(zip(todo, embed(todo)))
        return np.stack([cache[t] for t in texts]) if len(texts) else np.zeros((0, 0), np.float32)

    def embed_lines(self, texts) -> np.ndarray:
        return self._cached(self.lines, self.encoder.embed_lines, list(texts))

    def embed_queries(self, texts) -> np.ndarray:
        return self._cached(self.queries, self.encoder.embed_queries, list(texts))


def find_checkpoint(run: Path) -> tuple[Path, str]:
    """The quickstart's C2KD student (path, what it is); exits with an error naming the command when missing."""
    students = sorted(p for p in (run / "runs").glob("c2kd*") if (p / "best").is_dir() or (p / "checkpoint.json")
                      .exists())
    if not students:
        print(f"error: no quickstart model in {run / 'runs'} (a c2kd* run): train it with `c2kd quickstart -o {run}` "
              "(about 15 min), or give another model with --checkpoint", file=sys.stderr)
        raise SystemExit(2)
    best = students[0] / "best"
    return (best if best.is_dir() else students[0]), f"the quickstart's C2KD student ({students[0].name})"


def german_lines(split_name: str, items: list[str], seed: int) -> dict[str, str]:
    """One of the five independent German descriptions (Multi30K task2) of each item's image, at random."""
    root = locate_multi30k(None, download=False).root
    _, t2, images = SPLITS[split_name]
    stems = [Path(line.strip()).stem for line in (root / "task2" / "image_splits" / f"{images}.txt").read_text()
             .splitlines()]
    row = {stem: i for i, stem in enumerate(stems)}
    texts = []
    for k in range(1, 6):
        with gzip.open(root / "task2" / "raw" / f"{t2}.{k}.de.gz", "rt", encoding="utf-8") as f:
            texts.append(f.read().splitlines())
    rng = np.random.default_rng(seed)
    return {item: texts[int(rng.integers(5))][row[item]].strip() for item in items}


@dataclass
class Layout:
    name: str
    videos: dict[str, tuple[np.ndarray, np.ndarray]]  # long video -> (features [T, F], times [T])
    where: dict[str, tuple[str, float, float]]  # item -> (long video, start, end)
    said: dict[str, list[Segment]]  # long video -> its subtitle lines
    talks: set[str]


def join(split: Split, items: list[str], per_video: int, layout: str, talking: np.ndarray, german: dict[str, str],
         seed: int) -> Layout:
    rng = np.random.default_rng(seed)
    order = [items[i] for i in rng.permutation(len(items))]
    talks = {item for item in order if rng.random() < 0.5} if layout == LAYOUTS[0] else set()
    videos, where, said = {}, {}, {}
    for n, first in enumerate(range(0, len(order), per_video)):
        vid = f"long{n:04d}"
        rows, lines, t = [], [], 0.0
        for item in order[first:first + per_video]:
            feats = split.features[item]
            if item in talks:
                feats = talking[rng.choice(len(talking), size=len(feats), replace=len(feats) > len(talking))]
            where[item] = (vid, t, t + len(feats))
            if layout == LAYOUTS[1] or item in talks:
                lines.append(Segment(t, t + len(feats), german[item], "de", "sidecar:bench"))
            rows.append(feats)
            t += len(feats)
        features = np.concatenate(rows).astype(np.float32)
        videos[vid] = (features, np.arange(len(features), dtype=np.float64))
        said[vid] = lines
    return Layout(layout, videos, where, said, talks)


@dataclass
class Scored:
    """One language's queries against one layout: each channel's per-video scores and moments."""

    items: list[str]
    gold: np.ndarray  # [Q] index of each query's long video
    shown: np.ndarray  # [Q, N] video scores (best window)
    shown_moments: list[dict[str, list[tuple[float, float, float]]]]  # per query: video -> moments
    said: np.ndarray  # [Q, N] video scores (best entry; NaN: no subtitles)
    entry_scores: np.ndarray  # [Q, E]


def score(index: VideoIndex, said: SaidIndex, layout: Layout, vectors: np.ndarray, said_vectors: np.ndarray,
          items: list[str]) -> Scored:
    videos = sorted(layout.videos)
    position = {v: i for i, v in enumerate(videos)}
    # the shown candidates the engine looks at for 10 results (the said channel scores every video it holds)
    hits = index.search(vectors, k=min(len(videos), max(10 * CANDIDATES, 50)), moments=3)
    shown = np.full((len(items), len(videos)), np.nan)
    moments = []
    for q, found in enumerate(hits):
        for h in found:
            shown[q, position[h.video_id]] = h.score
        moments.append({h.video_id: [(m.start, m.end, m.score) for m in h.moments] for h in found})
    entry = said_vectors @ np.asarray(said.vectors, np.float32).T
    said_scores = np.full((len(items), len(videos)), np.nan)
    for vid in said.videos:
        said_scores[:, position[vid]] = entry[:, said._rows[vid]].max(1)
    gold = np.array([position[layout.where[item][0]] for item in items])
    return Scored(items, gold, shown, moments, said_scores, entry)


def evaluate(scored: Scored, said: SaidIndex, layout: Layout, fusion: Fusion, channel: str) -> tuple[float, float]:
    """Video R@1 and moment R@1 (IoU 0.5) of one language's queries by one channel."""
    videos = sorted(layout.videos)
    video_hits = moment_hits = 0
    for q, item in enumerate(scored.items):
        shown = {v: float(s) for v, s in zip(videos, scored.shown[q]) if np.isfinite(s)}
        said_v = {v: float(s) for v, s in zip(videos, scored.said[q]) if np.isfinite(s)}
        ranked = fuse_videos(shown, said_v, fusion, channel, k=1)
        vid, start, end = layout.where[item]
        if not ranked or ranked[0][0] != vid:
            continue
        video_hits += 1
        said_moments = [(m.start, m.end, m.score, m.text) for m in said.moments_of(vid, scored.entry_scores[q], 3)]
        found = fuse_moments(scored.shown_moments[q].get(vid, []), said_moments, fusion, channel)
        moment_hits += bool(found) and iou((found[0].start, found[0].end), (start, end)) >= 0.5
    n = max(len(scored.items), 1)
    return 100.0 * video_hits / n, 100.0 * moment_hits / n


def prepare(args, split_name: str, n_items: int, seed: int, model, talking: np.ndarray, work: Path,
            encoders: tuple[str, ...], checkpoint: Path) -> dict:
    """Per layout: the index, its said entries per encoder and every language's scores."""
    split = Split.read(args.data, split_name)
    items = split.ids[:n_items] if n_items else split.ids
    items = [v for v in items if all(v in split.captions[lang] for lang in LANGS)]
    german = german_lines(split_name, items, seed)
    source = FeatureStore(store_root(args.data))
    memos = {name: Memo(SaidEncoder(name, model) if name == "model" else SaidEncoder(name)) for name in encoders}
    shown_queries = memos["model"] if "model" in memos else Memo(SaidEncoder("model", model))  # unit rows
    query_vectors = {lang: shown_queries.embed_queries([split.captions[lang][v] for v in items]) for lang in LANGS}
    log(f"{split_name}: {len(items)} items, queries embedded")
    out: dict = {}
    for layout_name in LAYOUTS:
        layout = join(split, items, args.items, layout_name, talking, german, seed)
        tag = f"{split_name}-{LAYOUTS.index(layout_name)}"
        store = write_store(layout, source, work / f"store-{tag}")  # type: ignore[arg-type]
        with TimedTextWriter(store) as writer:
            for vid, lines in layout.said.items():
                writer.add(vid, lines, ["sidecar:bench"])
        index_root = work / f"index-{tag}"
        started = time.perf_counter()
        build_index(checkpoint, store, index_root, progress=False, posters=False)
        shown_seconds = time.perf_counter() - started
        index = VideoIndex.open(index_root)
        per_encoder = {}
        for name in encoders:
            encoder = memos[name]
            started = time.perf_counter()
            said = build_said(index_root, store, encoder)
            said_seconds = time.perf_counter() - started
            assert said is not None
            said = SaidIndex(said.root, said.meta, np.array(said.vectors), said.video, said.start, said.end,
                             said.text, said.language)  # kept in memory: the folder is rebuilt by the next encoder
            scores = {lang: score(index, said, layout, query_vectors[lang],
                                  encoder.embed_queries([split.captions[lang][v] for v in items]), items)
                      for lang in LANGS}
            per_encoder[name] = {"said": said, "scores": scores, "said_s": said_seconds, "encoder": encoder}
            log(f"{split_name} | {layout_name} | {name}: {len(said)} said entries, {said_seconds:.1f} s")
        out[layout_name] = {"layout": layout, "index": index, "index_root": index_root, "store": store,
                            "shown_s": shown_seconds, "encoders": per_encoder, "items": items, "split": split}
    return out


#: the target of both minus the better single channel, per layout (the issue's "done when")
TARGETS = {LAYOUTS[0]: 5.0, LAYOUTS[1]: -1.0}


def learn(prepared: dict, encoder: str) -> tuple[Fusion, float, float, float, str]:
    """The rule chosen on val: each channel's statistics over every val query of both layouts
    (:func:`~c2kd.search.channels.calibrate`), then among every video standardisation, combination and said
    weight the one whose worst margin to the target (both minus the better single channel, minus the layout's
    target, video R@1, per layout and language) is best, ties (every target met) by mean video R@1; then whether
    moments found by both rank first, likewise by moment R@1 (ties: not). Returns it with its val mean video R@1, mean
    moment R@1 and worst video margin to the target."""
    groups = [(name, s) for name, p in prepared.items() for s in p["encoders"][encoder]["scores"].values()]
    stats = calibrate(np.concatenate([s.shown for _, s in groups]), np.concatenate([s.said for _, s in groups]),
                      np.concatenate([s.gold for _, s in groups]), weights=(0.5,), rules=("sum",))

    def r1(fused: np.ndarray, gold: np.ndarray) -> float:
        return 100.0 * float((np.argmax(fused, axis=1) == gold).mean())

    single = [max(r1(fused_video_scores(stats, s.shown, s.said, c), s.gold) for c in ("shown", "said"))
              for _, s in groups]
    best_key, chosen, chosen_worst = None, stats, 0.0
    per_scale: dict[str, tuple] = {}
    for scale in SCALES:
        for rule in RULES:
            for weight in WEIGHTS:
                fusion = replace(stats, said_weight=float(weight), rule=rule, scale=scale)
                got = [r1(fused_video_scores(fusion, s.shown, s.said), s.gold) for _, s in groups]
                worst = min(g - b - TARGETS[name] for g, b, (name, _) in zip(got, single, groups))
                key = (min(worst, 0.0), float(np.mean(got)), -abs(weight - 0.5))
                if best_key is None or key > best_key:
                    best_key, chosen, chosen_worst = key, fusion, worst
                if scale not in per_scale or key > per_scale[scale][0]:
                    per_scale[scale] = (key, fusion, worst)
    def moments(fusion: Fusion, channel: str) -> list[tuple[float, float]]:
        return [evaluate(s, prepared[name]["encoders"][encoder]["said"], prepared[name]["layout"], fusion, channel)
                for name, s in groups]

    single_moment = [max(a[1], b[1]) for a, b in zip(moments(chosen, "shown"), moments(chosen, "said"))]
    tried = []
    for both_first in (False, True):
        candidate = replace(chosen, both_first=both_first)
        r = moments(candidate, "both")
        worst = min(x[1] - b - TARGETS[name] for x, b, (name, _) in zip(r, single_moment, groups))
        tried.append(((min(worst, 0.0), float(np.mean([x[1] for x in r])), not both_first), candidate,
                      float(np.mean([x[0] for x in r])), float(np.mean([x[1] for x in r]))))
    _, fusion, video, moment = max(tried, key=lambda t: t[0])
    notes = "; ".join(f"videos standardised {'per query' if scale == 'query' else 'by val statistics'}: best "
                      f"{f.rule} {f.said_weight:g}, worst margin {worst:+.1f}, mean video R@1 {key[1]:.1f}"
                      for scale, (key, f, worst) in per_scale.items())
    notes += "; moments found by both first: " + ", ".join(
        f"{'yes' if t[1].both_first else 'no'} {t[3]:.1f}" for t in tried) + " mean moment R@1"
    return fusion, video, moment, chosen_worst, notes


def query_times(prepared: dict, encoder: str, checkpoint: Path, timed: int) -> dict:
    """p50 / p99 ms of one query by both channels through the engine (query embedding included)."""

    part = prepared[LAYOUTS[0]]
    said = build_said(part["index_root"], part["store"], part["encoders"][encoder]["encoder"])
    engine = SearchEngine(load_search_model(checkpoint), part["index"],
                          said=SaidChannel(said, encoder=part["encoders"][encoder]["encoder"]) if said else None)
    texts = [part["split"].captions[lang][v] for v in part["items"] for lang in LANGS][:timed]
    engine.search(texts[0])
    times = []
    for text in texts:
        started = time.perf_counter()
        engine.search(text, k=10, channel="both")
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "entries": part["index"].entries, "said_entries": len(said) if said else 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/quickstart"), help="the quickstart's folder")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the quickstart's model (see above)")
    parser.add_argument("--data", type=Path, default=None, help="the proxy data (default: RUN/data)")
    parser.add_argument("--items", type=int, default=10, help="items per long video")
    parser.add_argument("--val-items", type=int, default=200, help="val items used (0: all)")
    parser.add_argument("--test-items", type=int, default=400, help="test items used (0: all)")
    parser.add_argument("--encoders", default=",".join(ENCODERS), help="words' text encoders tried on val")
    parser.add_argument("--timed", type=int, default=100, help="queries timed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    args = parser.parse_args(argv)
    args.data = args.data or args.run / "data"
    if args.checkpoint is None:
        args.checkpoint, what = find_checkpoint(args.run)
    else:
        what = str(args.checkpoint)
    encoders = tuple(args.encoders.split(","))
    model = load_search_model(args.checkpoint)
    frame_encoder = FeatureStore(store_root(args.data)).meta.get("encoder") or "packaged-muse"
    talking = encode_frames(build_text_backbone(frame_encoder), list(TALKING), progress=False)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-said-") as tmp:
        work = Path(tmp)
        val = prepare(args, "val", args.val_items, args.seed, model, talking, work, encoders, args.checkpoint)
        learned = {name: learn(val, name) for name in encoders}
        for name, (fusion, r1, m1, worst, _) in learned.items():
            log(f"val | {name}: both video R@1 {r1:.1f}, moment R@1 {m1:.1f}, worst margin to target {worst:+.1f} "
                f"with {fusion}")
        chosen = max(encoders, key=lambda name: (learned[name][3], learned[name][1]))
        fusion = learned[chosen][0]
        for part in val.values():
            part["index"].close()
        shutil.rmtree(work / "index-val-0"), shutil.rmtree(work / "index-val-1")
        test = prepare(args, "test", args.test_items, args.seed + 1, model, talking, work, (chosen,),
                       args.checkpoint)
        results: dict = {}
        for layout_name, part in test.items():
            got = part["encoders"][chosen]
            for channel in CHANNELS:
                results.setdefault(layout_name, {})[channel] = {
                    lang: evaluate(got["scores"][lang], got["said"], part["layout"], fusion, channel) for lang in LANGS}
        timing = query_times(test, chosen, args.checkpoint, args.timed)
        first = test[LAYOUTS[0]]  # the second layout reuses the lines the first embedded: its said time is not one
        builds = {LAYOUTS[0]: (first["shown_s"], first["encoders"][chosen]["said_s"])}
        for part in test.values():
            part["index"].close()
    total = time.perf_counter() - started
    n_val, n_test = len(val[LAYOUTS[0]]["items"]), len(test[LAYOUTS[0]]["items"])
    talks = len(test[LAYOUTS[0]]["layout"].talks)
    print(f"## Shown, said, both: test split ({what}: {args.checkpoint})\n")
    print(f"{n_val} val / {n_test} test items, {args.items} per long video (4 s each); talks-and-scenes layout: "
          f"{talks} of the {n_test} test items are talks. Val (choice): per words' encoder, the rule whose worst margin to the "
          "target (both minus the better single channel minus 5 or -1, video R@1, per layout and language) is best, "
          "then mean R@1 by both over both layouts and 4 languages:\n")
    print("| words' encoder | val both video R@1 | val both moment R@1 | val worst margin to target | rule chosen "
          "on val |\n| --- | ---: | ---: | ---: | --- |")
    for name, (f, r1, m1, worst, _) in learned.items():
        mark = f"**{name}** (chosen)" if name == chosen else name
        videos = ("videos standardised per query (best 50 of each channel)" if f.scale == "query" else
                  "videos standardised by the val statistics")
        print(f"| {mark} | {r1:.1f} | {m1:.1f} | {worst:+.1f} | {f.rule}, said weight {f.said_weight:g}, {videos}; moments: shown "
              f"z = (s - {f.shown_mean:.3f}) / {f.shown_std:.3f}, said z = (s - {f.said_mean:.3f}) / "
              f"{f.said_std:.3f}{', found by both first' if f.both_first else ''} |")
    print("\nTried on val, per words' encoder: " + " | ".join(f"{name}: {v[4]}" for name, v in learned.items()))
    print("\nTest, video R@1 / moment R@1 (IoU 0.5) per language:\n")
    print("| layout | channel | " + " | ".join(LANGS) + " |\n| --- | --- | " + " | ".join("---:" for _ in LANGS) + " |")
    for layout_name, by_channel in results.items():
        for channel, by_lang in by_channel.items():
            print(f"| {layout_name} | {channel} | "
                  + " | ".join(f"{by_lang[lang][0]:.1f} / {by_lang[lang][1]:.1f}" for lang in LANGS) + " |")
    print("\nboth minus the better single channel, video R@1 / moment R@1 (target: >= +5 talks and scenes, >= -1 "
          "pictured and subtitled):\n")
    print("| layout | " + " | ".join(LANGS) + " |\n| --- | " + " | ".join("---:" for _ in LANGS) + " |")
    for layout_name, by_channel in results.items():
        print(f"| {layout_name} | " + " | ".join(" / ".join(
            f"{by_channel['both'][lang][m] - max(by_channel['shown'][lang][m], by_channel['said'][lang][m]):+.1f}"
            for m in (0, 1)) for lang in LANGS) + " |")
    print(f"\nEntries (talks and scenes, test): {timing['entries']} shown + {timing['said_entries']} said; build "
          + ", ".join(f"{name}: shown {a:.1f} s + said {b:.1f} s" for name, (a, b) in builds.items())
          + f"; one query by both channels (embedding included) p50 {timing['p50_ms']:.1f} ms, p99 "
          f"{timing['p99_ms']:.1f} ms; bench {total / 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps({"checkpoint": str(args.checkpoint), "chosen": chosen,
                                         "fusion": fusion.to_dict(), "val": {k: v[1:] for k, v in learned.items()},
                                         "test": results, "timing": timing, "builds": builds}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
