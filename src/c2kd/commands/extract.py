"""``c2kd extract``: video files -> per-second frame features in a feature store.

Also runnable as ``python -m c2kd extract ...`` (e.g. under ``torchrun -m c2kd extract ...``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from c2kd.errors import ConfigError
from c2kd.options import parse_encoder_options

if TYPE_CHECKING:
    from c2kd.encoders.frames import FrameEncoderSpec

DEFAULT_ENCODER = "vit-s14-focus"


def _from_checkpoint(checkpoint: Path, encoder: str | None,
                     options: dict[str, Any]) -> tuple[str | None, dict[str, Any], list[FrameEncoderSpec]]:
    """The encoder name and options a checkpoint records (explicit ones win, and are checked after building)."""
    from c2kd.encoders.frames import joined
    from c2kd.features.encoders import encoder_options
    from c2kd.formats import checkpoint_frame_encoder

    expected = checkpoint_frame_encoder(checkpoint)
    recorded = joined(expected)  # several parts: the ``concat`` encoder runs them all
    if recorded is None:  # a checkpoint made before c2kd recorded frame encoders
        typer.echo(f"{checkpoint} records no frame encoder; using --encoder "
                   f"{encoder or DEFAULT_ENCODER}", err=True)
        return encoder, options, []
    if encoder is None or encoder == recorded.name:
        return recorded.name, {**encoder_options(recorded), **options}, expected
    return encoder, options, expected


def _timed_text_settings(sources: str, speech: str | None, model: str | None, language: str | None,
                         encoding: str | None, device: str | None):
    """The timed-text step's settings from the options (None: no timed text), checked before any work."""
    from c2kd.features.timed_text.step import TimedTextSettings
    from c2kd.options import comma_list

    names = tuple(n for n in comma_list(sources) or [] if n != "none")
    if speech is None and (model is not None or language is not None):
        raise ConfigError("--speech-model and --speech-language are options of --speech ENGINE; add --speech")
    if not names and speech is None:
        return None
    settings = TimedTextSettings(sources=names, speech=speech, speech_model=model, speech_language=language,
                                 device=device, subtitle_encoding=encoding)
    settings.check()
    return settings


def _echo_timed_text(report) -> None:
    """The timed-text step's summary line, its warnings and the files it could not read."""
    for message in report.warnings:
        typer.echo(f"warning: {message}", err=True)
    typer.echo(f"timed text: {report.videos} video(s) read ({report.segments} segments), {report.already_done} "
               f"already done, {len(report.failed)} could not be read (their frames are kept; rerun to retry)")


def _raise_interrupt(signum, frame) -> None:  # pragma: no cover - exercised by the kill/rerun test
    raise KeyboardInterrupt(f"signal {signum}")


