"""``python -m generate.fit``: fit the ``cgan`` generator to a labelled ImageFolder.

The recipe of the miniature experiment: hinge loss; Adam, lr 1e-4 for G and 4e-4 for D, betas
(0, 0.9); latents drawn as the generation job draws them (standard normals truncated to [-2, 2]);
a mode-seeking (MSGAN) term, without which G ignores its latent and draws one image per class;
an exponential moving average of G is what gets saved, with its batch-norm statistics recomputed
over fresh samples.

The MSGAN weight defaults to 0.2, not the recipe's 1: with these networks, weight 1 made two images
of one class differ more than two real ones do (diversity ratio 1.18) in saturated black and white,
and a pixel kNN recognised 35-44% of them after 800-2400 steps; weight 0.2 gave a ratio of 0.87 and
48.7% after 1200 steps, and nearby latents gave nearby images (silhouettes with a grey level per
image, 8,000 images; on the present silhouettes, placed more widely, 0.87 and 33.0%).

The out folder ends up holding ``config.json`` and ``generator.pt`` (what ``--generator cgan
--weights DIR`` loads), ``fit-report.json`` (quality figures) and ``training-state.pt`` (what
``--resume`` continues from).

    python -m generate.fit --data data/silhouettes/train --out weights/silhouettes --minutes 12
"""

from __future__ import annotations

import copy
import io
import math
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import click
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn
from tqdm import tqdm

from common import commands
from common.numbers import FiniteFloatRange, seed_range
from common.console import reports_errors
from common.errors import UserError
from common.files import load_torch_file, make_folder, write_bytes_atomic, write_json_atomic
from common.provenance import provenance
from generate.render import choose_device
from generate.generators.base import GeneratorOptions
from generate.generators.cgan import (CONFIG_FILE, IMAGE_SIZES, WEIGHTS_FILE, Architecture,
                                      CGANGenerator, ConditionalGenerator, ProjectionDiscriminator,
                                      config_document, make_cgan)

STATE_FILE = "training-state.pt"
REPORT_FILE = "fit-report.json"
DEFAULT_STEPS = 2000
LR_GENERATOR, LR_DISCRIMINATOR, BETAS = 1e-4, 4e-4, (0.0, 0.9)
EMA_DECAY = 0.999
DEFAULT_MSGAN_WEIGHT = 0.2
MSGAN_EPSILON = 1e-5
LATENT_BOUND = 2.0  # the generation job's latents are standard normals truncated to [-2, 2]
CHECKPOINT_SECONDS = 120.0
LOG_EVERY = 25  # steps between loss read-outs (each one waits for the device)
BN_BATCHES = 32  # batches of fresh samples over which the saved generator's BN statistics are taken
REPORT_PAIRS_PER_CLASS = 100
KNN_K = 20
HELDOUT_FRACTION, HELDOUT_LIMIT, REFERENCE_LIMIT = 0.1, 2000, 20000
RENDER_BATCH = 256
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                            ".ppm"})


class FitError(UserError):
    """Input that cannot be fitted or an out folder that cannot be used; one sentence."""


# --- data -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabelledImages:
    images: torch.Tensor  # uint8 [N, 3, S, S]
    labels: torch.Tensor  # int64 [N]
    class_names: list[str]

    def to(self, device: torch.device) -> "LabelledImages":
        return LabelledImages(self.images.to(device), self.labels.to(device), self.class_names)


def load_image_folder(folder: Path, image_size: int) -> LabelledImages:
    """FOLDER/CLASS/.../IMAGE, classes in sorted order, each image centre-cropped and resized."""
    if not folder.is_dir():
        raise FitError(f"--data {folder} is not a folder.")
    class_folders = sorted(path for path in folder.iterdir()
                           if path.is_dir() and not path.name.startswith("."))
    if not class_folders:
        raise FitError(f"--data {folder} holds no class folders; lay it out as "
                       f"{folder}/CLASS/IMAGE.")
    arrays, labels, skipped = [], [], 0
    for label, class_folder in enumerate(class_folders):
        read = [_read_image(path, image_size) for path in sorted(class_folder.rglob("*"))
                if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()]
        kept = [array for array in read if array is not None]
        if not kept:
            raise FitError(f"The class folder {class_folder} holds no readable image.")
        skipped += len(read) - len(kept)
        arrays += kept
        labels += [label] * len(kept)
    if skipped:
        click.echo(f"Skipped {skipped} unreadable image files in {folder}.", err=True)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return LabelledImages(images, torch.tensor(labels), [path.name for path in class_folders])


