"""``python -m generate.steer``: latent walks for steered views, fitted or found by PCA.

Fit (``--method fit``, the steerability recipe of Jahanian, Chai and Isola, as the GenRep paper uses
it): one linear walk w_t per transform parameter, so that G(z + alpha * w_t) looks like the pixel
transform T_alpha applied to G(z). Each step draws a batch of latents (truncated normals, as the
generation job draws them) and, for a class-conditional generator, a class for the batch, uniformly
over the classes, so that the walks are shared by all; each sample gets one of the transforms in
turn and its amounts drawn uniformly from their ranges (``generate.transforms``); the loss is the
mean squared error over the pixels the transform keeps inside the image, and Adam (lr 1e-3, batch
32) moves the walks, which start at zero. The budget is ``--samples`` and/or ``--minutes``; the
fit checkpoints to ``OUT.state`` every minute and ``--resume`` continues it (also to extend a
finished fit). At the end it measures, on held-out samples, the masked MSE of the fitted walks, of
random directions of the same norm and of no walk at all, prints them and stores them in the walk
file.

Fitting needs gradients through the generator: ``deadleaves`` and any generator (or plug-in) with a
``render_float(latents, classes)`` method returning float images [N, 3, H, W] in [0, 1] that autograd
can differentiate; ``cgan`` and ``biggan-deep-*`` through their networks. Any other generator is
refused in one sentence (``--method pca`` needs no gradients).

PCA (``--method pca``, GANSpace, Harkonen et al. 2020): principal components of an early layer's
activations over sampled latents, mapped back to latent directions by least squares and scaled to
unit norm; each gets the range +-2 standard deviations of the latents along it. The layer is
BigGAN's first linear layer (``generator.gen_z``), cgan's (``project``), deadleaves' linear
latent-to-shape-parameter projection; for other generators (plug-ins), whose layers are not known,
it is the image itself at 16 x 16 pixels.

    python -m generate.steer --generator deadleaves --transforms zoom,shiftx,shifty --minutes 3 \\
        --out walks/deadleaves.pt
    python -m generate.steer --generator cgan --weights weights/silhouettes --out walks/cgan.pt
    python -m generate.steer --generator biggan-deep-256 --method pca --out walks/biggan-pca.pt
"""

from __future__ import annotations

import copy
import io
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click
import torch
import torch.nn.functional as F
from tqdm import tqdm

from common import commands
from common.numbers import seed_range
from common.console import reports_errors
from common.errors import UserError
from common.files import load_torch_file, make_folder, write_bytes_atomic
from common.provenance import provenance
from generate.classes import select_classes
from generate.render import choose_device
from generate.generators import DEFAULT_GENERATOR, GeneratorOptions, PlugIn, make_generator
from generate.generators.biggan import BigGANDeep
from generate.generators.cgan import CGANGenerator
from generate.generators.deadleaves import DeadLeaves
from generate.job import generator_device
from generate.sampling import TRUNCATION_BOUND
from generate.transforms import DEFAULT_TRANSFORMS, Transform, apply_transforms, parse_transforms
from generate.walks import METHODS, WALKS_FORMAT, WALKS_VERSION, parse_ranges, save_walks

LR = 1e-3
BATCH_SIZE = 32
DEFAULT_FIT_SAMPLES = 16_000  # 500 steps of 32
DEFAULT_PCA_SAMPLES = 4096
DEFAULT_COMPONENTS = 8
MAX_IMAGE_SIZE = 64  # default fitting resolution: the generator's own, at most this
EVAL_SAMPLES = 128  # held-out samples per transform for the final figures
CHECKPOINT_SECONDS = 60.0
PCA_RANGE_STDS = 2.0
PCA_IMAGE_SIZE = 16  # the "layer" of generators whose layers are unknown: the image at 16 x 16
_EVAL_STREAM = 0x6576616C  # the held-out samples' seed offset, apart from the training stream

FloatRenderer = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


class SteerError(UserError):
    """Settings, generators or files that walks cannot be fitted with; one sentence."""


# --- the generator, differentiably ------------------------------------------------------------