def register(app: typer.Typer) -> None:
    """Add the ``extract`` command to the ``c2kd`` CLI."""

    @app.command("extract")
    def extract(
        videos: list[Path] = typer.Argument(None, help="Video files and/or folders (searched recursively)."),
        out: Path = typer.Option(..., "--out", "-o", help="Feature store folder (created, or resumed)."),
        encoder: str | None = typer.Option(None, help="Frame encoder: vit-s14-focus (offline, 384-d; the default without "
                                                "--checkpoint), clip-vit-b32 (the paper's, 512-d), onnx, or concat "
                                                "(a fused model's encoders side by side: give --checkpoint)."),
        model: str | None = typer.Option(None, help="Model for the encoder: CLIP hub id or folder; ONNX file."),
        checkpoint: Path | None = typer.Option(None, help="Use the frame encoder this checkpoint's video tower reads "
                                                   "(its name and options, e.g. the CLIP model), so the features "
                                                   "fit the model."),
        option: list[str] = typer.Option(None, "--option", metavar="KEY=VALUE", help="Encoder option key=value (repeatable), e.g. "
                                                                  "pool=mean, size=256, mean=clip."),
        fps: float = typer.Option(1.0, help="Frames sampled per second of video."),
        workers: int = typer.Option(1, help="Decode processes (0: decode in the main process)."),
        batch_size: int = typer.Option(64, help="Frames per encoder call."),
        shard: str = typer.Option(None, help="i/n: extract only shard i of n (stable hash of the video id); "
                                             "'env' reads RANK/WORLD_SIZE (torchrun)."),
        id_from: str = typer.Option("stem", help="Video id: stem (file name without extension), name, or relpath "
                                                 "(path under the given folder)."),
        video_list: list[Path] = typer.Option(None, "--list", help="Text file with one video path per line."),
        retry_failed: bool = typer.Option(False, help="Retry files that failed in an earlier run."),
        device: str = typer.Option(None, help="cpu, cuda, cuda:1 (default: cuda when available)."),
        threads: int = typer.Option(0, help="Encoder threads for ONNX models (0: onnxruntime's choice)."),
        flush_seconds: float = typer.Option(60.0, help="Commit finished videos at least this often."),
        progress: bool = typer.Option(True, help="Show a progress bar."),
        engine: str = typer.Option("local", help="local (this process, --workers decoders) or ray (Ray Data: "
                                                 "actors on a Ray cluster, see --address; pip install "
                                                 "'c2kd[ray]')."),
        address: str | None = typer.Option(None, help="--engine ray: the cluster (auto, HOST:PORT, ray://...); "
                                                      "default $RAY_ADDRESS, else a local cluster for this run."),
        concurrency: int = typer.Option(1, min=1, help="--engine ray: actors, each with its own encoder (one GPU "
                                                       "each when the cluster has GPUs)."),
        tasks: int | None = typer.Option(None, min=1, help="--engine ray: units the videos are split into by id "
                                                           "hash (default 4 per actor)."),
        timed_text: str = typer.Option("sidecar,streams", help="Timed text stored with the frames: sidecar "
                                       "(subtitle files beside the video: talk.srt, talk.de.vtt), streams (subtitle "
                                       "streams inside it); comma-separated, or none."),
        speech: str | None = typer.Option(None, metavar="ENGINE", help="Also transcribe the audio: whisper "
                                          "(transformers), faster-whisper, or pocketsphinx (English, offline)."),
        speech_model: str | None = typer.Option(None, help="--speech model: a hub id or folder (whisper: default "
                                                           "openai/whisper-small; faster-whisper: a size or folder)."),
        speech_language: str | None = typer.Option(None, help="The spoken language (default: detected by Whisper)."),
        subtitle_encoding: str | None = typer.Option(None, help="Text encoding of the subtitle files (default: "
                                                                "UTF-8, else guessed with a warning)."),
    ) -> None:
        """Decode videos in order, sample FPS frames per second, encode them, store per-second features with
        their timestamps. Rerun the same command to resume; failures are listed in OUT/manifests/."""
        import math
        import signal

        from c2kd.features.encoders import build_frame_encoder
        from c2kd.features.extract import ExtractConfig, extract_videos
        from c2kd.features.jobs import ID_MODES, parse_shard

        if not videos and not video_list:
            raise ConfigError("give video files or folders, or --list FILE")
        if not math.isfinite(fps) or fps <= 0:
            raise ConfigError(f"--fps {fps}: give a positive number of frames per second, e.g. --fps 1")
        if id_from not in ID_MODES:
            raise ConfigError(f"--id-from {id_from!r}: use one of {ID_MODES}")
        from c2kd.data.features import STORE_FILE
        from c2kd.features.extract import MANIFEST_DIR
        from c2kd.io import check_output

        check_output(out, (STORE_FILE, MANIFEST_DIR), inputs=(checkpoint, *(video_list or [])), overwrite_option=None)
        options = parse_encoder_options(option)
        expected: list[FrameEncoderSpec] = []
        if checkpoint is not None:
            encoder, options, expected = _from_checkpoint(checkpoint, encoder, options)
        encoder = encoder or DEFAULT_ENCODER
        if model is not None:
            options["model"] = model
        if device is not None:
            options["device"] = device
        if threads and encoder != "clip-vit-b32":
            options["threads"] = threads
        if engine not in ("local", "ray"):
            raise ConfigError(f"--engine {engine!r}: use local or ray")
        if engine == "local" and (address is not None or tasks is not None or concurrency != 1):
            raise ConfigError("--address, --concurrency and --tasks are options of --engine ray; add --engine ray")
        index, total = parse_shard(shard)
        config = ExtractConfig(fps=fps, workers=workers, batch_size=batch_size, shard=(index, total),
                               id_from=id_from, retry_failed=retry_failed, flush_seconds=flush_seconds,
                               progress=progress,
                               timed_text=_timed_text_settings(timed_text, speech, speech_model, speech_language,
                                                               subtitle_encoding, device))
        frame_encoder = build_frame_encoder(encoder, **options)
        if expected:
            from c2kd.encoders.frames import check_frame_encoder, parts_of
            from c2kd.features.encoders import encoder_spec

            check_frame_encoder(expected, parts_of(encoder_spec(frame_encoder)),
                                f"c2kd extract --checkpoint {checkpoint}",
                                fix="Leave out --encoder/--model/--option to extract with the checkpoint's encoder.")
        where = f"shard {index}/{total}" if engine == "local" else f"on Ray, {concurrency} actor(s)"
        typer.echo(f"encoder {frame_encoder.name} ({frame_encoder.dim}-d), {fps:g} frame/s, {where} -> {out}",
                   err=True)
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            if engine == "ray":
                from c2kd.features.ray_engine import RayEngine, extract_on_ray

                report = extract_on_ray([str(v) for v in videos or []], out, frame_encoder, encoder, options, config,
                                        RayEngine(address=address, concurrency=concurrency, tasks=tasks),
                                        list_files=[str(p) for p in video_list or []])
            else:
                report = extract_videos([str(v) for v in videos or []], frame_encoder, out, config,
                                        list_files=[str(p) for p in video_list or []])
        finally:
            signal.signal(signal.SIGTERM, previous)
        typer.echo(f"shard {report.shard}: {report.done} extracted ({report.frames} frames, "
                   f"{report.videos_per_second:.2f} videos/s, {report.frames_per_second:.1f} frames/s), "
                   f"{report.already_done} already done, {len(report.failed)} failed, "
                   f"{report.skipped_failed} failed before (not retried)")
        for path, reason in report.failed[:20]:
            typer.echo(f"  failed: {path}: {reason}")
        if report.timed_text is not None:
            _echo_timed_text(report.timed_text)
        if report.failed or report.skipped_failed:
            typer.echo(f"failures are listed in {report.manifest}")
        if report.total and not report.done and not report.already_done:
            typer.echo("nothing was extracted: every input failed (see the reasons above); fix or remove those files "
                       "and run the command again", err=True)
            raise typer.Exit(code=1)
