"""Metadata filters: ``{"split": "test", "dataset": ["msrvtt", "vatex"], "tag": "cooking"}``.

A video matches a filter when every field matches: the filter value (one value or a list of accepted values)
equals the video's value, or, when the video's value is a list (e.g. tags), one of its items is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from c2kd.errors import ConfigError
from c2kd.options import key_value

Scalar = str | int | float | bool
MetadataValue = Scalar | list[Scalar] | None
#: field -> accepted value or values
MetadataFilter = Mapping[str, Scalar | Sequence[Scalar]]


def normalize_filter(filters: MetadataFilter | None) -> dict[str, list[Scalar]]:
    """Check a filter and turn every value into a list of accepted values (empty filter -> ``{}``)."""
    out: dict[str, list[Scalar]] = {}
    for field, value in (filters or {}).items():
        if not isinstance(field, str) or not field:
            raise ConfigError(f"filter field names must be non-empty strings, got {field!r}")
        values: list[Any] = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
        for v in values:
            if not isinstance(v, (str, int, float, bool)):
                raise ConfigError(f"filter {field!r}: values must be strings or numbers, got {type(v).__name__}")
        if not values:
            raise ConfigError(f"filter {field!r} accepts no value; drop it or give at least one value")
        out[field] = values
    return out


def parse_filter_options(items: Sequence[str]) -> dict[str, list[Scalar]]:
    """``["split=test", "tag=a,b"]`` (command-line form) -> ``{"split": ["test"], "tag": ["a", "b"]}``."""
    out: dict[str, list[Scalar]] = {}
    for item in items:
        field, raw = key_value(item, "filter", "field=value or field=value1,value2")
        out.setdefault(field, []).extend(v.strip() for v in raw.split(",") if v.strip())
    return normalize_filter(out)


def matches(metadata: Mapping[str, MetadataValue], filters: Mapping[str, list[Scalar]]) -> bool:
    """Whether one video's metadata passes a normalised filter."""
    for field, accepted in filters.items():
        value = metadata.get(field)
        if isinstance(value, list):
            if not any(_equal(item, a) for item in value for a in accepted):
                return False
        elif not any(_equal(value, a) for a in accepted):
            return False
    return True


def _equal(value: MetadataValue, accepted: Scalar) -> bool:
    # Command-line filters arrive as strings; compare numbers and booleans by their text form as well.
    return value == accepted or (value is not None and str(value) == str(accepted))
