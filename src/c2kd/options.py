"""Command-line values shared by the commands: comma-separated lists of codes and KEY=VALUE pairs."""

from __future__ import annotations

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
