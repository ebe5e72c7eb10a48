"""Loading from the Hugging Face hub or a local folder, failing fast when the hub is out of reach.

With no network, ``from_pretrained`` of a model that is not in the local cache retries for about half a minute
before it gives up with a generic message. :func:`ensure_hub_source` checks first: a local folder, or a hub id
whose files are cached, passes (loaded from the cache only when the hub is out of reach); otherwise, when
``HF_HUB_OFFLINE`` is set or the hub's host cannot be reached, it raises at once a
:class:`~c2kd.errors.ConfigError` that names the fix (download the model where the hub is reachable and pass its
folder).
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from c2kd.errors import ConfigError

_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def looks_like_path(source: str) -> bool:
    """Whether ``source`` is meant as a folder (hub ids are ``name`` or ``owner/name``)."""
    return (source.startswith(("/", ".", "~")) or source.count("/") > 1 or os.sep in source.replace("/", "")
            or Path(source).exists())


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` set to a true value."""
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
               for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@functools.lru_cache(maxsize=4)
def _reachable(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub's host opens (assumed yes behind an HTTP proxy)."""
    if any(os.environ.get(var) for var in _PROXY_VARIABLES):
        return True
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:  # pragma: no cover - transformers always brings huggingface_hub
        endpoint = "https://huggingface.co"
    url = urlparse(endpoint)
    return _reachable(url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80), timeout)


def is_cached(repo_id: str, filename: str) -> bool:
    """Whether ``filename`` of the hub repository ``repo_id`` is in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except Exception:  # noqa: BLE001 - an invalid id or an old huggingface_hub: treat as not cached
        return False


def ensure_hub_source(source: str, what: str, probe_file: str = "config.json",
                      use_as: str = "DIR") -> dict[str, Any]:
    """Refuse at once a model that can be neither read locally nor downloaded; return the loading options.

    ``source`` is a local folder or a hub id; ``what`` names the model in the message (e.g. "CLIP text tower");
    ``probe_file`` is a file every such repository has (its presence in the cache means "cached"); ``use_as``
    says how to name the downloaded folder instead (e.g. ``st:DIR``).

    Returns ``{"local_files_only": True}`` for a cached hub id when the hub is offline or out of reach (without it,
    ``from_pretrained`` retries every file for minutes), else ``{}``: pass it on to ``from_pretrained``.
    """
    if Path(source).expanduser().exists():
        return {}
    if looks_like_path(source):
        raise ConfigError(f"{what}: folder {source!r} not found; pass an existing model folder or a hub id")
    if hub_offline():
        reason = "HF_HUB_OFFLINE is set"
    elif not hub_reachable():
        reason = "the Hugging Face hub cannot be reached"
    else:
        return {}
    if is_cached(source, probe_file):
        return {"local_files_only": True}
    raise ConfigError(
        f"{what} {source!r} is not in the local Hugging Face cache and {reason}. Download it where the hub is "
        f"reachable (`hf download {source} --local-dir DIR`), copy DIR here and pass the local folder {use_as} "
        "instead of the hub id")


def ensure_hub_sources(models: Sequence[tuple[str, str, str, str]]) -> None:
    """:func:`ensure_hub_source` for every ``(source, what, probe_file, use_as)`` of a command before any loads,
    so that one message names every model missing here (a user fetches them all in one go)."""
    problems = []
    for source, what, probe_file, use_as in models:
        try:
            ensure_hub_source(source, what, probe_file, use_as)
        except ConfigError as exc:
            problems.append(str(exc))
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} models are missing here. " + " ".join(
            f"({number}) {problem}." for number, problem in enumerate(problems, 1)))


def load_error(source: str, what: str, exc: BaseException) -> ConfigError:
    """The error for a model that failed to load: the cause and the fix (a local folder)."""
    return ConfigError(f"cannot load {what} {source!r} ({type(exc).__name__}: {exc}). Pass a local folder that "
                       "holds the model, or a hub id reachable from here")
