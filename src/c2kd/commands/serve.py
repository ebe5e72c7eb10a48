"""Command ``c2kd serve``: the search service over HTTP (heavy imports inside the command)."""

from __future__ import annotations

from pathlib import Path

import typer


def serve(
    index: Path = typer.Argument(..., help="index folder"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 exposes it to the network)"),
    port: int = typer.Option(8000),
    videos: list[Path] = typer.Option([], help="folder(s) the video files are served from (nothing else is)"),
    features: Path | None = typer.Option(None, help="feature store for moments (default: the index's)"),
    checkpoint: Path | None = typer.Option(None, help="default: the checkpoint the index was built with"),
    option: list[str] = typer.Option([], "--option", "-O", metavar="NAME=VALUE", help="backend setting, e.g. nprobe=64"),
    old_option: list[str] = typer.Option([], "-o", hidden=True, help="the old short name of --option (-o means "
                                                                     "--out in every other command)"),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="let pages from this origin (e.g. "
                                          "https://example.org) call the API from a browser (repeatable; off by "
                                          "default)"),
    device: str = typer.Option("cpu"),
    workers: int = typer.Option(1, help="serving processes (forked after loading: the model and the memory-mapped "
                                        "index are shared); each has its own /api/ready"),
    graceful_timeout: float = typer.Option(30.0, help="seconds requests in flight get to finish after SIGTERM"),
) -> None:
    """Serve search, moments and video playback over HTTP, with a web page at / and API docs at /api/docs."""
    from c2kd.errors import ConfigError
    from c2kd.index import parse_options
    from c2kd.index.options import check_search_options
    from c2kd.serve.app import ServeSettings
    from c2kd.serve.workers import WorkerSettings, check_workers

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: give a port number from 1 to 65535 (0: any free port), e.g. --port 8000")
    if not graceful_timeout >= 0:
        raise ConfigError(f"--graceful-timeout {graceful_timeout}: give 0 or more seconds, e.g. 30")
    check_workers(workers, device, None)

    options = parse_options([*option, *old_option])
    check_search_options(index, options)  # refused now, not on every request once serving
    sock = listening_socket(host, port, shared=workers > 1)  # a busy port: one line before the model loads
    settings = ServeSettings(index=index, checkpoint=checkpoint, features=features, video_roots=list(videos),
                             device=device, options=options, cors_origins=list(cors_origin))
    plan = WorkerSettings(workers=workers, host=host, port=sock.getsockname()[1], graceful_timeout=graceful_timeout)
    if workers == 1:
        serve_one(settings, plan, sock)
    else:
        code = serve_forked(settings, plan, sock)
        if code:
            raise typer.Exit(code)


def _uvicorn_server(app, plan):
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, host=plan.host, port=plan.port, log_level=plan.log_level,
                                         timeout_graceful_shutdown=plan.graceful_timeout))


def page_url(host: str, port: int) -> str:
    """The address of the search page on ``host:port`` as a browser on this machine opens it (a wildcard host is
    reached on the loopback address)."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"  # an IPv6 address in a URL
    return f"http://{shown}:{port}/"


def announce(settings, plan, app) -> None:
    """Say, once the model is loaded, where the page is (the real port when ``--port 0`` let the OS choose), and
    once which indexed videos have no file to play under the video folders."""
    missing, roots = app.state.without_files, app.state.video_roots
    if missing:
        typer.echo(f"warning: {len(missing)} indexed video(s) have no file <id>.<ext> under "
                   f"{', '.join(map(str, roots))} (e.g. {missing[0]!r}): they are listed without playback",
                   err=True)
    typer.echo(f"serving {settings.index}: open {page_url(plan.host, plan.port)} (the search page; API reference at "
               "/api/docs). Ctrl-C stops it.", err=True)


def serve_one(settings, plan, sock) -> None:
    """One process: load, warm up, serve on ``sock`` until SIGTERM/SIGINT (requests in flight finish)."""
    from c2kd.serve.app import create_app
    from c2kd.serve.threads import limit_blas_threads, limit_malloc_arenas

    limit_blas_threads(1)  # requests run in parallel threads: one BLAS thread each (see c2kd.serve.threads)
    limit_malloc_arenas()
    app = create_app(settings)
    sock.listen(2048)  # requests wait in the backlog from now on, while the server starts
    announce(settings, plan, app)
    _uvicorn_server(app, plan).run(sockets=[sock])


def serve_forked(settings, plan, sock) -> int:
    """Load once with one torch thread (no thread pool may exist before ``fork``), then fork ``plan.workers``
    workers (:mod:`c2kd.serve.workers`), the first on ``sock`` (bound to share its port), the others on sockets
    bound beside it; returns the exit code."""
    import gc
    import logging

    import torch

    from c2kd.serve.app import create_app
    from c2kd.serve.threads import limit_blas_threads, limit_malloc_arenas
    from c2kd.serve.workers import check_workers, reuseport_sockets, run_workers

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    torch.set_num_threads(1)
    limit_blas_threads(1)
    limit_malloc_arenas()
    app = create_app(settings, warmed=False)
    engine = app.state.engine
    check_workers(plan.workers, settings.device, engine.index.backend if engine.index is not None else None)
    sockets = reuseport_sockets(sock, plan.workers)
    gc.collect()
    gc.freeze()  # the loaded objects leave the collector's view: its passes would copy their pages into every worker
    announce(settings, plan, app)

    def before() -> None:
        torch.set_num_threads(plan.torch_threads)
        limit_blas_threads(1)
        engine.after_fork()

    return run_workers(plan, sockets, lambda sock: _uvicorn_server(app, plan).run(sockets=[sock]), before)


def listening_socket(host: str, port: int, shared: bool = False):
    """A socket bound to ``host:port`` for the server (port 0: any free one), or a ConfigError saying why not.

    ``shared``: the first of the sockets of several workers on one port (``SO_REUSEPORT``). A port asked for is
    first checked free by binding it alone (sockets sharing a port would silently share it with another server
    of this user), then bound shared; port 0 is bound shared at once, so the port the OS chose is held from the
    start (an unused one: the OS picks a port no socket holds)."""
    import errno
    import socket

    from c2kd.errors import ConfigError

    if shared and not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("--workers needs SO_REUSEPORT, which this system lacks; use --workers 1")
    if shared and port:
        listening_socket(host, port).close()

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        raise ConfigError(f"--host {host!r} is not an address of this machine; use e.g. 127.0.0.1 or 0.0.0.0") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is in use (another server?): stop it, or choose another "
                              "--port") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(f"--port {port}: not allowed for this user (ports below 1024 need privileges); use "
                              "e.g. --port 8000") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host and --port") from None
    return sock


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``c2kd`` command."""
    app.command("serve")(serve)