def _read_image(path: Path, size: int) -> np.ndarray | None:
    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.fit(image.convert("RGB"), (size, size),
                                           Image.Resampling.BICUBIC))
    except (OSError, ValueError, Image.DecompressionBombError):  # not an image, or a damaged one
        return None


# --- training ---------------------------------------------------------------------------------

def sample_latents(count: int, dim: int, sampler: torch.Generator) -> torch.Tensor:
    return nn.init.trunc_normal_(torch.empty(count, dim), 0.0, 1.0, -LATENT_BOUND, LATENT_BOUND,
                                 generator=sampler)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No parameter gradients for ``module`` (G's step needs D's input gradient only)."""
    parameters = list(module.parameters())
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in parameters:
            parameter.requires_grad_(True)


class GANTraining:
    """G, D, the EMA of G, their optimisers and the sampler of one fit; resumable via state_dict."""

    def __init__(self, architecture: Architecture, settings: dict[str, Any], device: torch.device):
        torch.manual_seed(settings["seed"])
        self.architecture = architecture
        self.settings = settings
        self.device = device
        self.generator = ConditionalGenerator(architecture).to(device)
        self.discriminator = ProjectionDiscriminator(architecture).to(device)
        self.ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), LR_GENERATOR, betas=BETAS)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), LR_DISCRIMINATOR,
                                            betas=BETAS)
        self.sampler = torch.Generator().manual_seed(settings["seed"])
        self.step = 0
        self.seconds = 0.0
        # Loading a state copies into these tensors, so the lists stay valid across a resume.
        self._ema_parameters = list(self.ema.parameters())
        self._parameters = list(self.generator.parameters())

    def train_step(self, data: LabelledImages) -> tuple[torch.Tensor, torch.Tensor]:
        """One D step and one G step on a fresh batch; returns both losses (not yet synchronised)."""
        batch, half = self.settings["batch_size"], self.settings["batch_size"] // 2
        index = torch.randint(len(data.labels), (batch,), generator=self.sampler)
        pair_classes = torch.randint(self.architecture.num_classes, (half,), generator=self.sampler)
        latents = sample_latents(batch, self.architecture.latent_dim, self.sampler).to(self.device)
        classes = pair_classes.repeat(2).to(self.device)  # sample i and i + half share a class
        index = index.to(self.device)
        real = data.images[index].float().div_(127.5).sub_(1.0)

        fake = self.generator(latents, classes)
        scores = self.discriminator(torch.cat([real, fake.detach()]),
                                    torch.cat([data.labels[index], classes]))
        loss_d = F.relu(1.0 - scores[:batch]).mean() + F.relu(1.0 + scores[batch:]).mean()
        self.optimizer_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.optimizer_d.step()

        with frozen(self.discriminator):
            loss_g = -self.discriminator(fake, classes).mean()
            # Mode seeking: two latents of one class must give images as far apart as the latents.
            image_gap = (fake[:half] - fake[half:]).abs().mean()
            latent_gap = (latents[:half] - latents[half:]).abs().mean()
            loss_g = loss_g + self.settings["msgan_weight"] / (image_gap / latent_gap + MSGAN_EPSILON)
            self.optimizer_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.optimizer_g.step()
        self._update_ema()
        self.step += 1
        return loss_d.detach(), loss_g.detach()

    def _update_ema(self) -> None:
        # Warm-up of the decay so that the average is not dominated by the random initial weights.
        decay = min(EMA_DECAY, (1.0 + self.step) / (10.0 + self.step))
        torch._foreach_lerp_(self._ema_parameters, self._parameters, 1.0 - decay)

    def rendering_generator(self) -> ConditionalGenerator:
        """The EMA generator with batch-norm statistics recomputed over fresh samples (from a
        sampler of their own, so the saved weights depend on the trained state alone)."""
        network = copy.deepcopy(self.ema)
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # a plain average over all the batches below
        sampler = torch.Generator().manual_seed(self.settings["seed"])
        batch = self.settings["batch_size"]
        network.train()
        with torch.no_grad():
            for _ in range(BN_BATCHES):
                classes = torch.randint(self.architecture.num_classes, (batch,), generator=sampler)
                latents = sample_latents(batch, self.architecture.latent_dim, sampler)
                network(latents.to(self.device), classes.to(self.device))
        return network.eval()

    def state_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "step": self.step, "seconds": self.seconds,
                "generator": self.generator.state_dict(),
                "discriminator": self.discriminator.state_dict(), "ema": self.ema.state_dict(),
                "optimizer_g": self.optimizer_g.state_dict(),
                "optimizer_d": self.optimizer_d.state_dict(),
                "sampler": self.sampler.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        self.sampler.set_state(state["sampler"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])


def save_torch_atomic(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def train(training: GANTraining, data: LabelledImages, steps: int | None, seconds: float,
          out: Path, progress: bool) -> None:
    """Train until ``steps`` steps or ``seconds`` of training in all (resumed runs included)."""
    started, seconds_before = time.monotonic(), training.seconds
    last_save = started
    with tqdm(total=steps, initial=training.step, unit="step", disable=not progress,
              dynamic_ncols=True) as bar:
        while (steps is None or training.step < steps) and training.seconds < seconds:
            loss_d, loss_g = training.train_step(data)
            now = time.monotonic()
            training.seconds = seconds_before + now - started
            bar.update(1)
            if progress and training.step % LOG_EVERY == 0:
                bar.set_postfix(loss_d=f"{loss_d.item():.3f}", loss_g=f"{loss_g.item():.3f}")
            if now - last_save >= CHECKPOINT_SECONDS:
                save_torch_atomic(out / STATE_FILE, training.state_dict())
                last_save = now
    save_torch_atomic(out / STATE_FILE, training.state_dict())


# --- the quality report -----------------------------------------------------------------------

def render(generator: CGANGenerator, latents: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    return torch.cat([generator(z, c).cpu() for z, c in zip(latents.split(RENDER_BATCH),
                                                            classes.split(RENDER_BATCH))])


def mean_l1(first: torch.Tensor, second: torch.Tensor) -> float:
    """Mean absolute pixel difference of uint8 images, on a 0-1 scale."""
    return (first.float() - second.float()).abs().mean().item() / 255.0


def real_pairs(data: LabelledImages, pairs_per_class: int,
               rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs of two different real images of one class, for each class with two or more."""
    firsts, seconds = [], []
    for label in range(len(data.class_names)):
        members = (data.labels == label).nonzero().squeeze(1).numpy()
        if len(members) < 2:
            continue
        first = rng.integers(len(members), size=pairs_per_class)
        second = (first + rng.integers(1, len(members), size=pairs_per_class)) % len(members)
        firsts.append(members[first])
        seconds.append(members[second])
    none = [np.empty(0, dtype=np.int64)]
    return (torch.from_numpy(np.concatenate(firsts or none)),
            torch.from_numpy(np.concatenate(seconds or none)))


