"""Does it learn? The miniature of the paper's experiment, from a labelled ImageFolder to a table.

    python -m experiments.views --real FOLDER --out runs/views

FOLDER holds ``train/CLASS/IMAGE`` and ``test/CLASS/IMAGE`` (e.g. ``python -m
experiments.silhouettes --out FOLDER``, or CIFAR-10 exported to folders). The experiment drives the
project's own command lines, in this process and with the arguments a user would type, never
private shortcuts:

1. ``python -m shards ingest`` the train and test splits (the real sets);
2. ``python -m generate.fit`` a small class-conditional GAN on the train split;
3. ``python -m generate --generator cgan`` one set per view method (no latent views, gaussian views,
   independent same-class views), as many groups as the train split has images;
4. ``train/main.py --backbone convnet-small`` every condition for the same steps and batch, for
   every seed, with crops and flips (``--color-augment`` adds colour jitter and grayscale, which
   colour photographs need: where every image has grey levels of its own, an encoder trained on
   crops and flips alone tells images apart by colour and learns nothing of shape); the
   random-init floor trains for 0 steps;
5. ``python -m evaluate`` each encoder on the real splits: a low-label probe (labels per class,
   several seeded draws), kNN and the full-label probe; nothing is chosen on the test split.

It writes ``table.md``, ``views.png`` and ``results.json`` (every number, and the sha256 of every
set and checkpoint) into --out. Each step leaves a file behind that marks it done, so a rerun with
``--resume`` continues where the last one stopped and never redoes a finished run.
"""

from __future__ import annotations

import io
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from common.console import reports_errors
from common.errors import UserError
from common.files import make_folder, sha256_file, write_bytes_atomic, write_json_atomic
from common.provenance import provenance
from evaluate.cli import cli as evaluate_cli
from generate.cli import main as generate_main
from generate.fit import REPORT_FILE, STATE_FILE, main as fit_main
from generate.steer import main as steer_main
from shards.cli import cli as shards_cli
from shards.ingest import list_folder
from train.checkpoint import load_checkpoint
from train.main import main as train_main

SPLITS = ("train", "test")
SETTINGS_FILE = "experiment.json"
# The trainer scales its --lr by the batch in groups / 256: the recipe's peak of 1e-3 at 128 groups (256
# images), so the same per-image rate at any batch (5e-4 at the default 64 groups).
LR_PER_256_GROUPS = 2e-3


class ExperimentError(UserError):
    """The experiment cannot start or a step of it failed; the message is one sentence."""


@dataclass(frozen=True)
class Condition:
    """What one encoder is trained on: a set (by name, see ``set_arguments``) and a method."""

    label: str
    data: str | None  # None: the random-init floor, never trained
    method: str = "simclr"


def gaussian_set(sigma: float) -> str:
    return f"gaussian-{sigma:g}"


def conditions(sigma: float, sweep: tuple[float, ...]) -> dict[str, Condition]:
    """Every condition the experiment can run, by name; ``gaussian@S`` for each sigma of the sweep."""
    named = {
        "random": Condition("random init (floor)", None),
        "none": Condition("generated, no latent views", "none"),
        "gaussian": Condition(f"generated, gaussian views sigma {sigma:g}", gaussian_set(sigma)),
        "independent": Condition("generated, independent same-class views", "independent"),
        "real": Condition("real train split, SimCLR", "real-train"),
        "supcon": Condition(f"generated, gaussian views sigma {sigma:g}, SupCon", gaussian_set(sigma),
                            "supcon"),
        "steer": Condition("generated, steered views", "steer"),
        "gaussian+steer": Condition(f"generated, gaussian views sigma {sigma:g} + steered", f"gaussian+steer-{sigma:g}"),
    }
    for value in sweep:
        named[f"gaussian@{value:g}"] = Condition(f"sigma sweep: gaussian views sigma {value:g}",
                                                 gaussian_set(value))
    return named


DEFAULT_CONDITIONS = ("random", "none", "gaussian", "independent", "real", "supcon")


