"""Training options: one set of click flags, optionally filled from a YAML file (flags win)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Collection

import click

from common.errors import UserError
from common.numbers import FiniteFloatRange, WholeNumberRange, seed_range
from common.yaml_files import YamlFileError, read_yaml
from shards.cli import allow_pipe_option
from train.choices import (BACKBONE_NAMES, OPTIMIZERS, TIMM_PREFIX, WARMUP_SYNTAX, ModelConfigError,
                           OptimizerConfigError, Warmup, check_backbone, parse_warmup)

METHODS = ("simclr", "supcon", "multipos")
DEFAULT_EPOCHS = 100
DEFAULT_WARMUP = "0.05"
# Bounds far above any useful run, so that a typo is refused before it becomes a huge allocation.
MAX_CROP_SIZE = 2048
MAX_PROJECTION_DIM = 16384
# Options that may change between a run and its --resume without changing what is trained.
# gpu_augment is one: it draws the same augmentation parameters from the same seed and changes only
# where views are decoded and resampled (pixels within 1 level of 255 on a CPU, a few on CUDA), as
# a machine with another device might; so a run may resume with or without it.
OPERATIONAL = frozenset({"config", "resume", "workers", "gpu_augment", "log_every", "save_every",
                         "save_every_steps", "out", "progress", "skip_corrupt", "allow_pipe"})


class OptionsError(UserError):
    """Options that contradict each other; the message is one sentence."""


class WarmupType(click.ParamType):
    """``--warmup``: a fraction of the run, ``Nsteps`` or ``Nepochs`` (see train.optim.parse_warmup)."""

    name = "FRACTION|Nsteps|Nepochs"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Warmup:
        if isinstance(value, Warmup):
            return value
        try:
            return parse_warmup(value)
        except OptimizerConfigError as error:
            self.fail(str(error), param, ctx)


class BackboneType(click.ParamType):
    """``--backbone``: one of BACKBONE_NAMES, or ``timm:NAME`` for any model timm knows."""

    name = f"[{'|'.join(sorted(BACKBONE_NAMES))}|{TIMM_PREFIX}NAME]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return check_backbone(str(value))
        except ModelConfigError as error:
            self.fail(str(error), param, ctx)


def load_yaml_defaults(ctx: click.Context, param: click.Parameter, path: Path | None) -> Path | None:
    """--config FILE.yaml: its keys become the defaults of the other options, so flags still win."""
    if path is None:
        return None
    try:
        values = read_yaml(Path(path)) or {}
    except YamlFileError as error:
        raise click.BadParameter(str(error)) from None
    if not isinstance(values, dict):
        raise click.BadParameter(f"{path} must hold a mapping of option names to values.")
    known = {option.name: option for option in ctx.command.params}
    values = {str(key).replace("-", "_"): value for key, value in values.items()}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise click.BadParameter(f"{path} has unknown options {unknown}.")
    if "allow_pipe" in values:  # a shared config must not be able to run shell commands
        raise click.BadParameter(f"{path} sets allow_pipe, which only the command line may give: it lets a "
                                 "--data location run a shell command.")
    values = {name: yaml_value(known[name], value, path) for name, value in values.items()}
    ctx.default_map = {**(ctx.default_map or {}), **values}
    return path


def yaml_value(option: click.Parameter, value: Any, path: Path) -> Any:
    """An option's value from --config as click takes it: one value of the kind the option reads
    (a list of them for a repeatable option, where one value is a list of one). Anything else is
    refused in one sentence: click would read a mapping's keys as values, cut a string into its
    characters, or fail with a traceback on a number given to a flag or a list given to a path."""
    if value is None:  # the option's own default
        return None
    if isinstance(option.type, click.types.BoolParamType):
        kinds, wanted = (bool,), "true or false"
    elif isinstance(option.type, (click.types.IntParamType, click.types.FloatParamType, WarmupType)):
        kinds, wanted = (int, float, str), "a number"
    else:
        kinds, wanted = (str,), "text"
    items = value if option.multiple and isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, kinds) or (isinstance(item, bool) and bool not in kinds):
            raise click.BadParameter(f"{path} gives {option.name} the value {item!r}, which is not {wanted}.")
    return items if option.multiple else value


def training_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Attach every training flag (with one line of help each) to a click command."""
    options = [
        click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     callback=load_yaml_defaults, is_eager=True, expose_value=True,
                     help="YAML file of option values; flags on the command line win."),
        click.option("--data", multiple=True, required=True,
                     help="Shard set (folder or URL), optionally SET:WEIGHT; repeat to mix sets."),
        click.option("--out", type=click.Path(path_type=Path), required=True,
                     help="Run folder: config, provenance, metrics.jsonl and checkpoints."),
        click.option("--method", type=click.Choice(METHODS), default="simclr",
                     help="Positives: views of a group (simclr), same class (supcon), all M views (multipos)."),
        click.option("--backbone", type=BackboneType(), default="resnet18",
                     help="Encoder, trained from scratch: torchvision ResNets, convnet-small for CPU-scale runs, "
                          "or timm:NAME, any timm model (timm:vit_small_patch16_224; README \"Backbones\")."),
        click.option("--small-images/--imagenet-stem", default=None,
                     help="3x3 stride-1 stem without max-pool [default: on for crops of 64 px and less]."),
        click.option("--projection-dim", type=WholeNumberRange(1, MAX_PROJECTION_DIM), default=128,
                     help="Output size of the projection MLP."),
        click.option("--views", type=WholeNumberRange(2), default=2,
                     help="Views per sample M: the anchor and M-1 positives (simclr takes 2, multipos more)."),
        click.option("--crop-size", type=WholeNumberRange(8, MAX_CROP_SIZE), default=None,
                     help="RandomResizedCrop output size [default: the image size of the sets, the smallest "
                          "if they differ]."),
        click.option("--crop-min-scale", type=FiniteFloatRange(0.01, 1.0), default=0.2,
                     help="Smallest crop area as a fraction of the image."),
        click.option("--blur/--no-blur", default=False, help="Add Gaussian blur (p=0.5) to the augmentation."),
        click.option("--color-augment/--no-color-augment", default=True,
                     help="Colour jitter (p=0.8) and grayscale (p=0.2); off: crops and flips only, for images "
                          "that share their colours (where each image has its own, two crops match by colour alone)."),
        click.option("--temperature", type=FiniteFloatRange(min=0, min_open=True), default=0.1,
                     help="Softmax temperature of the contrastive loss."),
        click.option("--batch-size", type=WholeNumberRange(1), default=256, help="Samples per rank per step."),
        click.option("--epochs", type=WholeNumberRange(1), default=None,
                     help="Training length in epochs, each the sets' groups divided by the global batch "
                          f"[default: {DEFAULT_EPOCHS}, unless --steps is given]."),
        click.option("--steps", type=WholeNumberRange(0), default=None,
                     help="Training length in steps, instead of --epochs: whole epochs run and the last one "
                          "stops at step N, so sets of any size train for the same number of steps (0 saves "
                          "the initial, untrained encoder: a baseline)."),
        click.option("--optimizer", type=click.Choice(list(OPTIMIZERS)), default="sgd",
                     help="SGD with momentum, LARS or AdamW."),
        click.option("--lr", type=FiniteFloatRange(min=0, min_open=True), default=None,
                     help="Peak learning rate per 256 images, scaled by the global batch [default: "
                          f"{_per_optimizer(0)}]."),
        click.option("--weight-decay", type=FiniteFloatRange(min=0), default=None,
                     help=f"Weight decay, not applied to biases and norms [default: {_per_optimizer(1)}]."),
        click.option("--warmup", type=WarmupType(), default=None, metavar="FRACTION|Nsteps|Nepochs",
                     help=f"Linear warm-up before the cosine decay to 0: {WARMUP_SYNTAX}; it must end "
                          f"before the run does [default: {DEFAULT_WARMUP}]."),
        click.option("--warmup-epochs", type=FiniteFloatRange(min=0), default=None,
                     help="The same as --warmup Nepochs (kept for older scripts)."),
        click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto",
                     help="bf16 autocast (CUDA only); auto picks bf16 on CUDA and fp32 on CPU."),
        click.option("--channels-last/--no-channels-last", default=True,
                     help="Use the channels-last memory format (faster convolutions on CUDA and on CPUs)."),
        click.option("--sync-bn/--no-sync-bn", default=False,
                     help="Synchronise batch-norm statistics across ranks."),
        click.option("--workers", type=WholeNumberRange(0), default=4, help="Data-loading processes per rank."),
        click.option("--gpu-augment/--no-gpu-augment", default=False,
                     help="Decode and augment on the training device (nvJPEG on CUDA), not in the workers."),
        click.option("--seed", type=seed_range(), default=0, help="Seed for views, augmentations, shuffling and weights."),
        click.option("--save-every", type=WholeNumberRange(0), default=0,
                     help="Also keep epoch-NNNN.pt every N epochs (0: never); last.pt is written at every "
                          "epoch's end and at the last step."),
        click.option("--save-every-steps", type=WholeNumberRange(0), default=0,
                     help="Also write last.pt every N steps, inside epochs, with the loader's position, so a "
                          "killed run resumes at that step (0: only at epochs' ends)."),
        click.option("--log-every", type=WholeNumberRange(1), default=10,
                     help="Steps between lines of metrics.jsonl (also one at every epoch's end and the last step)."),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt."),
        click.option("--skip-corrupt", is_flag=True,
                     help="Skip and count corrupt samples and shards instead of stopping at the first."),
        click.option("--progress/--no-progress", default=True, help="Show a progress bar on rank 0."),
        allow_pipe_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _per_optimizer(field: int) -> str:
    return ", ".join(f"{values[field]:g} for {name}" for name, values in OPTIMIZERS.items())


