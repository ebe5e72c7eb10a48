"""One ``--option name=value`` setting as a backend (or the index's search) declares it: name, type, range, meaning, check.

``c2kd index build/search/serve --option name=value`` hands them over (:mod:`c2kd.index.options`); an unknown name or
a value out of range is refused at once with the option's range and the names that exist, before any model
loads or index opens.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from c2kd.errors import ConfigError


@dataclass(frozen=True)
class Option:
    """One ``--option name=value`` setting: its type (int, float or str), inclusive range or choices, and meaning."""

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
