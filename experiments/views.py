"""Does it learn? The miniature of the paper's experiment, from a labelled ImageFolder to a table.

    python -m experiments.views --real FOLDER --out runs/views

FOLDER holds ``train/CLASS/IMAGE`` and ``test/CLASS/IMAGE`` (e.g. ``python -m
experiments.silhouettes --out FOLDER``, or CIFAR-10 exported to folders). The experiment drives the
project's own command lines, in this process and with the arguments a user would type, never
private shortcuts:

1. carve a validation split from the real train split (``experiments.validation``: seeded, per
   class, recorded in ``split/split.json``) and ``python -m shards ingest`` both parts;
2. ``python -m generate.fit`` a small class-conditional GAN on the train split's fit part, unless
   ``--generator DIR`` names a diffusion model (a diffusers pipeline folder) to take its place;
3. choose what is chosen on the validation split only: with several ``--sigma`` values, one
   gaussian set and one encoder (the first seed) per value, scored by kNN top-1 on the validation
   part; the choice goes to ``choices.json``;
4. ``python -m generate --generator cgan`` (or ``diffusers --weights DIR``, its images resized to
   ``--image-size``) one set per view method and number of views; ``renoise`` views need a
   diffusion model;
5. ``train/main.py --backbone convnet-small`` every condition for every seed, for the same steps and
   images per step (multi-view conditions take 2/K as many groups of K views), with crops and flips
   (``--color-augment`` adds colour jitter and grayscale, which colour images need); the
   random-init floor trains for 0 steps;
6. then, and only then, ingest the test split and ``python -m evaluate`` each encoder on it once: a
   low-label probe (labels per class, seeded draws shared by every encoder), kNN and the full-label
   probe.

Every condition is compared with ``none`` seed by seed and draw by draw (``experiments.stats``);
multi-view conditions with latent views also with ``none`` at the same number of views. It writes
``table.md``, ``views.png`` (absolute figures and a forest plot of the differences) and
``results.json`` (every number, the paired differences and their intervals, the choices, the split,
and the sha256 of every set and checkpoint) into --out. Each step leaves a file behind that marks it
done, so a rerun with ``--resume`` continues where the last one stopped.
"""

from __future__ import annotations

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

from common import commands
from common.console import reports_errors
from common.errors import UserError
from common.files import make_folder, sha256_file, write_json_atomic
from common.provenance import provenance
from evaluate.cli import cli as evaluate_cli
from experiments import validation
from experiments.plots import plot_experiment
from experiments.publish import publish
from experiments.stats import paired_difference
from experiments.tables import experiment_table
from generate.cli import main as generate_main
from generate.fit import REPORT_FILE, STATE_FILE, main as fit_main
from generate.sampling import DEFAULT_STRENGTH
from generate.steer import main as steer_main
from shards.cli import cli as shards_cli
from shards.ingest import list_folder
from train.checkpoint import load_checkpoint
from train.main import main as train_main

SPLITS = ("train", "test")
SETTINGS_FILE = "experiment.json"
CHOICES_FILE = "choices.json"
MULTI_VIEWS = (4, 8)  # the K of the multi-view conditions none-xK, gaussian-xK, supcon-xK
# Settings added since experiments were first recorded, with the values those experiments ran with.
LATER_SETTINGS = {"generator": None, "strength": DEFAULT_STRENGTH}
STEERED_CONDITIONS = ("steer", "gaussian+steer")  # their walks are fitted on the cgan
# The trainer scales its --lr by the batch in groups / 256: the recipe's peak of 1e-3 at 128 groups (256
# images), so the same per-image rate at any batch (5e-4 at the default 64 groups).
LR_PER_256_GROUPS = 2e-3


class ExperimentError(UserError):
    """The experiment cannot start or a step of it failed; the message is one sentence."""