# Options that say one thing two ways: one of a pair, or neither (the default applies).
ALTERNATIVES = (("epochs", "steps"), ("warmup", "warmup_epochs"))


def choose_alternatives(params: dict[str, Any], on_command_line: Collection[str]) -> dict[str, Any]:
    """Where both of a pair are set, the one given on the command line wins over the one from
    --config; both on the command line (or both in the file) are refused in one sentence."""
    params = dict(params)
    for first, second in ALTERNATIVES:
        if params.get(first) is None or params.get(second) is None:
            continue
        given = [name for name in (first, second) if name in on_command_line]
        if len(given) != 1:
            where = "on the command line" if given else "in --config"
            raise OptionsError(f"--{first.replace('_', '-')} and --{second.replace('_', '-')} both set the "
                               f"{'training length' if first == 'epochs' else 'warm-up'} {where}; give one.")
        params[second if given == [first] else first] = None
    return params


def resolve(params: dict[str, Any], image_size: int, on_command_line: Collection[str] = ()) -> dict[str, Any]:
    """Fill the defaults that depend on other choices; the result is what the run folder records
    (the schedule in steps is added by train/main.py once the world size is known)."""
    config = choose_alternatives(params, on_command_line)
    if config["epochs"] is None and config["steps"] is None:
        config["epochs"] = DEFAULT_EPOCHS
    warmup_epochs = config.pop("warmup_epochs")
    warmup = (parse_warmup(f"{warmup_epochs:g}epochs") if warmup_epochs is not None
              else config["warmup"] if config["warmup"] is not None else parse_warmup(DEFAULT_WARMUP))
    config["warmup"] = str(warmup)
    config["config"] = str(config["config"]) if config["config"] else None
    config["out"] = str(config["out"])
    config["data"] = list(config["data"])
    base_lr, weight_decay = OPTIMIZERS[config["optimizer"]]
    config["lr"] = config["lr"] if config["lr"] is not None else base_lr
    config["weight_decay"] = (config["weight_decay"] if config["weight_decay"] is not None
                              else weight_decay)
    config["image_size"] = image_size
    config["crop_size"] = config["crop_size"] or image_size
    if config["small_images"] is None:
        config["small_images"] = config["crop_size"] <= 64
    return config


def training_recipe(config: dict[str, Any]) -> dict[str, Any]:
    """The options that decide what is trained: a resumed run must match them."""
    return {key: value for key, value in config.items() if key not in OPERATIONAL}


def upgrade_saved_config(saved: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's config in today's terms: runs saved before --steps and --warmup existed had
    ``warmup_epochs`` and no recorded schedule (it is taken as the one this run resolves, which
    checkpoints of that time computed the same way); runs saved before --no-color-augment existed
    were augmented with colour."""
    saved = dict(saved)
    saved.setdefault("color_augment", True)
    if "warmup_epochs" in saved and "warmup" not in saved:
        saved["warmup"] = f"{saved.pop('warmup_epochs'):g}epochs"
        saved.setdefault("steps", None)
        saved.setdefault("schedule", wanted.get("schedule"))
    return saved
