"""Named implementations that register themselves: the one registry style of c2kd.

Checkpoint formats, index backends, text backbone loaders and frame encoders are each a :class:`Registry`. An
implementation registers with a decorator beside its class or function::

    BACKENDS = Registry[type[Backend]]("index backend", modules=("c2kd.index.exact", "c2kd.index.faiss_backend"))

    @BACKENDS.register("faiss")
    class FaissBackend(Backend): ...

The registry imports its ``modules`` on the first lookup, so an implementation's module is imported only when a
name is looked up, and its heavy optional library only when it is built. A new implementation is one class in one
file, plus its module in ``modules``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from c2kd.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Implementations of one kind by name, in the order they registered.

    ``kind`` names the kind in messages (``"index backend"``); ``modules`` are imported on the first lookup;
    ``hint`` is appended to the error of an unknown name (e.g. where the choices are listed).
    """

    def __init__(self, kind: str, modules: tuple[str, ...] = (), hint: str = "") -> None:
        self.kind = kind
        self.modules = modules
        self.hint = hint
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated class or function under ``name`` (twice under one name: an error)."""

        def add(entry: T) -> T:
            self.add(name, entry)
            return entry

        return add

    def add(self, name: str, entry: T) -> None:
        """Register ``entry`` under ``name``; registering the same entry again (a module reloaded) is allowed."""
        if name in self._entries and self._entries[name] is not entry and not _same_definition(
                self._entries[name], entry):
            raise ValueError(f"two {self.kind}s are named {name!r}")
        self._entries[name] = entry

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.modules:
                importlib.import_module(module)

    def get(self, name: str) -> T:
        """The implementation named ``name``; an unknown name is a :class:`ConfigError` listing the known ones."""
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            hint = f" ({self.hint})" if self.hint else ""
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}"
                              f"{hint}") from None

    def find(self, name: str) -> T | None:
        """The implementation named ``name``, or None."""
        self._load()
        return self._entries.get(name)

    def items(self) -> list[tuple[str, T]]:
        """Every (name, implementation), in registration order."""
        self._load()
        return list(self._entries.items())

    @contextmanager
    def scoped(self) -> Iterator[Registry[T]]:
        """Registrations made inside the block are forgotten when it ends (how tests register their own)."""
        self._load()
        saved = dict(self._entries)
        try:
            yield self
        finally:
            self._entries = saved

    def names(self) -> list[str]:
        self._load()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)


def _same_definition(old: object, new: object) -> bool:
    """One class or function (or an instance of one class) defined twice by reloading its module."""

    def where(entry: object) -> tuple[str, str]:
        defined = entry if hasattr(entry, "__qualname__") else type(entry)
        return defined.__module__, defined.__qualname__

    return where(old) == where(new)