def knn_predict(reference: torch.Tensor, reference_labels: torch.Tensor, queries: torch.Tensor,
                k: int, num_classes: int) -> torch.Tensor:
    """Majority vote of the k nearest reference images in pixel space (ties: the lower class)."""
    flat_reference = reference.flatten(1).float()
    predictions = []
    for chunk in queries.flatten(1).float().split(RENDER_BATCH):
        nearest = torch.cdist(chunk, flat_reference).topk(k, largest=False).indices
        votes = F.one_hot(reference_labels[nearest], num_classes).sum(dim=1)
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)


def diversity(anchors: torch.Tensor, partners: torch.Tensor, data: LabelledImages,
              rng: np.random.Generator) -> dict[str, Any]:
    """Mean L1 of same-class generated pairs against that of same-class real pairs."""
    generated = mean_l1(anchors, partners)
    firsts, seconds = real_pairs(data, REPORT_PAIRS_PER_CLASS, rng)
    real = mean_l1(data.images[firsts], data.images[seconds]) if len(firsts) else None
    return {"generated_same_class_l1": round(generated, 4),
            "real_same_class_l1": None if real is None else round(real, 4),
            "ratio": round(generated / real, 3) if real else None,
            "pairs_per_class": REPORT_PAIRS_PER_CLASS}


