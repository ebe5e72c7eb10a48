"""Command-line values shared by the commands: comma-separated lists of codes, KEY=VALUE pairs, encoder options."""

from __future__ import annotations

from typing import Any

from c2kd.errors import ConfigError


def comma_list(value: str | None) -> list[str] | None:
    """``"en, de,,fr"`` -> ``["en", "de", "fr"]``; ``None`` for an absent or empty value."""
    return None if not value else [v.strip() for v in value.split(",") if v.strip()]


def key_value_pairs(values: list[str], what: str) -> dict[str, str]:
    """``["train=train.pkl", ...]`` -> ``{"train": "train.pkl"}``; a malformed or repeated key is a ConfigError."""
    out: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip() or not rest.strip():
            raise ConfigError(f"{what} {value!r} is not KEY=VALUE (e.g. train=train.pkl)")
        if key.strip() in out:
            raise ConfigError(f"{what} {key.strip()!r} is given twice")
        out[key.strip()] = rest.strip()
    return out


def parse_encoder_options(items: list[str] | None) -> dict[str, Any]:
    """Frame encoder ``--option`` values, numbers and comma-separated lists parsed, dashes in keys as underscores.

    ``["size=256", "mean=0.5,0.5,0.5", "pool=mean"]`` -> ``{"size": 256, "mean": [0.5, 0.5, 0.5], "pool": "mean"}``.
    """
    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {item!r}: expected key=value")
        options[key.strip().replace("-", "_")] = _parse_value(value.strip())
    return options


def _parse_value(text: str) -> Any:
    if "," in text:
        return [_parse_value(part) for part in text.split(",")]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
