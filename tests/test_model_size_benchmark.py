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