def float_renderer(generator: Any, name: str) -> FloatRenderer:
    """Latents and classes -> float images [N, 3, H, W] in [0, 1] that autograd differentiates
    through, for the generators that allow it; one sentence for the others."""
    inner = generator.generator if isinstance(generator, PlugIn) else generator
    if isinstance(inner, torch.nn.Module):
        inner.requires_grad_(False)  # gradients flow to the walks only
    method = getattr(inner, "render_float", None)
    if callable(method):
        if not isinstance(generator, PlugIn):
            return method

        def plug_in(latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
            try:
                return method(latents, classes)
            except Exception as error:  # the user's code may raise anything; one sentence
                raise SteerError(f"Generator {name!r} failed in render_float ({type(error).__name__}: "
                                 f"{error}).") from None
        return plug_in
    if isinstance(inner, BigGANDeep):
        model = inner.model.requires_grad_(False)

        def biggan(latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
            one_hot = F.one_hot(classes, inner.num_classes).float()
            return (model(latents.float(), one_hot, inner.truncation) + 1.0) / 2.0
        return biggan
    if isinstance(inner, CGANGenerator):
        # A float32 copy: the generation job renders in float64 for bytes that do not depend on
        # the batch size, which fitting does not need, and float32 convolutions are much faster.
        network = copy.deepcopy(inner.network).float().requires_grad_(False)
        return lambda latents, classes: (network(latents.float(), classes) + 1.0) / 2.0
    raise SteerError(f"Generator {name!r} has no differentiable output, so walks cannot be fitted on "
                     "it: give it a render_float(latents, classes) method returning float images in "
                     "[0, 1] that autograd can differentiate, or use --method pca.")


def checked_renderer(render: FloatRenderer, name: str, image_size: int) -> FloatRenderer:
    """``render`` resized to ``image_size`` (area-faithful, differentiable), its output checked."""
    def resized(latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        images = render(latents, classes)
        if (not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.ndim != 4
                or tuple(images.shape[:2]) != (len(latents), 3)):
            found = (f"{images.dtype} {list(images.shape)}" if isinstance(images, torch.Tensor)
                     else type(images).__name__)
            raise SteerError(f"Generator {name!r} rendered {found} for fitting; it must give float "
                             f"images [{len(latents)}, 3, H, W] in [0, 1].")
        if latents.requires_grad and not images.requires_grad:
            raise SteerError(f"Generator {name!r} renders images that do not depend differentiably on "
                             "its latents, so walks cannot be fitted on it; use --method pca.")
        if images.shape[-1] != image_size or images.shape[-2] != image_size:
            images = F.interpolate(images, size=(image_size, image_size), mode="bilinear",
                                   antialias=True, align_corners=False)
        return images.float()
    return resized


def draw_latents(count: int, dim: int, truncation: float, sampler: torch.Generator) -> torch.Tensor:
    """Truncated standard normals in [-2, 2] scaled by the truncation, as the generation job draws."""
    latents = torch.nn.init.trunc_normal_(torch.empty(count, dim), 0.0, 1.0, -TRUNCATION_BOUND,
                                          TRUNCATION_BOUND, generator=sampler)
    return truncation * latents


def draw_classes(count: int, classes: list[int], sampler: torch.Generator) -> torch.Tensor | None:
    """One class for a whole batch, drawn uniformly (None when unconditional): over the steps the
    walks see every class, and a batch of one class renders in one pass (deadleaves renders each
    class of a batch apart, which makes a mixed batch of 8 classes about 4 times slower)."""
    if not classes:
        return None
    return torch.full((count,), classes[int(torch.randint(len(classes), (1,), generator=sampler))])


# --- fitting --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Directions:
    """The walk directions of a fit: one per parameter of each transform, with its range."""

    transforms: tuple[Transform, ...]
    ranges: dict[str, tuple[float, float]]  # by direction name

    @property
    def names(self) -> list[str]:
        return [name for transform in self.transforms for name in transform.parameters]

    def rows(self, transform: Transform) -> list[int]:
        return [self.names.index(name) for name in transform.parameters]

    def units(self) -> torch.Tensor:
        """The amount that one step of a walk stands for while fitting: the range's larger bound,
        so that every walk is fitted with coefficients in about [-1, 1], as in the paper."""
        return torch.tensor([max(abs(low), abs(high)) for low, high in
                             (self.ranges[name] for name in self.names)])

    def draw(self, transforms: list[Transform], sampler: torch.Generator
             ) -> tuple[torch.Tensor, list[tuple[Transform, list[float]]]]:
        """Amounts [N, directions] (zero but for each sample's own transform) and the assignments
        (transform, its amounts) that ``apply_transforms`` takes."""
        amounts = torch.zeros(len(transforms), len(self.names), dtype=torch.float64)
        uniform = torch.rand(len(transforms), len(self.names), generator=sampler, dtype=torch.float64)
        assignments = []
        for sample, transform in enumerate(transforms):
            rows = self.rows(transform)
            for row in rows:
                low, high = self.ranges[self.names[row]]
                amounts[sample, row] = low + (high - low) * uniform[sample, row]
            assignments.append((transform, amounts[sample, rows].tolist()))
        return amounts, assignments


@dataclass(frozen=True)
class Batch:
    latents: torch.Tensor  # [N, latent_dim]
    classes: torch.Tensor | None  # [N]
    steps: torch.Tensor  # [N, directions]: each amount over its direction's unit
    targets: torch.Tensor  # [N, 3, S, S]: the transformed images
    masks: torch.Tensor  # [N, 1, S, S]: 1 where the loss counts


class WalkFit:
    """The walks being fitted, their optimiser and sampler; resumable via ``state_dict``."""

    def __init__(self, render: FloatRenderer, directions: Directions, latent_dim: int,
                 settings: dict[str, Any], device: torch.device):
        self.render, self.directions, self.settings, self.device = render, directions, settings, device
        self.latent_dim = latent_dim
        # Normalised walks: the latent moves by (alpha / unit) * walk; saved as walk / unit.
        self.walk = torch.zeros(len(directions.names), latent_dim, device=device, requires_grad=True)
        self.units = directions.units().to(device)
        self.optimizer = torch.optim.Adam([self.walk], lr=settings["lr"])
        self.sampler = torch.Generator().manual_seed(settings["seed"])
        self.samples = 0
        self.seconds = 0.0

    def draw(self, transforms: list[Transform], sampler: torch.Generator) -> Batch:
        """Fresh samples, one per transform given, with their targets: the transformed images."""
        latents = draw_latents(len(transforms), self.latent_dim, self.settings["truncation"], sampler)
        classes = draw_classes(len(transforms), self.settings["classes"], sampler)
        amounts, assignments = self.directions.draw(transforms, sampler)
        latents = latents.to(self.device)
        classes = classes.to(self.device) if classes is not None else None
        with torch.no_grad():
            targets, masks = apply_transforms(self.render(latents, classes), assignments)
        steps = amounts.to(self.device).float() / self.units  # walk coefficients, about [-1, 1]
        return Batch(latents, classes, steps, targets, masks)

    def squared_error(self, walk: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The masked squared error of G(z + steps @ walk) against the targets, summed, and the
        number of values the masks keep."""
        images = self.render(batch.latents + batch.steps @ walk, batch.classes)
        kept = batch.masks.expand_as(images)
        return ((images - batch.targets).square() * kept).sum(), kept.sum()

    def train_step(self) -> float:
        count, transforms = self.settings["batch_size"], self.directions.transforms
        start = int(torch.randint(len(transforms), (1,), generator=self.sampler))
        chosen = [transforms[(start + index) % len(transforms)] for index in range(count)]
        total, kept = self.squared_error(self.walk, self.draw(chosen, self.sampler))
        loss = total / kept.clamp_min(1.0)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=[self.walk])
        self.optimizer.step()
        self.samples += count
        return loss.item()

    def directions_per_unit(self) -> torch.Tensor:
        """float32 [directions, latent_dim]: the latent change per unit of each amount."""
        return (self.walk.detach() / self.units[:, None]).float().cpu()

    def state_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "walk": self.walk.detach().cpu(),
                "optimizer": self.optimizer.state_dict(), "sampler": self.sampler.get_state(),
                "samples": self.samples, "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.walk.copy_(state["walk"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.set_state(state["sampler"])
        self.samples, self.seconds = int(state["samples"]), float(state["seconds"])


def probe(render: FloatRenderer, generator: Any, settings: dict[str, Any], device: torch.device) -> None:
    """Render two samples with gradients, so that a generator fitting cannot work with is refused
    before anything is written (from a sampler of its own: the fit's draws stay as they are)."""
    sampler = torch.Generator().manual_seed(settings["seed"])
    latents = draw_latents(2, generator.latent_dim, settings["truncation"], sampler).to(device)
    classes = draw_classes(2, settings["classes"], sampler)
    render(latents.requires_grad_(True), classes.to(device) if classes is not None else None)


def evaluate(fit: WalkFit, samples: int = EVAL_SAMPLES) -> dict[str, dict[str, float]]:
    """Held-out masked MSE per transform: the fitted walks, random directions of the same norms
    (one per parameter, seeded) and no walk at all. The samples are the same for all three."""
    seed = fit.settings["seed"]
    noise = torch.randn(fit.walk.shape, generator=torch.Generator().manual_seed(seed + _EVAL_STREAM))
    noise = noise.to(fit.device)
    fitted = fit.walk.detach()
    random = noise / noise.norm(dim=1, keepdim=True) * fitted.norm(dim=1, keepdim=True)
    walks = {"fitted": fitted, "random_direction": random, "no_walk": torch.zeros_like(fitted)}
    results = {}
    sampler = torch.Generator().manual_seed(seed + _EVAL_STREAM)
    with torch.no_grad():
        for transform in fit.directions.transforms:
            sums, kept_total = dict.fromkeys(walks, 0.0), 0.0
            for start in range(0, samples, fit.settings["batch_size"]):
                batch = fit.draw([transform] * min(fit.settings["batch_size"], samples - start), sampler)
                for name, walk in walks.items():
                    total, kept = fit.squared_error(walk, batch)
                    sums[name] += total.item()
                kept_total += kept.item()
            results[transform.name] = {name: value / max(kept_total, 1.0) for name, value in sums.items()}
            results[transform.name]["samples"] = samples
    return results


def describe_evaluation(evaluation: dict[str, dict[str, float]]) -> list[str]:
    samples = next(iter(evaluation.values()))["samples"]
    lines = [f"Masked MSE on {samples} held-out samples per transform (pixels in [0, 1]; lower is "
             "better):", f"  {'transform':<11} {'fitted walk':>12} {'random direction':>17} "
             f"{'no walk':>9} {'random/fitted':>14}"]
    for name, row in evaluation.items():
        ratio = row["random_direction"] / row["fitted"] if row["fitted"] > 0 else math.inf
        lines.append(f"  {name:<11} {row['fitted']:>12.4g} {row['random_direction']:>17.4g} "
                     f"{row['no_walk']:>9.4g} {ratio:>13.3g}x")
    return lines


def save_state(path: Path, fit: WalkFit) -> None:
    buffer = io.BytesIO()
    torch.save(fit.state_dict(), buffer)
    write_bytes_atomic(path, buffer.getvalue())


def train(fit: WalkFit, samples: int | None, seconds: float, state_path: Path, progress: bool) -> None:
    """Fit until ``samples`` samples or ``seconds`` of fitting in all (resumed runs included)."""
    started, seconds_before, last_save = time.monotonic(), fit.seconds, time.monotonic()
    batch = fit.settings["batch_size"]
    with tqdm(total=samples, initial=fit.samples, unit="sample", disable=not progress,
              dynamic_ncols=True) as bar:
        while (samples is None or fit.samples < samples) and fit.seconds < seconds:
            loss = fit.train_step()
            now = time.monotonic()
            fit.seconds = seconds_before + now - started
            bar.update(batch)
            bar.set_postfix(masked_mse=f"{loss:.4f}")
            if now - last_save >= CHECKPOINT_SECONDS:
                save_state(state_path, fit)
                last_save = now
    save_state(state_path, fit)


# --- PCA ------------------------------------------------------------------------------------

def early_layer(generator: Any) -> tuple[str, Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]]:
    """The name of the layer whose activations PCA runs on, and latents, classes -> them [N, F]."""
    inner = generator.generator if isinstance(generator, PlugIn) else generator
    if isinstance(inner, BigGANDeep):
        model = inner.model

        def gen_z(latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
            embedding = model.embeddings(F.one_hot(classes, inner.num_classes).float())
            return model.generator.gen_z(torch.cat([latents.float(), embedding], dim=1))
        return "generator.gen_z", gen_z
    if isinstance(inner, CGANGenerator):
        network = inner.network

        def project(latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
            return network.project(torch.cat([latents.to(torch.float64), network.class_code(classes)], 1))
        return "project", project
    if isinstance(inner, DeadLeaves):
        return "mapping", lambda latents, classes: latents.to(torch.float64) @ inner.mapping

    def image(latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        small = F.interpolate(generator(latents, classes).float() / 255.0, size=(PCA_IMAGE_SIZE,) * 2,
                              mode="bilinear", antialias=True, align_corners=False)
        return small.flatten(1)
    return f"image at {PCA_IMAGE_SIZE} px", image


def principal_directions(generator: Any, settings: dict[str, Any], device: torch.device,
                         progress: bool) -> tuple[torch.Tensor, list[tuple[float, float]], dict[str, Any]]:
    """Unit latent directions [components, latent_dim], their ranges and the PCA's figures."""
    layer, features_of = early_layer(generator)
    sampler = torch.Generator().manual_seed(settings["seed"])
    latents, features = [], []
    with torch.no_grad(), tqdm(total=settings["samples"], unit="sample", disable=not progress,
                               dynamic_ncols=True) as bar:
        for start in range(0, settings["samples"], settings["batch_size"]):
            count = min(settings["batch_size"], settings["samples"] - start)
            z = draw_latents(count, generator.latent_dim, settings["truncation"], sampler)
            classes = draw_classes(count, settings["classes"], sampler)
            activations = features_of(z.to(device), classes.to(device) if classes is not None else None)
            latents.append(z.double())
            features.append(activations.flatten(1).double().cpu())
            bar.update(count)
    z, y = torch.cat(latents), torch.cat(features)
    components = settings["components"]
    if components > min(y.shape[1], z.shape[1], len(z) - 1):
        raise SteerError(f"--components {components} is more than this generator's layer "
                         f"{layer} ({y.shape[1]} values), latent ({z.shape[1]}) or samples allow.")
    centred = y - y.mean(dim=0)
    torch.manual_seed(settings["seed"])  # svd_lowrank draws its random projections from here
    _, singular, basis = torch.svd_lowrank(centred, q=min(components + 10, *centred.shape), niter=6)
    coordinates = centred @ basis[:, :components]  # [N, components]
    # Least squares: the latent direction whose multiples best explain each component's coordinate.
    mapped = torch.linalg.lstsq(coordinates, z - z.mean(dim=0)).solution  # [components, latent_dim]
    directions = mapped / mapped.norm(dim=1, keepdim=True)
    spread = (z @ directions.T).std(dim=0)
    ranges = [(-PCA_RANGE_STDS * float(std), PCA_RANGE_STDS * float(std)) for std in spread]
    total = centred.square().sum()
    explained = [round(float(value) ** 2 / float(total), 5) for value in singular[:components]]
    return directions.float(), ranges, {"layer": layer, "explained_variance_ratio": explained}


# --- the command line -------------------------------------------------------------------------

def state_path(out: Path) -> Path:
    return out.with_name(out.name + ".state")


def read_state(out: Path, resume: bool, method: str = "fit") -> dict[str, Any] | None:
    """The fit to resume, or None for a new one; refuses an --out that already holds walks."""
    path = state_path(out)
    if out.is_dir():
        raise SteerError(f"--out {out} is a folder; give the walk file's name, e.g. {out}/walks.pt.")
    if not resume:
        if out.exists() or path.exists():
            advice = "pass --resume to continue that fit or " if method == "fit" else ""
            raise SteerError(f"{out if out.exists() else path} already exists; {advice}choose "
                             "another --out.")
        return None
    if not path.is_file():
        raise SteerError(f"There is no {path} to resume from; run without --resume to start a fit.")
    state = load_torch_file(path, SteerError)
    if not isinstance(state, dict) or not isinstance(state.get("settings"), dict):
        raise SteerError(f"{path} is not the state of a walk fit.")
    return state


def check_budget(samples: int | None, minutes: float | None) -> None:
    if samples is not None and samples < 1:
        raise SteerError(f"--samples must be a positive number of samples, not {samples}.")
    if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
        raise SteerError(f"--minutes must be a positive number of minutes, not {minutes}.")


def plain(value: Any) -> Any:
    """``value`` with str subclasses (torch's version string) made plain str, which a
    ``weights_only`` load accepts."""
    if isinstance(value, dict):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return str(value) if isinstance(value, str) else value


def generator_record(name: str, generator: Any) -> dict[str, Any]:
    return {"name": name, "weights_sha256": getattr(generator, "weights_sha256", None),
            "latent_dim": generator.latent_dim, "num_classes": generator.num_classes}


def fit_walks(generator: Any, name: str, settings: dict[str, Any], directions: Directions,
              state: dict[str, Any] | None, out: Path, samples: int | None, minutes: float | None,
              eval_samples: int, progress: bool) -> dict[str, Any]:
    device = generator_device(generator)
    render = checked_renderer(float_renderer(generator, name), name, settings["image_size"])
    probe(render, generator, settings, device)  # a generator that cannot be fitted fails here
    fit = WalkFit(render, directions, generator.latent_dim, settings, device)
    if state is not None:
        differences = [f"{key} {state['settings'].get(key)!r} there, {value!r} here"
                       for key, value in settings.items() if state["settings"].get(key) != value]
        if differences:
            raise SteerError(f"{state_path(out)} holds a fit made with other settings "
                             f"({'; '.join(differences)}); resume with the same settings or choose "
                             "another --out.")
        try:
            fit.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise SteerError(f"{state_path(out)} does not fit these walks ({type(error).__name__}: "
                             f"{str(error).strip().splitlines()[0]}).") from None
    make_folder(out.parent)
    train(fit, samples, math.inf if minutes is None else minutes * 60.0, state_path(out), progress)
    evaluation = evaluate(fit, eval_samples)
    return {"method": "fit", "names": directions.names,
            "directions": fit.directions_per_unit(),
            "ranges": [list(directions.ranges[name]) for name in directions.names],
            "transforms": [transform.name for transform in directions.transforms],
            "settings": {**settings, "samples": fit.samples, "seconds": round(fit.seconds, 1),
                         "init": "zeros", "loss": "masked mse"},
            "evaluation": evaluation}


@commands.command()
@click.option("--generator", default=DEFAULT_GENERATOR,
              help="Registered generator (deadleaves, cgan, biggan-deep-128/256/512) or "
                   "package.module:factory.")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="The generator's weights folder (as for python -m generate).")
@click.option("--method", type=click.Choice(METHODS), default="fit",
              help="fit: walks that imitate --transforms; pca: GANSpace principal directions.")
@click.option("--transforms", default=None,
              help=f"Transforms to fit walks for, from color, brightness, contrast, saturation, hue, "
                   f"zoom, shiftx, shifty, rotate [default: {','.join(DEFAULT_TRANSFORMS)}].")
@click.option("--range", "ranges", multiple=True, metavar="NAME=LOW:HIGH",
              help="Range of a direction's amount while fitting (e.g. zoom=-0.5:0.5 or "
                   "color=-0.1:0.1) instead of its default; recorded as the walks' range. Repeatable.")
@click.option("--samples", type=int, default=None,
              help=f"Samples to fit on in all, resumed runs included [default: {DEFAULT_FIT_SAMPLES} "
                   f"for fit unless --minutes is given, {DEFAULT_PCA_SAMPLES} for pca].")
@click.option("--minutes", type=float, default=None,
              help="Fitting time in all, resumed runs included; stops at whichever of --samples "
                   "and --minutes comes first.")
@click.option("--batch-size", type=click.IntRange(1), default=BATCH_SIZE, help="Samples per step.")
@click.option("--lr", type=float, default=LR, help="Adam learning rate.")
@click.option("--components", type=click.IntRange(1), default=DEFAULT_COMPONENTS,
              help="Principal directions to keep (pca).")
@click.option("--eval-samples", type=click.IntRange(1), default=EVAL_SAMPLES,
              help="Held-out samples per transform for the final masked-MSE figures (fit).")
@click.option("--image-size", type=click.IntRange(8, 1024), default=None,
              help=f"Side at which images are compared while fitting [default: the generator's own, "
                   f"at most {MAX_IMAGE_SIZE}].")
@click.option("--truncation", type=float, default=1.0,
              help="Latents are truncated normals in [-2, 2] scaled by this, as in python -m generate.")
@click.option("--classes", default=None,
              help="Classes to sample while fitting: all, imagenet100, a file of indices, or 3,7,207.")
@click.option("--seed", type=seed_range(), default=0, help="Seed of every sample drawn.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              help="Where the generator runs; auto picks CUDA when present.")
@click.option("--threads", type=click.IntRange(1), default=1,
              help="CPU threads for torch: fitting's many small operations run fastest on one (on a "
                   "shared 2-core machine, two made a step 30 times slower).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Walk file to write.")
@click.option("--resume", is_flag=True, help="Continue the fit whose state is OUT.state.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
@reports_errors
def main(generator: str, weights: Path | None, method: str, transforms: str | None,
         ranges: tuple[str, ...], samples: int | None, minutes: float | None, batch_size: int,
         lr: float, components: int, eval_samples: int, image_size: int | None, truncation: float,
         classes: str | None,
         seed: int, device: str, threads: int, out: Path, resume: bool, progress: bool) -> None:
    """Fit latent walks that imitate image transforms (or find principal latent directions) for
    steered views: python -m generate --view-method steer --walks OUT."""
    check_budget(samples, minutes)
    if not (math.isfinite(truncation) and truncation > 0):
        raise SteerError(f"--truncation must be a finite number above 0, not {truncation}.")
    if not (math.isfinite(lr) and lr > 0):
        raise SteerError(f"--lr must be a finite number above 0, not {lr}.")
    if method == "pca" and (transforms is not None or resume or minutes is not None):
        raise SteerError("--method pca takes no --transforms, --minutes or --resume: it runs once "
                         "over --samples latents.")
    chosen = parse_transforms(transforms or ",".join(DEFAULT_TRANSFORMS)) if method == "fit" else []
    names = ([name for transform in chosen for name in transform.parameters] if method == "fit"
             else [f"pc{index}" for index in range(components)])
    bounds = {name: transform.default_range for transform in chosen for name in transform.parameters}
    bounds.update(parse_ranges(ranges, names, "--range"))
    state = read_state(out, resume, method)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:  # the thread count is restored for callers that run this command in their own process
        model = make_generator(generator, GeneratorOptions(
            weights=weights, device=choose_device(device), truncation=truncation,
            resolution=image_size or MAX_IMAGE_SIZE))
        settings = {"generator": generator_record(generator, model), "seed": seed,
                    "truncation": truncation, "batch_size": batch_size,
                    "classes": select_classes(classes, model.num_classes)}
        if method == "fit":
            settings.update(lr=lr, image_size=image_size or min(model.resolution, MAX_IMAGE_SIZE),
                            transforms=[transform.name for transform in chosen],
                            ranges={name: list(bounds[name]) for name in names})
            if samples is None and minutes is None:
                samples = DEFAULT_FIT_SAMPLES
            document = fit_walks(model, generator, settings, Directions(tuple(chosen), bounds), state,
                                 out, samples, minutes, eval_samples, progress)
        else:
            settings.update(samples=samples or DEFAULT_PCA_SAMPLES, components=components)
            found, found_ranges, figures = principal_directions(model, settings,
                                                                generator_device(model), progress)
            document = {"method": "pca", "names": names, "directions": found,
                        "ranges": [list(bounds.get(name, found_bounds))
                                   for name, found_bounds in zip(names, found_ranges)],
                        "transforms": [], "settings": settings, "evaluation": figures}
    finally:
        torch.set_num_threads(threads_before)
    document.update(format=WALKS_FORMAT, version=WALKS_VERSION,
                    generator=generator_record(generator, model),
                    provenance=plain(provenance(["python", "-m", "generate.steer", *sys.argv[1:]])))
    make_folder(out.parent)
    sha = save_walks(out, document)
    click.echo(f"Wrote {len(document['names'])} directions ({', '.join(document['names'])}) to {out} "
               f"(sha256 {sha[:12]}...).")
    if method == "fit":
        click.echo(f"Fitted on {document['settings']['samples']} samples in "
                   f"{document['settings']['seconds'] / 60:.1f} minutes.")
        for line in describe_evaluation(document["evaluation"]):
            click.echo(line)
    else:
        figures = document["evaluation"]
        shares = ", ".join(f"{value:.3f}" for value in figures["explained_variance_ratio"])
        click.echo(f"PCA of {figures['layer']} over {document['settings']['samples']} latents; "
                   f"explained variance per component: {shares}.")


if __name__ == "__main__":
    main()
