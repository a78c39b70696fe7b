"""Diffusion models through ``diffusers``: class-conditional DiT and any diffusers pipeline folder.

The latent is the sampler's initial noise, flattened (4x32x32 = 4096 numbers for DiT-256): drawn
from (seed, anchor) like every latent, so a set stays deterministic, resumable and partitionable.
The sampler is DDIM with eta 0, which draws nothing after the initial noise: an image is a function
of its latent and class alone. Whatever scheduler a folder names, its noise schedule drives DDIM.

Weights load offline from ``--weights DIR`` in the diffusers folder layout (``model_index.json`` and
one subfolder per component, as ``save_pretrained`` writes it), from safetensors only: nothing is
unpickled and nothing is downloaded. In fp32 on the CPU the networks compute in float64, so that
the batch size cannot change a byte (as ``cgan`` does).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from common.files import sha256_file
from generate.choices import MAX_SAMPLING_STEPS as MAX_STEPS
from generate.classes import imagenet_class_names
from generate.generators.base import GeneratorError, GeneratorOptions
from generate.generators.runtime import FULL_PRECISION, autocast

# Registered DiT names and the Hugging Face repositories their folders are saved from.
MODELS = {"dit-xl-2-256": "facebook/DiT-XL-2-256", "dit-xl-2-512": "facebook/DiT-XL-2-512"}
GENERIC = "diffusers"  # any unconditional or class-conditional pipeline folder
NAMES = (*MODELS, GENERIC)
DEFAULT_STEPS = 50
PROBE_STEPS = 2  # sampling steps a render takes while --batch-size auto times batch sizes
DIT_GUIDANCE = 1.5  # the classifier-free guidance scale of the DiT paper's best FID
DENOISERS = ("transformer", "unet")
DRIVEN_COMPONENTS = (*DENOISERS, "vae", "scheduler")
INDEX_FILE = "model_index.json"


@dataclass(frozen=True)
class Pipeline:
    """The loaded components of a folder and what they say about the images they make."""

    denoiser: torch.nn.Module
    vae: torch.nn.Module | None  # None: the denoiser works in pixel space
    scheduler: Any  # a diffusers DDIMScheduler
    num_classes: int
    null_class: int | None  # the class index that means "no class" (classifier-free guidance)
    weights_sha256: str


class DiffusionGenerator:
    """A diffusion pipeline sampled with deterministic DDIM from latents that are its initial noise."""

    def __init__(self, name: str, pipeline: Pipeline, options: GeneratorOptions):
        if options.compile or options.channels_last:  # refused rather than ignored
            raise GeneratorError("Diffusion generators run without --compile and --channels-last (they speed up the "
                                 "GANs' convolutions); drop them.")
        config = pipeline.denoiser.config
        self.name = name
        self.pipeline = pipeline
        self.precision = options.precision or FULL_PRECISION
        self.device = options.device
        self.steps = sampling_steps(options.sampling_steps)
        self.guidance = guidance_scale(options.guidance, pipeline.null_class is not None)
        self.weights_sha256 = pipeline.weights_sha256
        self.num_classes = pipeline.num_classes
        self.class_names = (imagenet_class_names() if self.num_classes == 1000
                            else [str(index) for index in range(self.num_classes)])
        self.noise_shape = (int(config.in_channels), int(config.sample_size), int(config.sample_size))
        self.latent_dim = math.prod(self.noise_shape)
        upscale = 2 ** (len(pipeline.vae.config.block_out_channels) - 1) if pipeline.vae is not None else 1
        self.resolution = int(config.sample_size) * upscale
        self.sampler = {"name": "ddim", "eta": 0.0, "steps": self.steps, "guidance": self.guidance}
        # fp32 on the CPU computes in float64: no batch size then changes a byte.
        self.dtype = torch.float64 if self.precision == FULL_PRECISION and self.device.type == "cpu" \
            else torch.float32
        for network in (pipeline.denoiser, pipeline.vae):
            if network is not None:
                network.to(self.device, self.dtype).eval()
        pipeline.scheduler.set_timesteps(self.steps)
        self.timesteps = pipeline.scheduler.timesteps  # on the host: the scheduler indexes its schedule with them

    @contextlib.contextmanager
    def timing_probe(self) -> Iterator[None]:
        """Renders take the schedule's last PROBE_STEPS steps only, while ``--batch-size auto`` times
        batch sizes: each step holds the memory of any other and costs about as much, so sizes rank as
        with the whole schedule, in a fraction of its time (50 steps of DiT-XL/2 per timed batch would
        make the search take minutes)."""
        whole = self.timesteps
        self.timesteps = whole[-PROBE_STEPS:]
        try:
            yield
        finally:
            self.timesteps = whole

    @torch.inference_mode()
    def __call__(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        with autocast(self.precision, self.device):
            return self.to_images(self.denoise(self._noise(latents), self._labels(classes), self.timesteps))

    @torch.inference_mode()
    def renoise(self, latents: torch.Tensor, classes: torch.Tensor | None, views: int,
                strength: float) -> torch.Tensor:
        """uint8 images of whole groups of ``views`` rows each (renoise views): see ``renoised_latents``."""
        with autocast(self.precision, self.device):
            return self.to_images(self.renoised_latents(latents, classes, views, strength))

    @torch.inference_mode()
    def renoised_latents(self, latents: torch.Tensor, classes: torch.Tensor | None, views: int,
                         strength: float) -> torch.Tensor:
        """The sampler's final latents [groups * views, C, H, W] of whole groups (SDEdit): each group's
        first row is the anchor's initial noise, sampled as usual; each other row is the noise that
        re-noises the anchor's denoised latent to the level of the first of the sampler's last
        ``renoise_steps`` steps, which then denoise it again."""
        with autocast(self.precision, self.device):
            noise = self._noise(latents).unflatten(0, (-1, views))
            labels = self._labels(classes)
            labels = labels.unflatten(0, (-1, views)) if labels is not None else None
            anchors = self.denoise(noise[:, 0], labels[:, 0] if labels is not None else None, self.timesteps)
            kept = self.timesteps[len(self.timesteps) - renoise_steps(len(self.timesteps), strength):]
            alpha_bar = float(self.pipeline.scheduler.alphas_cumprod[kept[0]])
            noisy = alpha_bar ** 0.5 * anchors.unsqueeze(1) + (1.0 - alpha_bar) ** 0.5 * noise[:, 1:]
            denoised = self.denoise(noisy.flatten(0, 1), labels[:, 1:].flatten() if labels is not None else None,
                                    kept)
            return torch.cat([anchors.unsqueeze(1), denoised.unflatten(0, (-1, views - 1))], 1).flatten(0, 1)

    def denoise(self, noise: torch.Tensor, labels: torch.Tensor | None, timesteps: torch.Tensor) -> torch.Tensor:
        """DDIM (eta 0) from ``noise`` at the level of ``timesteps[0]`` through ``timesteps``."""
        scheduler = self.pipeline.scheduler
        for step in timesteps:
            eps = self.predict_noise(noise, step, labels)
            noise = scheduler.step(eps.to(self.dtype), step, noise, eta=0.0).prev_sample
        return noise

    def to_images(self, latents: torch.Tensor) -> torch.Tensor:
        return ((self.decode(latents).float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)

    def _noise(self, latents: torch.Tensor) -> torch.Tensor:
        return latents.to(self.device, self.dtype).reshape(-1, *self.noise_shape)

    def _labels(self, classes: torch.Tensor | None) -> torch.Tensor | None:
        return classes.to(self.device) if classes is not None else None

    def predict_noise(self, noise: torch.Tensor, step: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        guided = labels is not None and self.guidance != 1.0
        if guided:  # the class and the null class in one batch, then mixed as the guidance scale says
            noise = torch.cat([noise, noise])
            labels = torch.cat([labels, torch.full_like(labels, self.pipeline.null_class)])
        # Filled on the device from a host number: a copy of the host tensor would wait for the GPU.
        timesteps = torch.full((len(noise),), int(step), device=self.device)
        # A learned-variance denoiser (DiT) returns the noise, then the variance: keep the noise.
        eps = self.pipeline.denoiser(noise, timesteps, class_labels=labels).sample[:, :self.noise_shape[0]]
        if not guided:
            return eps
        conditional, unconditional = eps.chunk(2)
        return unconditional + self.guidance * (conditional - unconditional)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.pipeline.vae
        if vae is None:
            return latents
        return vae.decode(latents / vae.config.get("scaling_factor", 1.0)).sample


def renoise_steps(steps: int, strength: float) -> int:
    """How many of the sampler's last steps denoise a renoise view: strength * steps, rounded, at least one."""
    return max(1, math.floor(strength * steps + 0.5))


