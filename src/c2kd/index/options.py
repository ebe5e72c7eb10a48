"""The ``--option name=value`` settings of an index search and of each backend: parsed, split and checked together."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from c2kd.errors import ConfigError
from c2kd.index.base import BACKENDS, backend_class
from c2kd.index.segments import read_manifest
from c2kd.index.settings import Option, check_options, check_probes, describe_options

__all__ = ["CANDIDATES_PER_HIT", "INDEX_OPTIONS", "Option", "check_options", "check_probes", "check_search_options",
           "declared_options", "describe_options", "parse_options", "split_options"]


#: an approximate backend is asked for this many entries per video wanted (the index's own search setting)
CANDIDATES_PER_HIT = 300
#: search settings of the index itself (``--option name=value`` with the backend's): not passed to the backend
INDEX_OPTIONS = (Option("candidates_per_hit", int, "entries an approximate backend is asked for per video wanted "
                        f"(default {CANDIDATES_PER_HIT})", low=1),)


def split_options(backend: str, options: Mapping[str, Any],
                  searching: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """``-o`` settings as (the index's own, the backend's), each checked: an unknown name, a value out of range
    or (``searching``) a setting of the built structure is a :class:`ConfigError` naming what exists."""
    cls = backend_class(backend)
    own_names = {o.name for o in INDEX_OPTIONS}
    known = sorted(own_names | {o.name for o in cls.OPTIONS})
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"backend {backend!r} has no option {unknown[0]!r}; its options: {', '.join(known)}")
    built = sorted(o.name for o in cls.OPTIONS if not o.at_search and o.name in options) if searching else []
    if built:
        live = ", ".join(sorted(o.name for o in (*INDEX_OPTIONS, *cls.OPTIONS) if o.at_search))
        raise ConfigError(f"backend {backend!r} option {built[0]} is part of the built index: set it with `c2kd "
                          f"index build -o {built[0]}=...`; a search can change {live}")
    own = check_options({k: v for k, v in options.items() if k in own_names}, INDEX_OPTIONS, "the index")
    return own, cls.check_options({k: v for k, v in options.items() if k not in own_names})


def declared_options() -> dict[str, tuple[Option, ...]]:
    """Every ``-o`` setting there is: the index's own (``index``, for approximate backends) and each backend's."""
    return {"index": INDEX_OPTIONS, **{name: cls.OPTIONS for name, cls in BACKENDS.items()}}


def check_search_options(root: str | os.PathLike, options: Mapping[str, Any]) -> None:
    """Refuse bad ``-o`` settings for searching the index at ``root`` before anything heavy is loaded (the
    backend's range checks see the options it was built with, e.g. ``nprobe`` against its ``nlist``)."""
    spec = read_manifest(Path(root))["backend"]
    _, backend_options = split_options(spec["name"], options, searching=True)
    backend_class(spec["name"]).check_options({**spec.get("options", {}), **backend_options})


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``["nlist=1024", "kind=hnsw"]`` -> ``{"nlist": 1024, "kind": "hnsw"}`` (numbers parsed)."""
    from c2kd.options import key_value, scalar

    pairs = (key_value(item, "backend option", "name=value, e.g. nprobe=32") for item in items)
    return {key: scalar(value) for key, value in pairs}