def recognisability(anchors: torch.Tensor, classes: torch.Tensor, data: LabelledImages,
                    rng: np.random.Generator) -> dict[str, Any]:
    """How often a pixel kNN fitted on real images names the class of generated ones, and, for
    reference, of real images held out of its fit."""
    order = torch.from_numpy(rng.permutation(len(data.labels)))
    heldout_count = min(int(len(order) * HELDOUT_FRACTION), HELDOUT_LIMIT)
    heldout, reference = order[:heldout_count], order[heldout_count:heldout_count + REFERENCE_LIMIT]
    k = min(KNN_K, len(reference))

    def percent_correct(queries: torch.Tensor, labels: torch.Tensor) -> float | None:
        if not len(queries):
            return None
        predicted = knn_predict(data.images[reference], data.labels[reference], queries, k,
                                len(data.class_names))
        return round(100.0 * (predicted == labels).float().mean().item(), 1)

    return {"k": k, "generated_correct_percent": percent_correct(anchors, classes),
            "real_heldout_correct_percent": percent_correct(data.images[heldout],
                                                            data.labels[heldout]),
            "generated_images": len(anchors), "heldout_images": heldout_count,
            "reference_images": len(reference)}


def fit_report(generator: CGANGenerator, data: LabelledImages, seed: int) -> dict[str, Any]:
    """The quality figures of a fitted generator, from samples drawn with ``seed``."""
    sampler = torch.Generator().manual_seed(seed)
    classes = torch.arange(len(data.class_names)).repeat_interleave(REPORT_PAIRS_PER_CLASS)
    anchors, partners = (render(generator, sample_latents(len(classes), generator.latent_dim,
                                                          sampler), classes) for _ in range(2))
    rng = np.random.default_rng(seed)
    return {"diversity": diversity(anchors, partners, data, rng),
            "recognisability": recognisability(anchors, classes, data, rng)}


def describe_report(report: dict[str, Any]) -> str:
    diversity, knn = report["diversity"], report["recognisability"]
    return (f"Diversity: two generated images of one class differ by "
            f"{diversity['generated_same_class_l1']} mean L1, two real ones by "
            f"{diversity['real_same_class_l1']} (ratio {diversity['ratio']}).\n"
            f"Recognisability: a pixel {knn['k']}-NN fitted on real images labels "
            f"{knn['generated_correct_percent']}% of generated images correctly "
            f"({knn['real_heldout_correct_percent']}% of held-out real images).")


# --- the command line -------------------------------------------------------------------------

def fit_settings(data: Path, images: LabelledImages, architecture: Architecture, seed: int,
                 batch_size: int, msgan_weight: float) -> dict[str, Any]:
    """Everything that decides a fit's course; a resumed fit must match it."""
    return {"data": str(data.resolve()), "images": len(images.labels),
            "class_names": images.class_names, **architecture.as_dict(), "seed": seed,
            "batch_size": batch_size, "lr_generator": LR_GENERATOR,
            "lr_discriminator": LR_DISCRIMINATOR, "betas": list(BETAS), "ema_decay": EMA_DECAY,
            "msgan_weight": msgan_weight, "latent_bound": LATENT_BOUND}


def check_options(image_size: int, steps: int | None, minutes: float | None,
                  batch_size: int) -> None:
    if image_size not in IMAGE_SIZES:
        raise FitError(f"--image-size must be 32 or 64, not {image_size}.")
    if steps is not None and steps < 1:
        raise FitError(f"--steps must be a positive number of steps, not {steps}.")
    if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
        raise FitError(f"--minutes must be a positive, finite number of minutes, not {minutes}.")
    if batch_size < 2 or batch_size % 2:
        raise FitError(f"--batch-size must be an even number of 2 or more (latents come in "
                       f"same-class pairs), not {batch_size}.")


def read_state(out: Path, resume: bool) -> dict[str, Any] | None:
    """The training state to resume from, or None for a new fit; refuses folders that do not fit."""
    if out.exists() and not out.is_dir():
        raise FitError(f"--out {out} exists and is not a folder.")
    path = out / STATE_FILE
    if not resume:
        if path.exists() or (out / CONFIG_FILE).exists():
            raise FitError(f"{out} already holds a fit; pass --resume to continue it or choose "
                           "another --out.")
        if out.exists() and any(out.iterdir()):
            raise FitError(f"{out} is not empty; choose a new or empty folder for the fit.")
        return None
    if not path.is_file():
        raise FitError(f"{out} holds no {STATE_FILE} to resume from; run without --resume to "
                       "start a fit.")
    state = load_torch_file(path, FitError)
    if not isinstance(state, dict) or not isinstance(state.get("settings"), dict):
        raise FitError(f"{path} is not a genviews training state.")
    return state


