"""Recipes load and resolve; `c2kd reproduce` runs a recipe end to end on tiny data in the release layout."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from c2kd.cli import app
from c2kd.errors import ConfigError, DataError
from c2kd.reproduce.recipes import list_recipes, load_recipe
from c2kd.reproduce.runner import markdown_report, plan_recipe, split_overrides

CODES = ["en", "de", "fr", "cs", "zh", "ru", "vi", "sw", "es"]
WORDS = ["red", "car", "dog", "runs", "man", "sings", "cat", "food", "cooks", "ball", "plays", "river"]


def _caption(rng: np.random.Generator, lang: str) -> str:
    return f"{lang} " + " ".join(rng.choice(WORDS, size=4))


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """Tiny Multi-MSRVTT split files in the authors' pickle layout (2d/3d features, caption_/eval_caption_)."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("release")
    train = [{"id": f"video{i}", "2d": rng.standard_normal((int(rng.integers(3, 8)), 16)).astype(np.float32),
              "3d": rng.standard_normal((2, 32)).astype(np.float32), "audio": None,
              **{f"caption_{c}": [_caption(rng, c) for _ in range(2)] for c in CODES}} for i in range(24)]
    test = [{"id": f"video{7000 + i}", "2d": rng.standard_normal((5, 16)).astype(np.float32),
             "3d": rng.standard_normal((2, 32)).astype(np.float32),
             **{f"eval_caption_{c}": _caption(rng, c) for c in CODES}} for i in range(12)]
    for name, items in (("train", train), ("test", test)):
        with open(root / f"{name}.pkl", "wb") as fh:
            pickle.dump(items, fh, protocol=4)
    return root


@pytest.fixture(scope="module")
def imported(release, tmp_path_factory) -> tuple[Path, Path]:
    """The release imported with `c2kd import-data`, and a tiny random text model over its captions."""
    import pyarrow.parquet as pq

    from c2kd.encoders.random_hf import make_random_text_model

    out = tmp_path_factory.mktemp("datasets") / "multi-msrvtt"
    r = CliRunner().invoke(app, ["import-data", "--format", "msrvtt", "--features", "2d",
                                 f"train={release / 'train.pkl'}", f"test={release / 'test.pkl'}", "--out", str(out)])
    assert r.exit_code == 0, r.output
    texts = pq.read_table(out / "captions.parquet", columns=["text"]).column("text").to_pylist()
    model = make_random_text_model(tmp_path_factory.mktemp("text") / "tiny", texts, hidden=16, layers=1, seed=0)
    return out, model


def tiny_overrides(model: Path) -> list[str]:
    return [f"model.text.name={model}", "model.text.embed_dim=16", "model.video.embed_dim=16",
            "model.video.feature_dim=16", "model.video.layers=1", "epochs=1", "batch_size=8", "progress=false",
            "tensorboard=false", "data.languages=[en,de]", "data.eval_languages=[en,de]", "optim.lr=1e-3"]


def test_every_recipe_resolves_to_valid_configs(imported, tmp_path):
    data, _ = imported
    assert set(list_recipes()) == {"table2", "table3", "table4", "figure2", "figure3", "figure4", "figure5"}
    for name in list_recipes():
        recipe = load_recipe(name)
        dim = recipe.base["model"]["video"]["feature_dim"]
        if dim != 16:
            with pytest.raises(ConfigError, match="frame features"):
                plan_recipe(recipe, data, tmp_path, 1)
        langs = ["en", "zh"] if name == "table4" else ["en", "de"]
        # table3 trains on YouCook2's languages (ja), which this Multi-MSRVTT-like dataset lacks
        plan = plan_recipe(recipe, data, tmp_path, 3, ["model.video.feature_dim=16", f"data.eval_languages={langs}",
                                                       "data.languages=null"])
        assert len(plan.students) == 3 * len(recipe.runs)
        for run in plan.students:
            cfg = run.config
            assert (cfg.optim.lr, cfg.optim.lr_decay, cfg.batch_size) == (1e-4, 0.9, 64)
            assert (cfg.model.text.max_tokens, cfg.model.text.eval_max_tokens) == (35, 40)
            assert cfg.model.text.name == ("labse" if name != "figure2" else run.name.rsplit("-", 2)[0]
                                           if "translate" in run.name else run.name.removesuffix("-zero-shot"))
        for run in plan.teachers:
            assert run.config.stage == "translate-train" and run.config.model.text.name == run.name