@dataclass(frozen=True)
class Settings:
    """Everything that decides the experiment's numbers; a resumed experiment must match it."""

    real: str
    seeds: tuple[int, ...]
    conditions: tuple[str, ...]
    sigma: float
    sigmas: tuple[float, ...]
    views: int
    steps: int
    batch_size: int
    fit_steps: int
    walk_samples: int
    image_size: int
    labels_per_class: int
    draws: int
    knn_k: int
    probe_epochs: int
    workers: int
    color_augment: bool

    def data_arguments(self, name: str, walks: Path) -> list[object]:
        """``python -m generate`` arguments of a generated set, by its name (``walks``: the fitted walk file)."""
        if name == "none":
            return ["--view-method", "none", "--views", 1]
        if name == "independent":
            return ["--view-method", "independent", "--views", self.views]
        if name == "steer":
            return ["--view-method", "steer", "--walks", walks, "--views", self.views]
        if name.startswith("gaussian+steer-"):
            return ["--view-method", "gaussian+steer", "--sigma", float(name.removeprefix("gaussian+steer-")),
                    "--walks", walks, "--views", self.views]
        sigma = float(name.removeprefix("gaussian-"))
        return ["--view-method", "gaussian", "--sigma", sigma, "--views", self.views]


class Experiment:
    """The folder of one experiment and the steps that fill it."""

    def __init__(self, out: Path, settings: Settings, progress: bool) -> None:
        self.out = out
        self.settings = settings
        self.progress = progress
        self.named = conditions(settings.sigma, settings.sigmas)
        self.started = time.perf_counter()

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def run(self) -> dict[str, Any]:
        for split in SPLITS:
            self.ingest(split)
        self.fit_generator()
        generated = sorted({self.named[c].data for c in self.settings.conditions} - {None, "real-train"})
        if any("steer" in name for name in generated):
            self.fit_walks()
        for name in generated:
            self.generate(name)
        for name in self.settings.conditions:
            for seed in self.settings.seeds:
                self.train(name, seed)
                self.evaluate(name, seed)
        return self.report()

    # -- the steps: each one is a project command line, skipped when its output is there --------

    def ingest(self, split: str) -> None:
        location = self.path("data", f"real-{split}")
        if (location / "manifest.json").is_file():
            return
        run_cli("shards", ["ingest", Path(self.settings.real) / split, location,
                           "--image-size", self.settings.image_size, *self.no_progress()])

    def fit_generator(self) -> None:
        weights = self.path("generator")
        if (weights / REPORT_FILE).is_file():
            return
        resume = ["--resume"] if (weights / STATE_FILE).is_file() else []
        run_cli("generate.fit", ["--data", Path(self.settings.real) / "train", "--out", weights,
                                 "--image-size", self.settings.image_size,
                                 "--steps", self.settings.fit_steps, "--seed", 0, *resume,
                                 *self.no_progress()])

    def fit_walks(self) -> None:
        """Latent walks of the fitted generator, for the steered conditions."""
        walks = self.path("walks", "cgan.pt")
        if walks.is_file():
            return
        make_folder(walks.parent)
        resume = ["--resume"] if walks.with_name(walks.name + ".state").is_file() else []
        run_cli("generate.steer", ["--generator", "cgan", "--weights", self.path("generator"), "--out", walks,
                                   "--samples", self.settings.walk_samples, *resume, *self.no_progress()])

    def generate(self, name: str) -> None:
        groups = read_json(self.path("data", "real-train", "manifest.json"))["groups"]
        arguments = self.settings.data_arguments(name, self.path("walks", "cgan.pt"))
        run_cli("generate", ["--generator", "cgan", "--weights", self.path("generator"),
                             "--n-anchors", groups, *arguments, "--seed", 0,
                             "--out", self.path("data", name), *self.no_progress()])

    def train(self, name: str, seed: int) -> None:
        condition = self.named[name]
        run = self.run_folder(name, seed)
        steps = self.settings.steps if condition.data else 0
        if (run / "last.pt").is_file() and load_checkpoint(run / "last.pt")["step"] == steps:
            return
        data = self.path("data", condition.data or "real-train")
        resume = ["--resume"] if (run / "last.pt").is_file() else []
        run_cli("train.main", [
            "--data", data, "--out", run, "--method", condition.method, "--backbone", "convnet-small",
            "--steps", steps, "--batch-size", self.settings.batch_size, "--optimizer", "adamw",
            "--lr", LR_PER_256_GROUPS, "--weight-decay", 1e-4, "--warmup", 0.05, "--temperature", 0.2,
            "--projection-dim", 64, "--crop-min-scale", 0.2, "--seed", seed,
            "--color-augment" if self.settings.color_augment else "--no-color-augment",
            "--workers", self.settings.workers, *resume, *self.no_progress()])

    def evaluate(self, name: str, seed: int) -> None:
        run = self.run_folder(name, seed)
        common = ["--checkpoint", run / "last.pt", "--train", self.path("data", "real-train"),
                  "--val", self.path("data", "real-test"), *self.no_progress()]
        for metric, arguments in self.metrics().items():
            if not (run / "eval" / metric / "results.json").is_file():
                run_cli("evaluate", [*arguments[:1], *common, *arguments[1:]])

    # -- reading what the steps wrote ----------------------------------------------------------

    def metrics(self) -> dict[str, list[object]]:
        """results.json folder -> ``python -m evaluate`` arguments."""
        low = self.settings.labels_per_class
        epochs = ["--epochs", self.settings.probe_epochs]
        return {f"linear@{low}": ["linear", "--labels-per-class", low, "--draws", self.settings.draws, *epochs],
                "knn": ["knn", "--k", self.settings.knn_k],
                "linear": ["linear", *epochs]}

    def run_folder(self, name: str, seed: int) -> Path:
        """Conditions that train the same thing (gaussian@S with S = --sigma) share one run."""
        condition = self.named[name]
        what = f"{condition.data}-{condition.method}" if condition.data else "random-init"
        return self.path("runs", f"{what}-seed{seed}")

    def report(self) -> dict[str, Any]:
        low = f"linear@{self.settings.labels_per_class}"
        rows = []
        for name in self.settings.conditions:
            per_seed = []
            for seed in self.settings.seeds:
                run = self.run_folder(name, seed)
                results = {metric: read_json(run / "eval" / metric / "results.json") for metric in self.metrics()}
                per_seed.append({"seed": seed, "run": str(run.relative_to(self.out)),
                                 "checkpoint_sha256": results["knn"]["checkpoint_sha256"],
                                 **{metric: summary_of(result) for metric, result in results.items()}})
            rows.append({"condition": name, "label": self.named[name].label,
                         "data": self.named[name].data, "method": self.named[name].method,
                         "seeds": per_seed,
                         **{metric: spread([run[metric]["top1"] for run in per_seed]) for metric in self.metrics()}})
        data = {name: read_json(self.path("data", name, "manifest.json")) for name in self.data_names()}
        return {
            "settings": asdict(self.settings),
            "low_label_metric": low,
            "conditions": rows,
            "data": {name: {"manifest_sha256": sha256_file(self.path("data", name, "manifest.json")),
                            "groups": manifest["groups"], "views": manifest["views"],
                            "view_method": manifest["view_method"]} for name, manifest in data.items()},
            "generator": read_json(self.path("generator", REPORT_FILE)),
            "generator_config_sha256": sha256_file(self.path("generator", "config.json")),
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "python": platform.python_version()},
            "wall_minutes_this_invocation": round((time.perf_counter() - self.started) / 60, 1),
            "provenance": provenance(["python", "-m", "experiments.views", *sys.argv[1:]]),
        }

    def data_names(self) -> list[str]:
        used = {self.named[name].data for name in self.settings.conditions} - {None}
        return sorted(used | {"real-train", "real-test"})

    def no_progress(self) -> list[str]:
        return [] if self.progress else ["--no-progress"]


