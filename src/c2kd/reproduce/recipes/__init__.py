"""Recipes: the paper's experiments as typed objects, read from the YAML files beside this module
(``c2kd/reproduce/recipes/*.yaml``, package data).

A recipe is one table or figure: a base training config shared by every run, named teachers (each trained
translate-train, then frozen), and the runs (students) with the paper's numbers where the paper prints them.
Config fragments are the nested keys of :class:`c2kd.train.config.TrainConfig`.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from c2kd.errors import ConfigError, validation_problems
from c2kd.train.config import Stage

#: paper numbers of one run: language (or "average") -> metric ("R@1", ...) -> value
PaperNumbers = dict[str, dict[str, float]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecipeRun(_Strict):
    """One student (a row of a table, a bar of a figure)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    label: str
    #: the paper's "Set" column: Z (zero-shot) or T (translate-train)
    setting: Literal["Z", "T"]
    stage: Stage
    #: names of the recipe's teachers this run distills from (stage c2kd only)
    teachers: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    paper: PaperNumbers | None = None

    @model_validator(mode="after")
    def _check(self) -> RecipeRun:
        if (self.stage == "c2kd") != bool(self.teachers):
            raise ValueError(f"run {self.name!r}: stage c2kd needs teachers, and only c2kd runs have teachers")
        expected = "Z" if self.stage == "zero-shot" else "T"
        if self.setting != expected:
            raise ValueError(f"run {self.name!r}: stage {self.stage} is setting {expected}, not {self.setting}")
        return self


class Recipe(_Strict):
    """One experiment of the paper (see ``c2kd reproduce --list``)."""

    name: str
    title: str
    source: str  # "Table 2", "Figure 3", ...
    dataset: str  # how to make the dataset the recipe expects
    #: table columns and default evaluation languages
    languages: list[str]
    metrics: list[str] = Field(default_factory=lambda: ["R@1"])
    average: bool = True
    #: what to say about the paper's numbers (e.g. that a figure gives none)
    note: str = ""
    base: dict[str, Any] = Field(default_factory=dict)
    #: teacher name -> config fragment (on top of ``base``; teachers always train translate-train)
    teachers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: "matched": seed k of a student distills from seed k of its teachers; "shared": every seed uses seed 0's
    teacher_seeds: Literal["matched", "shared"] = "matched"
    runs: list[RecipeRun]

    @model_validator(mode="after")
    def _check(self) -> Recipe:
        names = [r.name for r in self.runs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"run names must be unique; repeated: {dupes}")
        clash = sorted(set(names) & set(self.teachers))
        if clash:
            raise ValueError(f"{clash} name both a run and a teacher; rename one")
        for run in self.runs:
            unknown = [t for t in run.teachers if t not in self.teachers]
            if unknown:
                raise ValueError(f"run {run.name!r} names unknown teachers {unknown}; known: {sorted(self.teachers)}")
        return self

    @property
    def has_paper_numbers(self) -> bool:
        return any(r.paper for r in self.runs)


def recipes_dir() -> Path:
    """The folder of the packaged recipe files (this package's own)."""
    return Path(str(resources.files(__name__)))


def list_recipes() -> list[str]:
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def load_recipe(name_or_path: str | os.PathLike) -> Recipe:
    """A packaged recipe by name (``table2``, ``figure3``, ...) or a recipe YAML file."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = recipes_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown recipe {str(name_or_path)!r}; choose one of {list_recipes()} or give a "
                              "recipe .yaml file")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a mapping (name, title, base, teachers, runs)")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid recipe: {validation_problems(exc)}") from exc