def test_table_settings_follow_the_paper(imported, tmp_path):
    data, _ = imported
    # the poolers the published runs computed (the original swaps the names min and max)
    expected = {"table2": (0.5, "max", 20), "table3": (0.1, "max", 10), "table4": (0.1, "min", 30)}
    for name, (alpha, pooler, epochs) in expected.items():
        langs = ["en", "zh"] if name == "table4" else ["en", "de"]
        plan = plan_recipe(load_recipe(name), data, tmp_path, 2,
                           ["model.video.feature_dim=16", f"data.eval_languages={langs}", "data.languages=null"])
        c2kd = [r for r in plan.students if r.name == "c2kd"]
        assert [r.seed for r in c2kd] == [0, 1]
        for run in c2kd:
            cfg = run.config
            assert (cfg.loss.alpha, cfg.teachers.pooler, cfg.epochs) == (alpha, pooler, epochs)
            assert cfg.teachers.language == "english" and cfg.loss.distillation == "c2kd"
            names = [Path(p).name.rsplit("-", 2)[0] for p in cfg.teachers.checkpoints]
            assert names == ["distill-sbert", "mbert", "xlmr"]
            assert all(f"-s{run.seed}-" in p for p in cfg.teachers.checkpoints)  # matched teacher seeds
    assert load_recipe("table3").base["model"]["video"]["feature_dim"] == 1024  # S3D


def test_recipes_compute_what_the_published_runs_computed(imported, tmp_path):
    """English NCE twice everywhere; NCE temperature 0.1 for MSR-VTT C2KD only; YouCook2 trains without Czech.
    Each is one override away from the paper."""
    data, _ = imported
    msrvtt = {"table2", "figure2", "figure3", "figure4", "figure5"}
    for name in list_recipes():
        langs = ["en", "zh"] if name == "table4" else ["en", "de"]
        common = ["model.video.feature_dim=16", f"data.eval_languages={langs}", "data.languages=null"]
        plan = plan_recipe(load_recipe(name), data, tmp_path, 1, common)
        assert plan.runs and all(r.config.loss.english_nce_weight == 2.0 for r in plan.runs), name
        for run in plan.runs:
            published = 0.1 if name in msrvtt and run.config.stage == "c2kd" else 0.05
            assert run.config.loss.nce_temperature == published, (name, run.name)
        paper = plan_recipe(load_recipe(name), data, tmp_path, 1,
                            [*common, "loss.english_nce_weight=1", "loss.nce_temperature=0.05"])
        assert all((r.config.loss.english_nce_weight, r.config.loss.nce_temperature) == (1.0, 0.05)
                   for r in paper.runs)
    assert sum(r.stage == "c2kd" for name in msrvtt for r in load_recipe(name).runs) == 15
    youcook = load_recipe("table3")
    assert youcook.base["data"]["languages"] == ["en", "de", "fr", "zh", "ru", "vi", "ja", "es"]  # no cs
    assert "cs" in youcook.languages  # evaluated, as in Table 3
    # with data.languages=null every multilingual run trains on every language of the dataset, Czech included
    plan = plan_recipe(youcook, data, tmp_path, 1, ["model.video.feature_dim=16", "data.eval_languages=[en,cs]",
                                                    "data.languages=null"])
    for run in plan.runs:
        trained = run.config.training_languages(["en", "de", "cs"])
        assert trained == (["en"] if run.config.stage == "zero-shot" else ["en", "de", "cs"])


