"""Result plots: the figure holds the numbers it was given (legend, bar heights, error bars), and the PNG on disk
has the figure's size and its bars' colours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.colors import to_rgb
from matplotlib.container import BarContainer
from PIL import Image
from typer.testing import CliRunner

from c2kd.cli import app
from c2kd.errors import ConfigError, DataError, MissingDependencyError
from c2kd.evaluation.plots import check_plot_path, png_or_reason, recall_figure, recipe_figure, save_png
from c2kd.evaluation.report import aggregate_runs
from c2kd.reproduce.recipes import recipes_dir

LANGS = ["en", "de", "cs"]


def result(r1: dict[str, float]) -> dict:
    """An evaluation result as ``c2kd evaluate`` writes it (R@1 given, other metrics filler)."""
    table = {lang: {"R@1": v, "R@5": 80.0, "R@10": 90.0, "MedR": 2.0, "MeanR": 9.0} for lang, v in r1.items()}
    table["average"] = {"R@1": float(np.mean(list(r1.values()))), "R@5": 80.0, "R@10": 90.0, "MedR": 2.0,
                        "MeanR": 9.0}
    return {"t2v": table, "v2t": {k: {**v, "R@1": v["R@1"] / 2} for k, v in table.items()}}


def bars_by_label(ax) -> dict:
    return {c.get_label(): c for c in ax.containers if isinstance(c, BarContainer)}


def error_bar_half_lengths(container) -> list[float]:
    """Half the length of each vertical error bar of a bar series (one std; nan where none is drawn)."""
    segments = container.errorbar.lines[2][0].get_segments()
    return [float(seg[1][1] - seg[0][1]) / 2 if len(seg) == 2 else np.nan for seg in segments]


def png_pixels(path: Path, fig) -> np.ndarray:
    """The PNG as RGB pixels, after checking its size is the figure's."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = (fig.get_size_inches() * fig.dpi).round().astype(int)
        assert image.size == (width, height)
        return np.asarray(image.convert("RGB"))


def has_colour(pixels: np.ndarray, colour) -> bool:
    target = np.array([round(255 * c) for c in to_rgb(colour)])
    return bool((np.abs(pixels.astype(int) - target).max(axis=2) <= 2).any())


def test_recall_figure_shows_each_model_and_std_over_seeds(tmp_path):
    single = result({"en": 31.0, "de": 22.5, "cs": 18.0})
    seeds = [result({"en": 30.0 + s, "de": 20.0 + 2 * s, "cs": 15.0 - s}) for s in range(3)]
    fig = recall_figure({"translate-train": single, "c2kd (3 seeds)": aggregate_runs(seeds)}, title="tiny/test")

    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["translate-train", "c2kd (3 seeds)"]
    t2v, v2t = fig.axes
    assert [label.get_text() for label in t2v.get_xticklabels()] == [*LANGS, "Avg"]
    for ax, direction in ((t2v, "t2v"), (v2t, "v2t")):
        bars = bars_by_label(ax)
        assert [b.get_height() for b in bars["translate-train"]] == pytest.approx(
            [single[direction][lang]["R@1"] for lang in [*LANGS, "average"]])
        per_seed = np.array([[s[direction][lang]["R@1"] for lang in [*LANGS, "average"]] for s in seeds])
        assert [b.get_height() for b in bars["c2kd (3 seeds)"]] == pytest.approx(per_seed.mean(axis=0))
        assert error_bar_half_lengths(bars["c2kd (3 seeds)"]) == pytest.approx(per_seed.std(axis=0, ddof=1))
        assert bars["translate-train"].errorbar is None  # one run: no spread to draw

    path = save_png(fig, tmp_path / "plots" / "r1.png")
    pixels = png_pixels(path, fig)
    for container in bars_by_label(t2v).values():
        assert has_colour(pixels, container.patches[0].get_facecolor())
    assert not list(path.parent.glob(".*"))  # the atomic write left no temporary behind