@dataclass(frozen=True)
class Condition:
    """What one encoder is trained on: a set (by name, see ``set_arguments``), a method and the views
    each training sample takes; ``twin`` is the condition with the same views and no latent ones."""

    label: str
    data: str | None  # None: the random-init floor, never trained
    method: str = "simclr"
    views: int = 2
    twin: str | None = None


def gaussian_set(sigma: float, views: int | None = None) -> str:
    return f"gaussian-{sigma:g}" + (f"-x{views}" if views else "")


def conditions(sigma: float, sweep: tuple[float, ...],
               strength: float = DEFAULT_STRENGTH) -> dict[str, Condition]:
    """Every condition the experiment can run, by name; ``gaussian@S`` for each sigma of the sweep."""
    named = {
        "random": Condition("random init (floor)", None),
        "none": Condition("generated, no latent views", "none"),
        "gaussian": Condition(f"generated, gaussian views sigma {sigma:g}", gaussian_set(sigma)),
        "independent": Condition("generated, independent same-class views", "independent"),
        "renoise": Condition(f"generated, re-noised views strength {strength:g}", f"renoise-{strength:g}"),
        "real": Condition("real train split, SimCLR", "real-fit"),
        "supcon": Condition(f"generated, gaussian views sigma {sigma:g}, SupCon", gaussian_set(sigma), "supcon"),
        "steer": Condition("generated, steered views", "steer"),
        "gaussian+steer": Condition(f"generated, gaussian views sigma {sigma:g} + steered", f"gaussian+steer-{sigma:g}"),
    }
    for k in MULTI_VIEWS:
        twin = f"none-x{k}"
        named[twin] = Condition(f"generated, no latent views, {k} augmented views, multipos", "none", "multipos", k)
        named[f"gaussian-x{k}"] = Condition(f"generated, {k} gaussian views sigma {sigma:g}, multipos",
                                            gaussian_set(sigma, k), "multipos", k, twin)
        named[f"supcon-x{k}"] = Condition(f"generated, {k} gaussian views sigma {sigma:g}, SupCon",
                                          gaussian_set(sigma, k), "supcon", k, twin)
    for value in sweep:
        named[f"gaussian@{value:g}"] = Condition(f"sigma sweep: gaussian views sigma {value:g}",
                                                 gaussian_set(value))
    return named


DEFAULT_CONDITIONS = ("random", "none", "gaussian", "real", "none-x4", "gaussian-x4")


@dataclass(frozen=True)
class Settings:
    """Everything that decides the experiment's numbers; a resumed experiment must match it."""

    real: str
    seeds: tuple[int, ...]
    conditions: tuple[str, ...]
    sigma: tuple[float, ...]  # several: chosen on the validation split
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
    val_fraction: float
    split_seed: int
    generator: str | None = None  # a diffusers pipeline folder in place of the fitted cgan
    strength: float = DEFAULT_STRENGTH  # of the renoise condition

    def set_arguments(self, name: str, walks: Path) -> list[object]:
        """``python -m generate`` arguments of a generated set, by its name (``walks``: the fitted walk file)."""
        if name == "none":
            return ["--view-method", "none", "--views", 1]
        if name == "independent":
            return ["--view-method", "independent", "--views", self.views]
        if name.startswith("renoise-"):
            strength = float(name.removeprefix("renoise-"))
            return ["--view-method", "renoise", "--strength", strength, "--views", self.views]
        if name == "steer":
            return ["--view-method", "steer", "--walks", walks, "--views", self.views]
        if name.startswith("gaussian+steer-"):
            return ["--view-method", "gaussian+steer", "--sigma", float(name.removeprefix("gaussian+steer-")),
                    "--walks", walks, "--views", self.views]
        sigma, _, views = name.removeprefix("gaussian-").partition("-x")
        return ["--view-method", "gaussian", "--sigma", float(sigma), "--views", int(views or self.views)]