def sampling_steps(steps: int | None) -> int:
    steps = DEFAULT_STEPS if steps is None else steps
    if not 1 <= steps <= MAX_STEPS:
        raise GeneratorError(f"--sampling-steps must lie in 1..{MAX_STEPS}, not {steps}.")
    return steps


def guidance_scale(guidance: float | None, has_null_class: bool) -> float:
    """The classifier-free guidance scale: the DiT paper's by default where the model has a null class."""
    if guidance is None:
        return DIT_GUIDANCE if has_null_class else 1.0
    if not math.isfinite(guidance) or guidance < 1.0:
        raise GeneratorError(f"--guidance must be a finite number of at least 1 (1: no guidance), not {guidance}.")
    if guidance != 1.0 and not has_null_class:
        raise GeneratorError(f"--guidance {guidance:g} needs a class-conditional model with a null class "
                             "(as DiT has); this one has none, so drop --guidance.")
    return float(guidance)


def factory(name: str) -> Callable[[GeneratorOptions], DiffusionGenerator]:
    return functools.partial(make_diffusion, name)


def make_diffusion(name: str, options: GeneratorOptions) -> DiffusionGenerator:
    """The DiT ``name`` of MODELS, or with ``GENERIC`` whatever pipeline the weights folder holds."""
    diffusers = _import_package()
    advice = (f"save {MODELS[name]} there with DiTPipeline.from_pretrained({MODELS[name]!r})"
              ".save_pretrained(DIR) on a machine that reaches the Hugging Face hub" if name in MODELS
              else "save a pipeline there with save_pretrained(DIR)")
    if options.weights is None:
        raise GeneratorError(f"The {name} generator needs --weights DIR, a diffusers pipeline folder; {advice}.")
    folder = Path(options.weights)
    index = _read_index(folder, advice)
    if name in MODELS:  # DiT is read as DiT whatever class names the folder's index uses
        index = {**index, "transformer": ["diffusers", "DiTTransformer2DModel"],
                 "vae": ["diffusers", "AutoencoderKL"]}
    pipeline = _load_pipeline(diffusers, folder, index, advice)
    return DiffusionGenerator(name, pipeline, options)


