import sys

import pytest

from c2kd.errors import ConfigError
from c2kd.registry import Registry


def test_entries_register_beside_their_definition_in_order():
    shapes = Registry[type]("shape")

    @shapes.register("square")
    class Square:
        pass

    @shapes.register("circle")
    class Circle:
        pass

    assert shapes.items() == [("square", Square), ("circle", Circle)]
    assert shapes.get("circle") is Circle and "square" in shapes and shapes.find("hexagon") is None
    assert len(shapes) == 2 and list(shapes) == ["square", "circle"]


def test_two_entries_of_one_name_are_refused_but_a_reloaded_one_is_not():
    shapes = Registry[type]("shape")
    shapes.add("square", type("Square", (), {"__module__": "geometry"}))
    shapes.add("square", type("Square", (), {"__module__": "geometry"}))  # the same class, its module reloaded
    with pytest.raises(ValueError, match="two shapes are named 'square'"):
        shapes.add("square", type("Box", (), {"__module__": "geometry"}))


def test_an_unknown_name_lists_the_known_ones_and_the_hint():
    shapes = Registry[int]("shape", hint="see `shapes --help`")
    shapes.add("square", 4)
    with pytest.raises(ConfigError, match=r"unknown shape 'hexagon'; choose one of square \(see `shapes --help`\)"):
        shapes.get("hexagon")


def test_registrations_in_a_scope_are_forgotten_after_it():
    shapes = Registry[int]("shape")
    shapes.add("square", 4)
    with shapes.scoped():
        shapes.add("triangle", 3)
        assert shapes.names() == ["square", "triangle"]
    assert shapes.names() == ["square"]


def test_modules_are_imported_on_the_first_lookup_only(tmp_path, monkeypatch):
    (tmp_path / "registry_plugin_demo.py").write_text(
        "from tests_registry_target import SHAPES\n\n@SHAPES.register('triangle')\nclass Triangle:\n    pass\n")
    target = type(sys)("tests_registry_target")
    target.SHAPES = Registry[type]("shape", modules=("registry_plugin_demo",))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tests_registry_target", target)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "registry_plugin_demo", raising=False)
    assert "registry_plugin_demo" not in sys.modules
    assert target.SHAPES.get("triangle").__name__ == "Triangle"
    assert "registry_plugin_demo" in sys.modules