def summary_of(result: dict[str, Any]) -> dict[str, Any]:
    keep = ("top1", "top5", "top1_std", "top1_min", "top1_max")
    return {key: result[key] for key in keep if key in result}


def spread(values: list[float]) -> dict[str, float]:
    """Mean and spread over seeds (sample standard deviation; 0 with one seed)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def markdown_table(report: dict[str, Any]) -> str:
    low = report["low_label_metric"]
    seeds = len(report["settings"]["seeds"])
    header = (f"| condition | {low} (mean ± std over {seeds} seeds) | kNN top-1 | full linear top-1 |\n"
              "|---|---|---|---|\n")
    lines = [f"| {row['label']} | {100 * row[low]['mean']:.1f} ± {100 * row[low]['std']:.1f} "
             f"| {100 * row['knn']['mean']:.1f} ± {100 * row['knn']['std']:.1f} "
             f"| {100 * row['linear']['mean']:.1f} ± {100 * row['linear']['std']:.1f} |"
             for row in report["conditions"]]
    return header + "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """views.png: a bar per condition (low-label probe and kNN, seed spread as error bars), and
    accuracy against sigma when the experiment swept it."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    low = report["low_label_metric"]
    rows = [row for row in report["conditions"] if "@" not in row["condition"]]
    sweep = sorted((float(row["condition"].split("@")[1]), row) for row in report["conditions"]
                   if "@" in row["condition"])
    figure, axes = plt.subplots(1, 2 if sweep else 1, figsize=(13 if sweep else 9, 4.5), squeeze=False)
    bars = axes[0][0]
    positions = range(len(rows))
    for offset, metric, name in ((-0.2, low, low), (0.2, "knn", "kNN")):
        bars.bar([p + offset for p in positions], [100 * row[metric]["mean"] for row in rows], width=0.4,
                 yerr=[100 * row[metric]["std"] for row in rows], capsize=3, label=name)
    bars.set_xticks(list(positions), [row["condition"] for row in rows], rotation=20)
    bars.set_ylabel("top-1 on the real test split (%)")
    bars.set_title("encoders trained on each condition")
    bars.legend()
    if sweep:
        curve = axes[0][1]
        baseline = next((row for row in rows if row["condition"] == "none"), None)
        for metric, name in ((low, low), ("knn", "kNN")):
            line = curve.errorbar([sigma for sigma, _ in sweep], [100 * row[metric]["mean"] for _, row in sweep],
                                  yerr=[100 * row[metric]["std"] for _, row in sweep], marker="o", capsize=3,
                                  label=name)
            if baseline:  # what the sweep is measured against
                curve.axhline(100 * baseline[metric]["mean"], linestyle="--", color=line[0].get_color(),
                              label=f"{name}, no latent views")
        curve.set_xlabel("sigma of the gaussian views")
        curve.set_ylabel("top-1 (%)")
        curve.set_title("accuracy against sigma")
        curve.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())