def _import_package():
    try:
        import diffusers
    except ImportError as error:
        raise GeneratorError(f"Diffusion generators need the package diffusers ({error}); pip install it.") from None
    diffusers.utils.logging.set_verbosity_error()  # its warnings on ignored config keys are not the user's
    return diffusers


def _read_index(folder: Path, advice: str) -> dict[str, Any]:
    """The components ``model_index.json`` names, refusing folders genviews cannot drive."""
    if not folder.is_dir():
        raise GeneratorError(f"The weights folder {folder} does not exist; {advice}.")
    path = folder / INDEX_FILE
    if not path.is_file():
        raise GeneratorError(f"The weights folder {folder} has no {INDEX_FILE}, so it is not a diffusers "
                             f"pipeline folder; {advice}.")
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GeneratorError(f"Cannot read {path} ({error}).") from None
    if not isinstance(document, dict):
        raise GeneratorError(f"{path} is not a JSON object of pipeline components.")
    components = {key: value for key, value in document.items()
                  if not key.startswith("_") and isinstance(value, list) and len(value) == 2
                  and value[0] is not None}
    foreign = sorted(set(components) - set(DRIVEN_COMPONENTS))
    if foreign:
        raise GeneratorError(f"The pipeline in {folder} has {', '.join(foreign)}; genviews drives only "
                             "unconditional and class-conditional pipelines (a denoiser, a VAE and a scheduler).")
    denoisers = [name for name in DENOISERS if name in components]
    if len(denoisers) != 1 or "scheduler" not in components:
        raise GeneratorError(f"The pipeline in {folder} must name one denoiser ({' or '.join(DENOISERS)}) "
                             f"and a scheduler in {INDEX_FILE}.")
    return components


