"""Command-line values shared by the commands: comma-separated lists of codes, KEY=VALUE pairs, encoder options."""

from __future__ import annotations

from typing import Any

from c2kd.errors import ConfigError


def comma_list(value: str | None) -> list[str] | None:
    """``"en, de,,fr"`` -> ``["en", "de", "fr"]``; ``None`` for an absent or empty value."""
    return None if not value else [v.strip() for v in value.split(",") if v.strip()]


def key_value(item: str, what: str, shape: str = "key=value") -> tuple[str, str]:
    """``"KEY=VALUE"`` -> ``("KEY", "VALUE")``, both stripped; an item with no ``=`` or no key is refused as
    ``{what} {item!r} must look like {shape}``."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{what} {item!r} must look like {shape}")
    return key.strip(), value.strip()


def scalar(text: str) -> int | float | str:
    """A number when ``text`` reads as one (int first), else the text itself."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def key_value_pairs(values: list[str], what: str) -> dict[str, str]:
    """``["train=train.pkl", ...]`` -> ``{"train": "train.pkl"}``; a malformed or repeated key is a ConfigError."""
    out: dict[str, str] = {}
    shape = "KEY=VALUE (e.g. train=train.pkl)"
    for value in values:
        key, rest = key_value(value, what, shape)
        if not rest:
            raise ConfigError(f"{what} {value!r} must look like {shape}")
        if key in out:
            raise ConfigError(f"{what} {key!r} is given twice")
        out[key] = rest
    return out


def parse_encoder_options(items: list[str] | None) -> dict[str, Any]:
    """Frame encoder ``--option`` values, numbers and comma-separated lists parsed, dashes in keys as underscores.

    ``["size=256", "mean=0.5,0.5,0.5", "pool=mean"]`` -> ``{"size": 256, "mean": [0.5, 0.5, 0.5], "pool": "mean"}``.
    """
    options: dict[str, Any] = {}
    for item in items or []:
        key, value = key_value(item, "--option", "key=value, e.g. size=224")
        options[key.replace("-", "_")] = [scalar(part) for part in value.split(",")] if "," in value else scalar(value)
    return options