# -- running the project's command lines in this process ------------------------------------------

COMMANDS: dict[str, click.Command] = {"shards": shards_cli, "evaluate": evaluate_cli, "generate": generate_main,
                                      "generate.fit": fit_main, "generate.steer": steer_main,
                                      "train.main": train_main}


def run_cli(module: str, arguments: list[object]) -> None:
    """Run a command line of the project as a user would, in this process: the same parsing, the
    same refusals, the same files (its recorded command line is the one it was given)."""
    argv = [str(argument) for argument in arguments]
    shown = "train/main.py" if module == "train.main" else f"python -m {module}"
    click.echo(f"[views] {shown} {' '.join(argv)}", err=True)
    saved_argv, sys.argv = sys.argv, [shown, *argv]
    try:
        COMMANDS[module].main(args=argv, prog_name=shown, standalone_mode=False)
    except SystemExit as stop:
        if stop.code:
            raise ExperimentError(f"{shown} {argv[0]} ... failed (exit {stop.code}); its error is printed "
                                  "above.") from None
    except click.ClickException as error:
        raise ExperimentError(f"{shown} refused its arguments ({error.format_message()}).") from None
    finally:
        sys.argv = saved_argv


# -- checks before anything is written ------------------------------------------------------------

def check_real_folder(real: Path, labels_per_class: int) -> None:
    missing = [split for split in SPLITS if not (real / split).is_dir()]
    if missing:
        raise ExperimentError(f"{real} must hold train/ and test/ ImageFolders (CLASS/IMAGE), but has no "
                              f"{' or '.join(f'{split}/' for split in missing)}.")
    listed = {split: list_folder(real / split) for split in SPLITS}
    train_classes, test_classes = listed["train"][0], listed["test"][0]
    if train_classes != test_classes:
        only = sorted(set(train_classes) ^ set(test_classes))
        raise ExperimentError(f"{real}/train and {real}/test must have the same class folders; "
                              f"{', '.join(only[:3]) or 'their order'} differ.")
    counts = {name: 0 for name in train_classes}
    for image in listed["train"][1]:
        counts[train_classes[image.label]] += 1
    short = sorted((count, name) for name, count in counts.items() if count < labels_per_class)
    if short:
        raise ExperimentError(f"--labels-per-class {labels_per_class} needs that many training images in "
                              f"every class, but {real}/train/{short[0][1]} has {short[0][0]}.")


