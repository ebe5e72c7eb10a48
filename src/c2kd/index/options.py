"""The ``-o name=value`` settings of the index's search and of each backend: declared, parsed and checked.

``c2kd index build/search/serve -o name=value`` hands them over; an unknown name or a value out of range is
refused at once with the option's range and the names that exist, before any model loads or index opens.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from c2kd.errors import ConfigError


@dataclass(frozen=True)
class Option:
    """One ``-o name=value`` setting: its type (int, float or str), inclusive range or choices, and meaning."""

    name: str
    type: type
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    #: False for a setting of the built structure (``kind``, ``nlist``, ...): given at build time only
    at_search: bool = True

    def accepts(self) -> str:
        """What the option takes, e.g. ``an integer >= 1`` or ``one of ivf, ivfpq, hnsw``."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        what = {int: "an integer", float: "a number", str: "text"}[self.type]
        if self.low is not None and self.high is not None:
            return f"{what} from {self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"{what} >= {self.low:g}"
        return what

    def check(self, value: Any, owner: str) -> Any:
        """The value as the option's type, or a ConfigError naming the value and what the option takes."""
        def refuse() -> ConfigError:
            return ConfigError(f"{owner} option {self.name}={value!r} is not valid: {self.name} ({self.help}) "
                               f"takes {self.accepts()}")

        if self.type is str:
            if not isinstance(value, str) or not value or (self.choices and value not in self.choices):
                raise refuse()
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise refuse()
        if self.type is int and (not float(value).is_integer()):
            raise refuse()
        number = self.type(value)
        if not math.isfinite(number) or (self.low is not None and number < self.low) \
                or (self.high is not None and number > self.high):
            raise refuse()
        return number


def check_options(options: Mapping[str, Any], declared: Iterable[Option], owner: str) -> dict[str, Any]:
    """The options, each checked against its declaration; an unknown name is refused with the known ones."""
    known = {option.name: option for option in declared}
    out = {}
    for name, value in options.items():
        if name not in known:
            names = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"{owner} has no option {name!r}; its options: {names}")
        out[name] = known[name].check(value, owner)
    return out


def describe_options(declared: Iterable[Option]) -> list[str]:
    """One line per option, for ``--help`` and the docs: ``nprobe: cells scanned per query (an integer >= 1)``."""
    return [f"{option.name}: {option.help} ({option.accepts()})" for option in declared]


def check_probes(backend: str, options: Mapping[str, Any]) -> None:
    """Refuse ``nprobe`` above ``nlist`` (more cells probed than an inverted-file index has)."""
    nlist, nprobe = options.get("nlist"), options.get("nprobe")
    if nlist is not None and nprobe is not None and nprobe > nlist:
        raise ConfigError(f"backend {backend!r} option nprobe={nprobe} is more cells than the index has (nlist="
                          f"{nlist}): use nprobe from 1 to {nlist}")


#: an approximate backend is asked for this many entries per video wanted (the index's own search setting)
CANDIDATES_PER_HIT = 300
#: search settings of the index itself (``-o name=value`` with the backend's): not passed to the backend
INDEX_OPTIONS = (Option("candidates_per_hit", int, "entries an approximate backend is asked for per video wanted "
                        f"(default {CANDIDATES_PER_HIT})", low=1),)


def split_options(backend: str, options: Mapping[str, Any],
                  searching: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """``-o`` settings as (the index's own, the backend's), each checked: an unknown name, a value out of range
    or (``searching``) a setting of the built structure is a :class:`ConfigError` naming what exists."""
    from c2kd.index.base import backend_class  # the backends declare their options with this module's Option

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
    from c2kd.index.base import BACKENDS

    return {"index": INDEX_OPTIONS, **{name: cls.OPTIONS for name, cls in BACKENDS.items()}}


def check_search_options(root: str | os.PathLike, options: Mapping[str, Any]) -> None:
    """Refuse bad ``-o`` settings for searching the index at ``root`` before anything heavy is loaded (the
    backend's range checks see the options it was built with, e.g. ``nprobe`` against its ``nlist``)."""
    from c2kd.index.base import backend_class
    from c2kd.index.segments import read_manifest

    spec = read_manifest(Path(root))["backend"]
    _, backend_options = split_options(spec["name"], options, searching=True)
    backend_class(spec["name"]).check_options({**spec.get("options", {}), **backend_options})


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``["nlist=1024", "kind=hnsw"]`` -> ``{"nlist": 1024, "kind": "hnsw"}`` (numbers parsed)."""
    from c2kd.options import key_value, scalar

    pairs = (key_value(item, "backend option", "name=value, e.g. nprobe=32") for item in items)
    return {key: scalar(value) for key, value in pairs}