def check_same_settings(recorded: dict[str, Any], wanted: dict[str, Any], out: Path) -> None:
    differences = [f"{key} {recorded.get(key)!r} there, {wanted[key]!r} here" for key in wanted
                   if recorded.get(key) != wanted[key]]
    if differences:
        raise FitError(f"{out} holds a fit made with other settings ({'; '.join(differences)}); "
                       "resume with the same settings or choose another --out.")


def save_generator(out: Path, network: ConditionalGenerator, training: GANTraining) -> None:
    """generator.pt (tensors only), then the config.json that makes the folder loadable."""
    save_torch_atomic(out / WEIGHTS_FILE, {name: tensor.detach().cpu()
                                           for name, tensor in network.state_dict().items()})
    recorded_elsewhere = {"class_names", *training.architecture.as_dict()}  # the config's own fields
    fit = {**{key: value for key, value in training.settings.items()
              if key not in recorded_elsewhere},
           "steps": training.step, "train_seconds": round(training.seconds, 1)}
    write_json_atomic(out / CONFIG_FILE, config_document(
        training.architecture, training.settings["class_names"],
        {"fit": fit, "provenance": provenance(["python", "-m", "generate.fit", *sys.argv[1:]])}))


@commands.command()
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Labelled ImageFolder: DATA/CLASS/IMAGE.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Weights folder to write (config.json, generator.pt, fit-report.json).")
@click.option("--image-size", type=int, default=32, help="Image side: 32 or 64 pixels.")
@click.option("--steps", type=int, default=None,
              help=f"Training steps in all [default: {DEFAULT_STEPS}, or none with --minutes].")
@click.option("--minutes", type=float, default=None,
              help="Training time in all, resumed runs included; stops at whichever of "
                   "--steps and --minutes comes first.")
@click.option("--seed", type=seed_range(), default=0, help="Seed of the initial weights and every sample.")
@click.option("--batch-size", type=int, default=64, help="Real and generated images per step.")
@click.option("--g-width", type=click.IntRange(1), default=40, help="Generator channel width.")
@click.option("--d-width", type=click.IntRange(1), default=48, help="Discriminator channel width.")
@click.option("--msgan-weight", type=FiniteFloatRange(0, 100), default=DEFAULT_MSGAN_WEIGHT,
              help="Weight of the mode-seeking term that makes G use its latent (0: none).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              help="Where to train; auto picks CUDA when present.")
@click.option("--resume", is_flag=True, help=f"Continue the fit in --out from its {STATE_FILE}.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
@reports_errors
def main(data: Path, out: Path, image_size: int, steps: int | None, minutes: float | None,
         seed: int, batch_size: int, g_width: int, d_width: int, msgan_weight: float, device: str,
         resume: bool, progress: bool) -> None:
    """Fit a small class-conditional GAN (the cgan generator) to a labelled ImageFolder."""
    check_options(image_size, steps, minutes, batch_size)
    if steps is None and minutes is None:
        steps = DEFAULT_STEPS
    state = read_state(out, resume)
    torch_device = choose_device(device)
    images = load_image_folder(data, image_size)
    architecture = Architecture(num_classes=len(images.class_names), image_size=image_size,
                                g_width=g_width, d_width=d_width)
    training = GANTraining(architecture, fit_settings(data, images, architecture, seed, batch_size,
                                                      msgan_weight), torch_device)
    if state is not None:
        check_same_settings(state["settings"], training.settings, out)
        try:
            training.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise FitError(f"{out / STATE_FILE} does not fit these networks ({type(error).__name__}: "
                           f"{str(error).strip().splitlines()[0]}).") from None
    make_folder(out)
    train(training, images.to(torch_device), steps, math.inf if minutes is None else minutes * 60,
          out, progress)
    save_generator(out, training.rendering_generator(), training)
    generator = make_cgan(GeneratorOptions(weights=out, device=torch_device, truncation=1.0))
    report = {"steps": training.step, "train_seconds": round(training.seconds, 1),
              **fit_report(generator, images, seed)}
    write_json_atomic(out / REPORT_FILE, report)
    click.echo(f"Fitted {out} in {training.step} steps ({training.seconds / 60:.1f} minutes).")
    click.echo(describe_report(report))


if __name__ == "__main__":
    main()
