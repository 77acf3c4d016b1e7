"""benchmarks/centre128.py: the 128 px protocol scores the centre square or seeded free-form holes."""

from benchmarks import centre128

from context_encoder.baselines import build_baselines


def test_free_form_holes_are_seeded_and_differ_from_the_centre(photo_dir):
    methods = build_baselines(["mean", "telea"])
    centre, n = centre128.strict_scores(methods, photo_dir, limit=6, progress=False)
    free, n_free = centre128.strict_scores(methods, photo_dir, limit=6, progress=False, holes="random-region")
    again, _ = centre128.strict_scores(methods, photo_dir, limit=6, progress=False, holes="random-region")
    other, _ = centre128.strict_scores(methods, photo_dir, limit=6, progress=False, holes="random-region", seed=1)
    assert n == n_free == 6
    assert free == again  # the same holes for every run and method
    assert free["telea"] != centre["telea"] and free["telea"] != other["telea"]
    assert free["telea"]["psnr"] > free["mean"]["psnr"]  # diffusion beats the flat colour on smooth photos


def test_a_list_of_paths_scores_like_its_folder(photo_dir):
    from context_encoder.data import readable_images

    methods = build_baselines(["telea"])
    by_folder, n = centre128.strict_scores(methods, photo_dir, limit=4, progress=False)
    by_paths, m = centre128.strict_scores(methods, readable_images(photo_dir), limit=4, progress=False)
    assert n == m == 4 and by_folder == by_paths


def test_the_validation_set_is_the_training_folders_held_out_photos(tmp_path, monkeypatch):
    from context_encoder.data import holdout_split

    folders = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(40):
            (folder / f"{i}.png").write_bytes(b"")
        folders.append(folder)
    monkeypatch.setattr(centre128, "TRAINING_FOLDERS", [*folders, tmp_path / "missing"])
    monkeypatch.setattr(centre128, "readable_images", lambda f: sorted(f.glob("*.png")))
    held = centre128.set_images(centre128.VALIDATION)
    expected = [p for f in folders for p in holdout_split(sorted(f.glob("*.png")), f, centre128.TUNING_FRACTION)[1]]
    assert held == expected and 0 < len(held) < 80


def test_regenerated_report_keeps_its_written_header(tmp_path):
    report = tmp_path / "r.md"
    assert centre128.kept_header(report) == ""
    report.write_text("# Title\n\nHow it was made.\n\n### kodak24 (2 images)\n\n| old |\n")
    assert centre128.kept_header(report) == "# Title\n\nHow it was made.\n\n"
    report.write_text("### kodak24 (2 images)\n\n| old |\n")
    assert centre128.kept_header(report) == ""


def test_recipe_names_what_differs_from_the_preset():
    import json

    from benchmarks import ship_models

    from context_encoder.config import apply_overrides, load_config

    tuned = apply_overrides(load_config("scenes128_region"), ["loss.reconstruction=l1", "train.lr=0.0005"])
    config = json.loads(json.dumps(tuned.to_dict()))
    config["data"]["train_dir"], config["data"]["extra_dirs"] = "../shared/data/sun-scenes/train", []
    line = ship_models.recipe(config, "tuned")
    assert line.endswith("--set loss.reconstruction=l1 --set train.lr=0.0005 --out runs/tuned")
    assert "--config scenes128_region --data ../shared/data/sun-scenes/train" in line
    plain = json.loads(json.dumps(load_config("scenes128_region").to_dict()))
    assert "--set" not in ship_models.recipe(plain, "plain")  # the preset's own values are not repeated


def test_recipe_shows_shared_data_behind_a_symbolic_link(tmp_path, monkeypatch):
    import json

    from benchmarks import ship_models

    from context_encoder.config import load_config

    (tmp_path / "elsewhere" / "data" / "sun-scenes" / "train").mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    (tmp_path / "shared").symlink_to(tmp_path / "elsewhere")  # a clone whose ../shared is a link
    monkeypatch.setattr(ship_models, "ROOT", tmp_path / "repo")
    monkeypatch.setattr(ship_models, "SHARED", tmp_path / "repo" / ".." / "shared" / "data")
    config = json.loads(json.dumps(load_config("scenes128_region").to_dict()))
    for folder in ("../shared/data/sun-scenes/train", str(tmp_path / "elsewhere" / "data" / "sun-scenes" / "train")):
        config["data"]["train_dir"], config["data"]["extra_dirs"] = folder, []
        assert "--data ../shared/data/sun-scenes/train --out" in ship_models.recipe(config, "x")


def test_a_second_fine_tune_starts_from_the_first_fine_tunes_run():
    from benchmarks.ship_models import previous_stage

    two = {
        "recipe": ["context-encoder train --config c --out runs/a", "context-encoder train --config c --out runs/a-l1"]
    }
    assert previous_stage(two, "a") == "runs/a-l1"
    assert previous_stage({}, "a") == "runs/a"  # a model without a recipe: its own name's run