def test_scoped_overrides_and_errors(imported, tmp_path):
    data, _ = imported
    assert split_overrides(["epochs=1", "c2kd:teachers.pooler=max", "data.languages=[a:b]"]) == (
        ["epochs=1", "data.languages=[a:b]"], {"c2kd": ["teachers.pooler=max"]})
    plan = plan_recipe(load_recipe("table2"), data, tmp_path, 1,
                       ["model.video.feature_dim=16", "data.eval_languages=[en]", "c2kd:teachers.pooler=mean"])
    pools = {r.name: r.config.teachers.pooler for r in plan.students}
    assert pools == {"nce-zero-shot": "min", "nce-translate-train": "min", "c2kd": "mean"}
    with pytest.raises(ConfigError, match="name no run"):
        plan_recipe(load_recipe("table2"), data, tmp_path, 1, ["model.video.feature_dim=16", "nope:epochs=1"])
    with pytest.raises(DataError, match=r"has no captions in \['ja'\].*--override data.eval_languages"):
        plan_recipe(load_recipe("table3"), data, tmp_path, 1, ["model.video.feature_dim=16"])


def test_reproduce_table2_end_to_end_and_resumes(imported, tmp_path):
    data, model = imported
    work = tmp_path / "work"
    args = ["reproduce", "table2", "--data", str(data), "--seeds", "2", "--work", str(work)]
    for item in tiny_overrides(model):
        args += ["--override", item]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    results = json.loads((work / "results" / "table2.json").read_text())
    rows = {row["name"]: row for row in results["rows"]}
    assert set(rows) == {"nce-zero-shot", "nce-translate-train", "c2kd"}
    # our mean and std are those of the per-seed test results
    for row in rows.values():
        assert row["seeds"] == [0, 1]
        saved = [json.loads(Path(f, "test_metrics.json").read_text()) for f in row["folders"]]
        per_seed = [m["as_trained"]["t2v"]["de"]["R@1"] for m in saved]  # as trained: best-average/
        assert row["ours"]["de"]["R@1"]["mean"] == pytest.approx(np.mean(per_seed))
        assert row["ours"]["de"]["R@1"]["std"] == pytest.approx(np.std(per_seed, ddof=1))
        guarded = [m["t2v"]["de"]["R@1"] for m in saved]  # guarded: best/
        assert row["guarded"]["de"]["R@1"]["mean"] == pytest.approx(np.mean(guarded))
        assert row["epochs"]["as_trained"] == [m["as_trained"]["selection"]["epoch"] for m in saved]
        assert row["epochs"]["guarded"] == [m["selection"]["epoch"] for m in saved]
    assert rows["c2kd"]["paper"]["average"]["R@1"] == 23.0
    assert "| C2KD | T | paper | 26.4 | 24.7 |" in r.output
    assert "| C2KD | T | ours (2 seeds) |" in r.output
    assert "| C2KD | T | ours, guarded (2 seeds" in r.output and "best-average/" in r.output
    assert f"wrote {work / 'results' / 'table2.png'}" in r.output  # ours beside the paper's, as bars
    with Image.open(work / "results" / "table2.png") as image:
        assert image.format == "PNG" and image.width > image.height
    assert set(results["teachers"]) == {"distill-sbert", "mbert", "xlmr"}
    # the run's saved config is the recipe's c2kd run with our overrides, its teachers those of its own seed
    saved = yaml.safe_load(Path(rows["c2kd"]["folders"][0], "config.yaml").read_text())
    assert (saved["stage"], saved["seed"], saved["epochs"]) == ("c2kd", 0, 1)
    assert saved["loss"]["alpha"] == 0.5 and saved["loss"]["nce_temperature"] == 0.1
    assert saved["loss"]["distillation"] == "c2kd" and saved["loss"]["english_nce_weight"] == 2.0
    assert (saved["teachers"]["pooler"], saved["teachers"]["language"]) == ("max", "english")
    assert saved["model"]["text"]["name"] == str(model) and saved["data"]["languages"] == ["en", "de"]
    teachers = [Path(c) for c in saved["teachers"]["checkpoints"]]
    assert [c.name.rsplit("-", 1)[0] for c in teachers] == ["distill-sbert-s0", "mbert-s0", "xlmr-s0"]
    assert all(yaml.safe_load((c / "config.yaml").read_text())["seed"] == 0 for c in teachers)
    history = json.loads(Path(rows["c2kd"]["folders"][0], "history.json").read_text())
    assert history[0]["train/distill"] > 0

    # Rerunning trains nothing: every run is finished; the report is the same.
    stamps = {p: p.stat().st_mtime_ns for p in work.glob("runs/*/last/model.safetensors")}
    assert len(stamps) == 12  # 3 teachers + 3 students, 2 seeds
    dry = CliRunner().invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0 and dry.output.count("done ") == 12 and "todo" not in dry.output
    again = CliRunner().invoke(app, [*args, "--json", str(tmp_path / "again.json")])
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((tmp_path / "again.json").read_text())["rows"] == results["rows"]