def test_every_bar_carries_its_value_upright_when_too_narrow_across():
    """The quickstart's four runs over four languages: 20 bars a panel, each labelled with its value."""
    runs = {name: result({"en": 60.0 + k, "de": 50.0 + k, "fr": 55.5 + k, "cs": 5.25 + 10 * k})
            for k, name in enumerate(["off-the-shelf", "zero-shot", "translate-train", "c2kd"])}
    t2v, _ = recall_figure(runs).axes
    shown = sorted(t.get_text() for t in t2v.texts)
    assert shown == sorted(f"{v['R@1']:.1f}" for r in runs.values() for v in r["t2v"].values())  # 20 values
    assert {t.get_rotation() for t in t2v.texts} == {90}


def test_a_language_one_model_lacks_draws_no_bar():
    fig = recall_figure({"a": result({"en": 10.0, "de": 20.0}), "b": result({"en": 30.0, "ja": 40.0})},
                        directions=("t2v",))
    ax = fig.axes[0]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["en", "de", "ja", "Avg"]
    heights = [b.get_height() for b in bars_by_label(ax)["b"]]
    assert heights[:3] == [30.0, pytest.approx(np.nan, nan_ok=True), 40.0]


def test_table_figure_puts_the_papers_bars_beside_ours(tmp_path):
    recipe = yaml.safe_load((recipes_dir() / "table2.yaml").read_text())
    ours = {lang: {"R@1": {"mean": 10.0 + i, "std": 0.5 + i / 10, "n": 3}} for i, lang in enumerate(["en", "de"])}
    rows = [{"name": r["name"], "label": r["label"], "setting": r["setting"], "paper": r["paper"], "ours": ours}
            for r in recipe["runs"]]
    report = {"recipe": "table2", "source": recipe["source"], "title": recipe["title"],
              "languages": recipe["languages"], "metrics": ["R@1"], "average": True, "seeds": [0, 1, 2],
              "rows": rows}
    fig = recipe_figure(report)

    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["NCE (Z), ours", "NCE (Z), paper", "NCE (T), ours", "NCE (T), paper",
                      "C2KD (T), ours", "C2KD (T), paper"]
    ax = fig.axes[0]
    bars = bars_by_label(ax)
    columns = [*recipe["languages"], "average"]
    for run in recipe["runs"]:
        name = f"{run['label']} ({run['setting']})"
        paper, mine = bars[f"{name}, paper"], bars[f"{name}, ours"]
        assert [b.get_height() for b in paper] == pytest.approx([run["paper"][lang]["R@1"] for lang in columns])
        assert [b.get_height() for b in mine][:2] == [10.0, 11.0]
        assert np.isnan([b.get_height() for b in mine][2:]).all()  # languages we did not evaluate
        assert error_bar_half_lengths(mine)[:2] == pytest.approx([0.5, 0.6])
        # beside: the paper's bar is the next one to the right of ours, in the same language group
        for ours_bar, paper_bar in zip(mine, paper):
            assert paper_bar.get_x() == pytest.approx(ours_bar.get_x() + ours_bar.get_width())
    pixels = png_pixels(save_png(fig, tmp_path / "table2.png"), fig)
    assert has_colour(pixels, bars["NCE (Z), ours"].patches[0].get_facecolor())


def test_figure_recipe_plot_says_the_paper_gives_no_numbers():
    ours = {"en": {"R@1": {"mean": 12.0, "std": 1.0, "n": 3}}, "average": {"R@1": {"mean": 12.0, "std": 1.0,
                                                                                  "n": 3}}}
    report = {"recipe": "figure4", "source": "Figure 4", "title": "objectives", "languages": ["en"],
              "metrics": ["R@1"], "average": True, "seeds": [0, 1, 2],
              "rows": [{"label": "C2KD", "setting": "T", "paper": None, "ours": ours},
                       {"label": "unfinished", "setting": "T", "paper": None, "ours": None}]}
    fig = recipe_figure(report)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["C2KD, ours"]
    assert "ours only" in fig.get_suptitle()


def test_results_without_a_table_per_language_are_refused_in_one_line(tmp_path):
    bad = tmp_path / "train_history.json"
    bad.write_text('{"epochs": 2, "loss": 0.5}')
    r = CliRunner().invoke(app, ["aggregate", str(bad), str(bad), "--plot", str(tmp_path / "agg.png")])
    assert isinstance(r.exception, DataError) and "nothing to plot" in str(r.exception)
    assert not (tmp_path / "agg.png").exists()
    report = {"recipe": "figure4", "rows": [{"label": "C2KD", "setting": "T", "paper": None, "ours": None}]}
    assert png_or_reason(tmp_path / "f.png", lambda: recipe_figure(report)) == (
        "no f.png: nothing to plot: figure4 has no finished run and no paper numbers")