def check_conditions(names: tuple[str, ...], known: dict[str, Condition]) -> None:
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ExperimentError(f"Unknown condition {unknown[0]!r}; choose from {', '.join(known)}.")


def check_folder(out: Path, settings: Settings, resume: bool) -> None:
    recorded_path = out / SETTINGS_FILE
    if not recorded_path.is_file():
        if out.exists() and any(out.iterdir()):
            raise ExperimentError(f"{out} is not empty and holds no experiment; choose a new folder.")
        if resume:
            raise ExperimentError(f"--resume: {out} holds no experiment to continue.")
        return
    if not resume:
        raise ExperimentError(f"{out} already holds an experiment; pass --resume to continue it or choose "
                              "another --out.")
    recorded = read_json(recorded_path)
    wanted = json.loads(json.dumps(asdict(settings)))
    changed = sorted(key for key in wanted.keys() | recorded.keys() if recorded.get(key) != wanted.get(key))
    if changed:
        raise ExperimentError(f"--resume: {out} was run with other settings ({', '.join(changed)} differ); "
                              "resume with the same options or choose another --out.")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def parse_list(text: str, kind: type, option: str) -> tuple:
    try:
        values = tuple(kind(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise ExperimentError(f"{option} takes a comma-separated list, not {text!r}.") from None
    if kind is float and not all(math.isfinite(value) and value > 0 for value in values):
        raise ExperimentError(f"{option} values must be finite and above 0, not {text!r}.")
    return values


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--real", type=click.Path(path_type=Path), required=True,
              help="Labelled images: REAL/train/CLASS/IMAGE and REAL/test/CLASS/IMAGE.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Experiment folder: sets, generator, runs, table.md, views.png, results.json.")
@click.option("--conditions", "condition_list", default=",".join(DEFAULT_CONDITIONS),
              help="Comma-separated conditions: random, none, gaussian, independent, real, supcon, steer, "
                   "gaussian+steer, and gaussian@SIGMA for each --sigmas value.")
@click.option("--seeds", default="0,1", help="Comma-separated training seeds; the table reports their spread.")
@click.option("--sigma", type=float, default=0.5, help="Sigma of the gaussian and supcon conditions.")
@click.option("--sigmas", default="", help="A sweep, e.g. 0.2,0.5,1.0: adds gaussian@SIGMA conditions and a "
                                           "plot of accuracy against sigma.")
@click.option("--views", type=click.IntRange(2), default=2, help="Images per generated group with latent views.")
@click.option("--steps", type=click.IntRange(1), default=300, help="Training steps of every condition (x --scale).")
@click.option("--batch-size", type=click.IntRange(2), default=64,
              help="Training batch of every condition, in groups (two views each).")
@click.option("--fit-steps", type=click.IntRange(1), default=1200, help="GAN fitting steps (x --scale).")
@click.option("--walk-samples", type=click.IntRange(1), default=16000,
              help="Samples that fit the latent walks of the steer conditions (x --scale).")
@click.option("--scale", type=click.FloatRange(0, min_open=True), default=1.0,
              help="Multiplies --steps and --fit-steps (e.g. 8 on a GPU).")
@click.option("--image-size", type=click.Choice(["32", "64"]), default="32", help="Image side in pixels.")
@click.option("--labels-per-class", type=click.IntRange(2), default=10,
              help="Labelled images per class of the low-label probe.")
@click.option("--draws", type=click.IntRange(2), default=5, help="Seeded draws of the low-label probe.")
@click.option("--knn-k", type=click.IntRange(1), default=20, help="Neighbours of the kNN classifier.")
@click.option("--probe-epochs", type=click.IntRange(1), default=30, help="Epochs of the linear probes.")
@click.option("--workers", type=click.IntRange(0), default=1, help="Data-loading processes of the trainer.")
@click.option("--color-augment/--no-color-augment", default=False,
              help="Colour jitter and grayscale besides crops and flips in every training: needed where each "
                   "image has colours of its own (photographs, e.g. CIFAR-10), not on the silhouettes.")
@click.option("--resume", is_flag=True, help="Continue the experiment in --out; finished steps are not redone.")
@click.option("--progress/--no-progress", default=True, help="Show the progress bars of every step.")
@reports_errors
def main(real: Path, out: Path, condition_list: str, seeds: str, sigma: float, sigmas: str, views: int,
         steps: int, batch_size: int, fit_steps: int, walk_samples: int, scale: float, image_size: str, labels_per_class: int,
         draws: int, knn_k: int, probe_epochs: int, workers: int, color_augment: bool, resume: bool,
         progress: bool) -> None:
    """Train an encoder on each view condition and on the real images, and compare them on real labels."""
    settings = Settings(
        real=str(real.resolve()), seeds=parse_list(seeds, int, "--seeds"),
        conditions=tuple(name.strip() for name in condition_list.split(",") if name.strip()),
        sigma=sigma, sigmas=parse_list(sigmas, float, "--sigmas"), views=views,
        steps=max(1, round(steps * scale)), batch_size=batch_size, fit_steps=max(1, round(fit_steps * scale)),
        walk_samples=max(1, round(walk_samples * scale)),
        image_size=int(image_size), labels_per_class=labels_per_class, draws=draws, knn_k=knn_k,
        probe_epochs=probe_epochs, workers=workers, color_augment=color_augment)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ExperimentError(f"--sigma must be finite and above 0, not {sigma}.")
    if not settings.seeds or any(seed < 0 for seed in settings.seeds):
        raise ExperimentError(f"--seeds takes non-negative integers, not {seeds!r}.")
    conditions_named = conditions(settings.sigma, settings.sigmas)
    sweep = tuple(f"gaussian@{value:g}" for value in settings.sigmas if f"gaussian@{value:g}" not in
                  settings.conditions)
    settings = Settings(**{**asdict(settings), "conditions": settings.conditions + sweep})
    check_conditions(settings.conditions, conditions_named)
    check_real_folder(real, labels_per_class)
    check_folder(out, settings, resume)
    make_folder(out)
    write_json_atomic(out / SETTINGS_FILE, asdict(settings))
    report = Experiment(out, settings, progress).run()
    write_json_atomic(out / "results.json", report)
    table = markdown_table(report)
    write_bytes_atomic(out / "table.md", table.encode())
    plot(report, out / "views.png")
    click.echo(table)
    click.echo(f"Wrote {out / 'table.md'}, {out / 'views.png'} and {out / 'results.json'}.")


if __name__ == "__main__":
    main()