def test_figure_report_says_the_paper_gives_no_numbers():
    recipe = load_recipe("figure4")
    assert not recipe.has_paper_numbers and "not as numbers" in recipe.note
    fake = {"ours": {"en": {"R@1": {"mean": 10.0, "std": 1.0, "n": 3}},
                     "average": {"R@1": {"mean": 9.0, "std": 0.5, "n": 3}}}}
    results = {"source": "Figure 4", "title": recipe.title, "note": recipe.note, "languages": ["en"],
               "metrics": ["R@1"], "average": True, "notes": [], "teachers": {},
               "rows": [{"label": "C2KD", "setting": "T", "seeds": [0, 1, 2], "paper": None, **fake}]}
    text = markdown_report(results)
    assert "| C2KD | T | ours (3 seeds) | 10.0 ± 1.0 | 9.0 ± 0.5 |" in text and "paper |" not in text


def test_new_evaluation_settings_evaluate_a_finished_run_again_without_training_it(imported, tmp_path):
    """``tie_policy`` / ``missing_ranks`` are no part of a run's identity: same folder, best/ evaluated again."""
    from c2kd.checkpoint import TEST_METRICS_FILE, WEIGHTS_FILE, load_checkpoint
    from c2kd.data.dataset import VideoTextDataset
    from c2kd.evaluation.evaluator import RetrievalEvaluator, flatten_metrics
    from c2kd.reproduce.runner import execute

    data, model = imported
    recipe, only = load_recipe("table2"), ["nce-translate-train"]
    plan = plan_recipe(recipe, data, tmp_path, 1, tiny_overrides(model), only=only)
    execute(plan, progress=False)
    run = plan.students[0]
    stamps = {p: p.stat().st_mtime_ns for p in run.folder.glob(f"*/{WEIGHTS_FILE}")}
    assert len(stamps) == 3 and run.finished  # best/, best-average/, last/
    assert json.loads((run.folder / TEST_METRICS_FILE).read_text())["protocol"]["tie_policy"] == "average"

    other = plan_recipe(recipe, data, tmp_path, 1, [*tiny_overrides(model), "tie_policy=optimistic",
                                                    "missing_ranks=present"], only=only)
    again = other.students[0]
    assert again.folder == run.folder and not again.finished
    execute(other, progress=False)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # not trained again
    assert again.finished and not run.finished
    results = json.loads((run.folder / TEST_METRICS_FILE).read_text())
    assert (results["protocol"]["tie_policy"], results["protocol"]["missing_ranks"]) == ("optimistic", "present")
    best, _ = load_checkpoint(run.folder)
    split = VideoTextDataset(data).split(again.config.data.test_split, ["en", "de"])
    expected = flatten_metrics(RetrievalEvaluator(split, ["en", "de"], "optimistic", missing_ranks="present")(best))
    ours = flatten_metrics({"t2v": results["t2v"], "v2t": results["v2t"]})
    assert ours == pytest.approx({k: v for k, v in expected.items() if k.split("/")[0] in ("t2v", "v2t")})