class Experiment:
    """The folder of one experiment and the steps that fill it."""

    def __init__(self, out: Path, settings: Settings, progress: bool) -> None:
        self.out = out
        self.settings = settings
        self.progress = progress
        self.named = conditions(settings.sigma[0], settings.sigmas, settings.strength)
        self.started = time.perf_counter()

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def run(self) -> dict[str, Any]:
        self.carve_validation()
        for part in validation.PARTS:
            self.ingest(self.path("split", part), f"real-{part}")
        self.fit_generator()
        sigma = self.choose_sigma()
        self.named = conditions(sigma, self.settings.sigmas, self.settings.strength)
        generated = sorted({self.named[c].data for c in self.settings.conditions} - {None, "real-fit"})
        if any("steer" in name for name in generated):
            self.fit_walks()
        for name in generated:
            self.generate(name)
        for name in self.settings.conditions:
            for seed in self.settings.seeds:
                self.train(self.named[name], seed)
        self.ingest_test_split()
        for name in self.settings.conditions:
            for seed in self.settings.seeds:
                self.evaluate(name, seed)
        return self.report()

    # -- the steps: each one is a project command line, skipped when its output is there --------

    def carve_validation(self) -> None:
        if not self.path("split", "split.json").is_file():
            validation.carve(Path(self.settings.real) / "train", self.path("split"), self.settings.val_fraction,
                             self.settings.split_seed)

    def ingest(self, folder: Path, name: str) -> None:
        location = self.path("data", name)
        if not (location / "manifest.json").is_file():
            run_cli("shards", ["ingest", folder, location, "--image-size", self.settings.image_size,
                               *self.no_progress()])

    def ingest_test_split(self) -> None:
        """The one place the test split is read: after every choice is recorded and every encoder trained."""
        if not self.path(CHOICES_FILE).is_file():
            raise RuntimeError("The test split may be read only once the choices are recorded.")
        self.ingest(Path(self.settings.real) / "test", "real-test")

    def fit_generator(self) -> None:
        weights = self.path("generator")
        if self.settings.generator is not None or (weights / REPORT_FILE).is_file():
            return
        resume = ["--resume"] if (weights / STATE_FILE).is_file() else []
        run_cli("generate.fit", ["--data", self.path("split", "fit"), "--out", weights,
                                 "--image-size", self.settings.image_size,
                                 "--steps", self.settings.fit_steps, "--seed", 0, *resume,
                                 *self.no_progress()])

    def choose_sigma(self) -> float:
        """The sigma of the gaussian conditions: the only value given, or the one whose encoder (first
        seed) has the best kNN top-1 on the validation split; recorded in choices.json."""
        if self.path(CHOICES_FILE).is_file():
            return read_json(self.path(CHOICES_FILE))["sigma"]
        seed, scores = self.settings.seeds[0], {}
        if len(self.settings.sigma) > 1:
            for sigma in self.settings.sigma:
                name = gaussian_set(sigma)
                self.generate(name)
                candidate = Condition(f"gaussian views sigma {sigma:g}", name)
                self.train(candidate, seed)
                out = self.run_folder(candidate, seed) / "eval-val" / "knn"
                if not (out / "results.json").is_file():
                    run_cli("evaluate", ["knn", "--checkpoint", self.run_folder(candidate, seed) / "last.pt",
                                         "--train", self.path("data", "real-fit"), "--val", self.path("data", "real-val"),
                                         "--out", out, "--k", self.settings.knn_k, *self.no_progress()])
                scores[f"{sigma:g}"] = read_json(out / "results.json")["top1"]
        chosen = max(self.settings.sigma, key=lambda sigma: scores.get(f"{sigma:g}", 0.0))
        write_json_atomic(self.path(CHOICES_FILE), {
            "sigma": chosen, "candidates": list(self.settings.sigma), "validation_knn_top1": scores,
            "how": ("the only value given" if len(scores) == 0 else
                    f"best kNN top-1 on the validation split of gaussian views with seed {seed}; ties to the "
                    "first value given"),
            "split": {key: value for key, value in read_json(self.path("split", "split.json")).items() if key != "val"}})
        return chosen

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
        if (self.path("data", name, "manifest.json")).is_file():
            return
        groups = read_json(self.path("data", "real-fit", "manifest.json"))["groups"]
        arguments = self.settings.set_arguments(name, self.path("walks", "cgan.pt"))
        generator = (["--generator", "cgan", "--weights", self.path("generator")] if self.settings.generator is None
                     else ["--generator", "diffusers", "--weights", self.settings.generator,
                           "--image-size", self.settings.image_size])
        run_cli("generate", [*generator, "--n-anchors", groups, *arguments, "--seed", 0,
                             "--out", self.path("data", name), *self.no_progress()])

    def train(self, condition: Condition, seed: int) -> None:
        run = self.run_folder(condition, seed)
        steps = self.settings.steps if condition.data else 0
        if (run / "last.pt").is_file() and load_checkpoint(run / "last.pt")["step"] == steps:
            return
        data = self.path("data", condition.data or "real-fit")
        resume = ["--resume"] if (run / "last.pt").is_file() else []
        # the same images per step whatever the views: K views take 2/K as many groups
        groups = max(2, self.settings.batch_size * 2 // condition.views)
        run_cli("train.main", [
            "--data", data, "--out", run, "--method", condition.method, "--views", condition.views,
            "--backbone", "convnet-small", "--steps", steps, "--batch-size", groups, "--optimizer", "adamw",
            "--lr", LR_PER_256_GROUPS, "--weight-decay", 1e-4, "--warmup", 0.05, "--temperature", 0.2,
            "--projection-dim", 64, "--crop-min-scale", 0.2, "--seed", seed,
            "--color-augment" if self.settings.color_augment else "--no-color-augment",
            "--workers", self.settings.workers, *resume, *self.no_progress()])

    def evaluate(self, name: str, seed: int) -> None:
        run = self.run_folder(self.named[name], seed)
        common = ["--checkpoint", run / "last.pt", "--train", self.path("data", "real-fit"),
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

    def run_folder(self, condition: Condition, seed: int) -> Path:
        """Conditions that train the same thing (gaussian@S with the chosen sigma) share one run."""
        views = f"{condition.views}" if condition.views != 2 else ""
        what = f"{condition.data}-{condition.method}{views}" if condition.data else "random-init"
        return self.path("runs", f"{what}-seed{seed}")

    def cells(self, name: str, metric: str) -> list[list[float]]:
        """[seed][draw] top-1 of a condition on the test split (one draw for kNN and the full probe)."""
        results = [read_json(self.run_folder(self.named[name], seed) / "eval" / metric / "results.json")
                   for seed in self.settings.seeds]
        return [[draw["top1"] for draw in result["per_draw"]] if "per_draw" in result else [result["top1"]]
                for result in results]

    def differences(self, name: str, reference: str) -> dict[str, Any]:
        return {metric: paired_difference(self.cells(name, metric), self.cells(reference, metric))
                for metric in self.metrics()}

    def report(self) -> dict[str, Any]:
        low = f"linear@{self.settings.labels_per_class}"
        chosen = self.settings.conditions
        rows = []
        for name in chosen:
            condition = self.named[name]
            per_seed = []
            for seed in self.settings.seeds:
                run = self.run_folder(self.named[name], seed)
                results = {metric: read_json(run / "eval" / metric / "results.json") for metric in self.metrics()}
                per_seed.append({"seed": seed, "run": str(run.relative_to(self.out)),
                                 "checkpoint_sha256": results["knn"]["checkpoint_sha256"],
                                 **{metric: summary_of(result) for metric, result in results.items()}})
            row = {"condition": name, "label": condition.label, "data": condition.data,
                   "method": condition.method, "views": condition.views, "seeds": per_seed,
                   **{metric: spread([run[metric]["top1"] for run in per_seed]) for metric in self.metrics()}}
            if "none" in chosen and name != "none":
                row["vs_none"] = self.differences(name, "none")
            if condition.twin in chosen:
                row["vs_twin"] = {"twin": condition.twin, **self.differences(name, condition.twin)}
            rows.append(row)
        data = {name: read_json(self.path("data", name, "manifest.json")) for name in self.data_names()}
        return {
            "settings": asdict(self.settings),
            "low_label_metric": low,
            "choices": read_json(self.path(CHOICES_FILE)),
            "split": read_json(self.path("split", "split.json")),
            "comparison": ("paired by seed and probe draw; 95% intervals as experiments.stats states; "
                           "'not shown' where the interval covers 0"),
            "conditions": rows,
            "generated_vs_real": (self.differences("none", "real") if {"none", "real"} <= set(chosen) else None),
            "data": {name: {"manifest_sha256": sha256_file(self.path("data", name, "manifest.json")),
                            "groups": manifest["groups"], "views": manifest["views"],
                            "view_method": manifest["view_method"]} for name, manifest in data.items()},
            **self.generator_report(data),
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "python": platform.python_version()},
            "wall_minutes_this_invocation": round((time.perf_counter() - self.started) / 60, 1),
            "provenance": provenance(["python", "-m", "experiments.views", *sys.argv[1:]]),
        }

    def generator_report(self, manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The fitted cgan's report and config sha256, or the diffusion model's folder and what its sets
        record of it."""
        if self.settings.generator is None:
            return {"generator": read_json(self.path("generator", REPORT_FILE)),
                    "generator_config_sha256": sha256_file(self.path("generator", "config.json"))}
        made = next((manifest["generator"] for manifest in manifests.values() if manifest["kind"] == "synthetic"),
                    {})
        recorded = {key: made.get(key) for key in ("weights_sha256", "resolution", "num_classes", "sampler")}
        return {"generator": {"diffusers": self.settings.generator, **recorded}}

    def data_names(self) -> list[str]:
        used = {self.named[name].data for name in self.settings.conditions} - {None}
        return sorted(used | {"real-fit", "real-val", "real-test"})

    def no_progress(self) -> list[str]:
        return [] if self.progress else ["--no-progress"]


def summary_of(result: dict[str, Any]) -> dict[str, Any]:
    keep = ("top1", "top5", "top1_std", "top1_min", "top1_max")
    return {key: result[key] for key in keep if key in result}


def spread(values: list[float]) -> dict[str, float]:
    """Mean and spread over seeds (sample standard deviation; 0 with one seed)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


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

def check_real_folder(real: Path, labels_per_class: int, val_fraction: float) -> None:
    missing = [split for split in SPLITS if not (real / split).is_dir()]
    if missing:
        raise ExperimentError(f"{real} must hold train/ and test/ ImageFolders (CLASS/IMAGE), but has no "
                              f"{' or '.join(f'{split}/' for split in missing)}.")
    listed = {split: list_folder(real / split) for split in SPLITS}  # names only: no image is read
    train_classes, test_classes = listed["train"][0], listed["test"][0]
    if train_classes != test_classes:
        only = sorted(set(train_classes) ^ set(test_classes))
        raise ExperimentError(f"{real}/train and {real}/test must have the same class folders; "
                              f"{', '.join(only[:3]) or 'their order'} differ.")
    counts = {name: 0 for name in train_classes}
    for image in listed["train"][1]:
        counts[train_classes[image.label]] += 1
    fit = {name: count - max(1, round(val_fraction * count)) for name, count in counts.items()}
    short = sorted((count, name) for name, count in fit.items() if count < labels_per_class)
    if short:
        raise ExperimentError(f"--labels-per-class {labels_per_class} needs that many training images in "
                              f"every class besides the validation split, but {real}/train/{short[0][1]} "
                              f"keeps {short[0][0]}.")


def check_conditions(names: tuple[str, ...], known: dict[str, Condition], generator: str | None) -> None:
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ExperimentError(f"Unknown condition {unknown[0]!r}; choose from {', '.join(known)}.")
    if "renoise" in names and generator is None:
        raise ExperimentError("The renoise condition re-noises a diffusion model's samples; give --generator DIR, "
                              "a diffusers pipeline folder.")
    steered = [name for name in names if name in STEERED_CONDITIONS]
    if steered and generator is not None:
        raise ExperimentError(f"The {steered[0]} condition steers along walks fitted on the cgan; drop it with "
                              "--generator.")


def check_generator(generator: str | None) -> None:
    if generator is not None and not (Path(generator) / "model_index.json").is_file():
        raise ExperimentError(f"--generator {generator} is not a diffusers pipeline folder (it has no "
                              "model_index.json); save one there with save_pretrained(DIR).")


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
    try:
        recorded = read_json(recorded_path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        recorded = None
    if not isinstance(recorded, dict):
        raise ExperimentError(f"--resume: {out} is not a readable experiment (its {SETTINGS_FILE} is not a JSON "
                              "object of settings); choose another --out.")
    recorded = {**LATER_SETTINGS, **recorded}
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


@commands.command()
@click.option("--real", type=click.Path(path_type=Path), required=True,
              help="Labelled images: REAL/train/CLASS/IMAGE and REAL/test/CLASS/IMAGE.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Experiment folder: split, sets, generator, runs, table.md, views.png, results.json.")
@click.option("--conditions", "condition_list", default=",".join(DEFAULT_CONDITIONS),
              help="Comma-separated conditions: random, none, gaussian, independent, renoise (with --generator), "
                   "real, supcon, steer, gaussian+steer; the multi-view ones none-xK, gaussian-xK and supcon-xK "
                   "for K in "
                   f"{', '.join(map(str, MULTI_VIEWS))} (K views per sample, multipos or SupCon; none-xK takes K "
                   "augmented views of one image); and gaussian@SIGMA for each --sigmas value.")
@click.option("--seeds", default="0,1,2", help="Comma-separated training seeds (3 or more for intervals that "
                                               "mean something); every condition is paired with none by seed.")
@click.option("--sigma", default="0.25,0.5,1.0",
              help="Sigma of the gaussian and supcon conditions; several values: the one chosen on the validation "
                   "split (kNN top-1 of the first seed's encoder), never on the test split.")
@click.option("--sigmas", default="", help="A sweep, e.g. 0.2,0.5,1.0: adds gaussian@SIGMA conditions, reported "
                                           "on the test split beside the others.")
@click.option("--val-fraction", type=click.FloatRange(0, 0.5, min_open=True), default=0.2,
              help="Part of each class of the real train split held out as the validation split, on which "
                   "sigma is chosen; the rest trains the GAN, the real condition and the probes.")
@click.option("--split-seed", type=click.IntRange(0), default=0, help="Seed of the validation split.")
@click.option("--generator", type=click.Path(path_type=Path), default=None,
              help="A diffusers pipeline folder (e.g. DiT-XL/2) that makes the generated sets in place of the GAN "
                   "fitted to the train split [default: none: the fitted cgan].")
@click.option("--strength", type=click.FloatRange(0, 1, min_open=True), default=DEFAULT_STRENGTH,
              help="Strength of the renoise condition's views (needs --generator): the part of the sampler's "
                   "steps each view is re-noised and denoised through.")
@click.option("--views", type=click.IntRange(2), default=2, help="Images per generated group with latent views "
                                                                  "(the K = 2 conditions).")
@click.option("--steps", type=click.IntRange(1), default=100, help="Training steps of every condition (x --scale).")
@click.option("--batch-size", type=click.IntRange(2), default=64,
              help="Training batch of every condition, in groups of two views; K-view conditions take 2/K as "
                   "many groups, so every condition sees the same images per step.")
@click.option("--fit-steps", type=click.IntRange(1), default=600, help="GAN fitting steps (x --scale).")
@click.option("--walk-samples", type=click.IntRange(1), default=16000,
              help="Samples that fit the latent walks of the steer conditions (x --scale).")
@click.option("--scale", type=click.FloatRange(0, min_open=True), default=1.0,
              help="Multiplies --steps, --fit-steps and --walk-samples (e.g. 8 on a GPU).")
@click.option("--image-size", type=click.Choice(["32", "64"]), default="32", help="Image side in pixels.")
@click.option("--labels-per-class", type=click.IntRange(2), default=10,
              help="Labelled images per class of the low-label probe.")
@click.option("--draws", type=click.IntRange(2), default=5,
              help="Seeded draws of the low-label probe, the same draws for every encoder.")
@click.option("--knn-k", type=click.IntRange(1), default=20, help="Neighbours of the kNN classifier.")
@click.option("--probe-epochs", type=click.IntRange(1), default=30, help="Epochs of the linear probes.")
@click.option("--workers", type=click.IntRange(0), default=1, help="Data-loading processes of the trainer.")
@click.option("--color-augment/--no-color-augment", default=False,
              help="Colour jitter and grayscale besides crops and flips in every training: needed where each "
                   "image has colours of its own (photographs, e.g. CIFAR-10), not on grey images.")
@click.option("--resume", is_flag=True, help="Continue the experiment in --out; finished steps are not redone.")
@click.option("--progress/--no-progress", default=True, help="Show the progress bars of every step.")
@reports_errors
def main(real: Path, out: Path, condition_list: str, seeds: str, sigma: str, sigmas: str, val_fraction: float,
         split_seed: int, generator: Path | None, strength: float, views: int, steps: int, batch_size: int,
         fit_steps: int, walk_samples: int, scale: float,
         image_size: str, labels_per_class: int, draws: int, knn_k: int, probe_epochs: int, workers: int,
         color_augment: bool, resume: bool, progress: bool) -> None:
    """Train an encoder on each view condition and on the real images, and compare each with no latent
    views, paired by seed and probe draw, on the real test split."""
    run_experiment(out, resume, progress, Settings(
        real=str(real.resolve()), seeds=parse_list(seeds, int, "--seeds"),
        conditions=tuple(name.strip() for name in condition_list.split(",") if name.strip()),
        sigma=parse_list(sigma, float, "--sigma"), sigmas=parse_list(sigmas, float, "--sigmas"), views=views,
        steps=max(1, round(steps * scale)), batch_size=batch_size, fit_steps=max(1, round(fit_steps * scale)),
        walk_samples=max(1, round(walk_samples * scale)),
        image_size=int(image_size), labels_per_class=labels_per_class, draws=draws, knn_k=knn_k,
        probe_epochs=probe_epochs, workers=workers, color_augment=color_augment, val_fraction=val_fraction,
        split_seed=split_seed, generator=str(generator.resolve()) if generator else None, strength=strength))


def run_experiment(out: Path, resume: bool, progress: bool, settings: Settings) -> dict[str, Any]:
    """Check the settings, run the experiment into ``out`` and write its table, plot and results."""
    if not settings.sigma:
        raise ExperimentError("--sigma needs at least one value.")
    if not settings.seeds or any(seed < 0 for seed in settings.seeds):
        raise ExperimentError(f"--seeds takes non-negative integers, not {settings.seeds!r}.")
    sweep = tuple(f"gaussian@{value:g}" for value in settings.sigmas if f"gaussian@{value:g}" not in
                  settings.conditions)
    settings = Settings(**{**asdict(settings), "conditions": settings.conditions + sweep})
    check_conditions(settings.conditions, conditions(settings.sigma[0], settings.sigmas, settings.strength),
                     settings.generator)
    check_generator(settings.generator)
    check_real_folder(Path(settings.real), settings.labels_per_class, settings.val_fraction)
    check_folder(out, settings, resume)
    make_folder(out)
    write_json_atomic(out / SETTINGS_FILE, asdict(settings))
    report = Experiment(out, settings, progress).run()
    publish(out, report, ("results.json", "table.md", "views.png"), experiment_table, plot_experiment)
    return report


if __name__ == "__main__":
    main()