def test_plot_path_must_be_png(tmp_path):
    with pytest.raises(ConfigError, match=r"--plot .*out\.jpg: .*\.png"):
        check_plot_path(tmp_path / "out.jpg")
    assert check_plot_path(tmp_path / "out.PNG") == tmp_path / "out.PNG"


def test_without_matplotlib_the_table_is_kept_and_the_plot_explained(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import matplotlib` meets when it is not installed
    line = png_or_reason(tmp_path / "results.png", lambda: pytest.fail("nothing is drawn"))
    assert line == "no results.png: drawing it needs matplotlib (pip install 'c2kd[plots]')"
    assert not (tmp_path / "results.png").exists()
    with pytest.raises(MissingDependencyError, match=r"pip install 'c2kd\[plots\]'"):
        check_plot_path(tmp_path / "x.png")


def test_evaluate_plot_problems_stop_before_the_evaluation(tmp_path):
    """A wrong --plot, or no matplotlib, is one line and exit 2 before the checkpoint is even read."""
    args = ["evaluate", "--checkpoint", str(tmp_path / "no-such-run"), "--data", str(tmp_path)]
    wrong = CliRunner().invoke(app, [*args, "--plot", str(tmp_path / "r.jpg")])
    assert isinstance(wrong.exception, ConfigError)
    assert str(wrong.exception) == f"--plot {tmp_path / 'r.jpg'}: plots are written as PNG; give a file name ending in .png"
    no_matplotlib = "import sys; sys.modules['matplotlib'] = None; from c2kd.cli import main; main()"
    missing = subprocess.run([sys.executable, "-c", no_matplotlib, *args, "--plot", str(tmp_path / "r.png")],
                             capture_output=True, text=True, check=False)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "pip install 'c2kd[plots]'" in missing.stderr and "no-such-run" not in missing.stderr


def test_evaluate_json_that_cannot_be_written_stops_before_the_evaluation(tmp_path):
    """An unwritable --json (a read-only disk, a folder) is one line and exit 2 before the checkpoint is read."""
    from c2kd_testkit import assert_one_line_error, own_tmpfs, run_c2kd

    disk = tmp_path / "disk"
    args = ["evaluate", "--checkpoint", tmp_path / "no-such-run", "--data", tmp_path]
    line = assert_one_line_error(run_c2kd(*args, "--json", disk / "out" / "results.json",
                                          wrapper=own_tmpfs(disk, "ro")), "Read-only file system")
    assert f"{disk}/out" in line and "no-such-run" not in line
    assert_one_line_error(run_c2kd(*args, "--json", tmp_path), f"--json {tmp_path} is a folder")
    assert_one_line_error(run_c2kd("aggregate", tmp_path / "none.json", "--json", disk / "agg.json",
                                   wrapper=own_tmpfs(disk, "ro")), "Read-only file system")


def test_a_guarded_row_is_hatched_in_the_colour_of_its_run():
    """The quickstart's rows: each run as trained, then its guarded best/ drawn hatched in the run's colour."""
    runs = {"off-the-shelf": result({"en": 60.0}), "translate-train": result({"en": 62.0}),
            "translate-train, guarded (start kept; blocked by en)": result({"en": 60.0})}
    fig = recall_figure(runs, directions=("t2v",),
                        guarded={"translate-train, guarded (start kept; blocked by en)": "translate-train"})
    bars = bars_by_label(fig.axes[0])
    trained, guarded = bars["translate-train"].patches[0], bars[
        "translate-train, guarded (start kept; blocked by en)"].patches[0]
    assert guarded.get_hatch() == "///" and trained.get_hatch() is None
    assert guarded.get_facecolor()[:3] == pytest.approx(trained.get_facecolor()[:3])
    assert bars["off-the-shelf"].patches[0].get_facecolor()[:3] != pytest.approx(trained.get_facecolor()[:3])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(runs)