def _load_pipeline(diffusers, folder: Path, index: dict[str, Any], advice: str) -> Pipeline:
    denoiser_name = next(name for name in DENOISERS if name in index)
    denoiser = _load_component(diffusers, folder, denoiser_name, index[denoiser_name][1], advice)
    vae = _load_component(diffusers, folder, "vae", index["vae"][1], advice) if "vae" in index else None
    if vae is None and int(denoiser.config.in_channels) != 3:
        raise GeneratorError(f"The pipeline in {folder} has no vae, but its {denoiser_name} works on "
                             f"{denoiser.config.in_channels}-channel latents, not on images; {advice}.")
    try:
        scheduler = diffusers.DDIMScheduler.from_config(
            diffusers.DDIMScheduler.load_config(folder / "scheduler", local_files_only=True))
    except Exception as error:  # diffusers raises OSError, ValueError or its own errors
        raise GeneratorError(f"Cannot read the scheduler of {folder} ({type(error).__name__}); {advice}.") from None
    return assemble(denoiser, vae, scheduler, _folder_sha256(folder, index))


def assemble(denoiser: torch.nn.Module, vae: torch.nn.Module | None, scheduler: Any, weights_sha256: str) -> Pipeline:
    """A Pipeline of loaded components, with the classes its denoiser embeds."""
    # DiT embeds num_embeds_ada_norm classes plus a null one; a UNet embeds num_class_embeds, no null.
    dit_classes = denoiser.config.get("num_embeds_ada_norm")
    num_classes = int(dit_classes or denoiser.config.get("num_class_embeds") or 0)
    return Pipeline(denoiser=denoiser, vae=vae, scheduler=scheduler, num_classes=num_classes,
                    null_class=num_classes if dit_classes else None, weights_sha256=weights_sha256)


def _load_component(diffusers, folder: Path, name: str, class_name: str, advice: str) -> torch.nn.Module:
    if not (folder / name).is_dir():
        raise GeneratorError(f"The pipeline folder {folder} lacks its {name} component; {advice}.")
    model_class = getattr(diffusers, class_name, None) if isinstance(class_name, str) else None
    if not isinstance(model_class, type) or not issubclass(model_class, diffusers.ModelMixin):
        raise GeneratorError(f"The {name} of {folder} is a {class_name}, not a diffusers model.")
    try:  # safetensors only: nothing is unpickled
        return model_class.from_pretrained(folder / name, local_files_only=True, use_safetensors=True)
    except Exception as error:  # missing files, bad configs and shape mismatches raise many types
        first_line = (str(error).strip().splitlines() or [""])[0].rstrip(".")
        raise GeneratorError(f"Cannot load the {name} of {folder} as {class_name} ({type(error).__name__}: "
                             f"{first_line}); {advice}.") from None


def _folder_sha256(folder: Path, index: dict[str, Any]) -> str:
    """One sha256 over the configs and weights of the components used, each named by its path."""
    digest = hashlib.sha256()
    for name in sorted(index):
        for path in sorted((folder / name).rglob("*")):
            if path.is_file() and path.suffix in (".json", ".safetensors"):
                digest.update(f"{path.relative_to(folder).as_posix()}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()
