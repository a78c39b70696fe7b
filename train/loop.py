"""The training loop and what surrounds it: the run folder checked, resumed or started, the model,
optimiser and loader built, steps taken, checkpoints and logs written.

``train/main.py`` parses the command line and imports this module only once a run starts, so that its
``--help`` starts at once.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import click
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from common.errors import UserError
from common.files import check_output_path, make_folder, write_bytes_atomic, write_json_atomic
from common.provenance import provenance
from common.yaml_files import dump_yaml
from shards import CorruptSampleError
from train import distributed
from train.augment import AugmentConfig, normalize
from train.checkpoint import load_checkpoint, save_checkpoint
from train.config import resolve, training_recipe, upgrade_saved_config
from train.data import Batch, DeviceAugment, build_loader, rank_batch_size
from train.sources import check_shared_classes, open_sources, steps_per_epoch
from train.logs import MetricsLog
from train.losses import distributed_contrastive_loss, positive_similarity
from train.models import build_model
from train.choices import parse_warmup
from train.optim import Schedule, build_optimizer, lr_at, plan_schedule, set_lr

LAST = "last.pt"


class RunError(UserError):
    """The run folder or the options do not allow this run; the message is one sentence."""


def diverged_error(first_step: int, step: int, out: Path, saved_step: int | None) -> RunError:
    """The error that stops a run whose loss turned nan or inf, saying which checkpoint is intact."""
    when = f"at step {step}" if first_step == step else f"between steps {first_step} and {step}"
    kept = (f"{out / LAST} still holds step {saved_step}" if saved_step is not None
            else "no checkpoint was written")
    return RunError(f"The loss turned nan or inf {when}, so training stopped and {kept}; lower --lr or "
                    "raise --temperature.")


def stopped_on_data(out: Path) -> str:
    """What a run stopped by data it cannot read (or skip) leaves: where ``--resume`` continues."""
    last = out / LAST
    if not last.exists():
        return "Training stopped on data it cannot read, before its first checkpoint."
    try:
        step = load_checkpoint(last)["step"]
    except UserError:  # a damaged last.pt must not hide the data error that stopped the run
        return f"Training stopped on data it cannot read; {last} does not read as a checkpoint."
    return f"Training stopped on data it cannot read; {last} holds step {step}, where --resume continues."


def check_method(config: dict[str, Any], sources: list) -> None:
    if config["method"] == "supcon":
        check_shared_classes(sources)
    if config["method"] == "simclr" and config["views"] != 2:
        raise RunError("simclr trains on pairs of views; use --method multipos for --views above 2.")


def check_before_writing(config: dict[str, Any], sources: list, dist_info: distributed.DistInfo) -> None:
    """Refusals that must come before the run folder is touched; records the resolved schedule."""
    autocast(config, dist_info.device)
    if config["sync_bn"] and dist_info.world_size > 1 and dist_info.device.type != "cuda":
        raise RunError("--sync-bn needs CUDA devices (torch synchronises batch norm on GPUs only); "
                       "drop it on CPU.")
    rank_batch_size(config["batch_size"], config["world_size"], dist_info.world_size, config["gpu_augment"])
    schedule = plan_schedule(epochs=config["epochs"], steps=config["steps"], warmup=parse_warmup(config["warmup"]),
                             steps_per_epoch=steps_per_epoch(sources, config["batch_size"], config["world_size"]),
                             base_lr=config["lr"], global_batch=config["batch_size"] * config["world_size"])
    config["schedule"] = schedule.as_dict()


def previous_run(config: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint to resume from (None for a new run); refuses to overwrite a run."""
    out = Path(config["out"])
    check_output_path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} exists and is not a folder.")
    last = out / LAST
    if not config["resume"]:
        if last.exists():
            raise RunError(f"{out} already holds a run; pass --resume to continue it or choose "
                           "another --out.")
        return None
    if not last.exists():
        raise RunError(f"--resume: {out} holds no {LAST} to continue from.")
    return load_checkpoint(last)


def check_resume(config: dict[str, Any], state: dict[str, Any]) -> None:
    """Refuses to continue a run with settings that change what it trains."""
    out = Path(config["out"])
    saved, wanted = training_recipe(upgrade_saved_config(state["config"], config)), training_recipe(config)
    changed = sorted(key for key in saved.keys() | wanted.keys() if saved.get(key) != wanted.get(key))
    if changed:
        raise RunError(f"--resume: {out} was trained with other settings ({', '.join(changed)} "
                       "differ); resume with the same options or choose another --out.")
    # Each worker's part of an epoch depends on the worker count: inside an epoch, only the same
    # count replays the rest of it.
    schedule = Schedule(**config["schedule"])
    inside_epoch = state["step"] % schedule.steps_per_epoch and state["step"] < schedule.total_steps
    if inside_epoch and state["config"]["workers"] != config["workers"]:
        raise RunError(f"--resume: {out} stopped inside an epoch with --workers {state['config']['workers']}; "
                       "resume with the same --workers to replay the rest of that epoch.")


def write_run_records(config: dict[str, Any], sources: list, resumed_step: int) -> None:
    """config.yaml, provenance.json, and metrics.jsonl cut back to the checkpoint's step."""
    out = Path(config["out"])
    write_bytes_atomic(out / "config.yaml", dump_yaml(config))
    write_json_atomic(out / "provenance.json", {
        **provenance(["torchrun", "train/main.py", *sys.argv[1:]]),
        "world_size": torch.distributed.get_world_size() if distributed.is_distributed() else 1,
        "data": [{"location": source.location, "weight": source.weight,
                  "manifest_sha256": source.shard_set.manifest_sha256} for source in sources],
    })
    metrics = out / "metrics.jsonl"
    if metrics.exists():  # a killed run may have logged steps past its checkpoint, or half a line
        kept = [line for line in metrics.read_text().splitlines()
                if (step := _logged_step(line)) is not None and step <= resumed_step]
        write_bytes_atomic(metrics, "".join(line + "\n" for line in kept).encode())


def _logged_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def autocast(config: dict[str, Any], device: torch.device) -> contextlib.AbstractContextManager:
    bf16 = config["precision"] == "bf16" or (config["precision"] == "auto" and device.type == "cuda")
    if bf16 and device.type != "cuda":
        raise RunError("--precision bf16 needs a CUDA device; use fp32 on CPU.")
    return torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def rng_states(device: torch.device) -> torch.Tensor:
    """Every rank's generator state (CPU, then CUDA where it trains), one row per rank: the training
    process's randomness (dropout, drop-path; the views under --workers 0) at a checkpoint."""
    state = torch.get_rng_state()
    if device.type == "cuda":
        state = torch.cat([state, torch.cuda.get_rng_state(device)])
    return distributed.all_gather_no_grad(state.to(device)[None]).cpu()


def restore_rng(resume_state: dict[str, Any], rank: int, device: torch.device) -> None:
    """The generator state that this rank saved (none in checkpoints of older versions)."""
    if "rng" not in resume_state:
        return
    # set_rng_state reads a tensor's storage from its start: copies, not views into the table
    state, cpu_bytes = resume_state["rng"][rank % len(resume_state["rng"])], torch.get_rng_state().numel()
    torch.set_rng_state(state[:cpu_bytes].clone())
    if device.type == "cuda" and len(state) > cpu_bytes:
        torch.cuda.set_rng_state(state[cpu_bytes:].clone(), device)


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, *,
                  supervised: bool, temperature: float,
                  precision: contextlib.AbstractContextManager, channels_last: bool,
                  stats: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """One optimisation step on a batch of B samples x M views; returns the (local) loss and puts
    what the log shows of the step (the positives' similarity) in ``stats``."""
    device = next(model.parameters()).device
    images = normalize(batch.images.to(device, non_blocking=True).flatten(0, 1))
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    positives = (batch.labels if supervised else batch.group_ids).to(device)
    labels = positives.repeat_interleave(batch.images.shape[1])
    with precision:
        embeddings = model(images)
    loss = distributed_contrastive_loss(embeddings.float(), labels, temperature)
    if stats is not None:
        stats["positive_similarity"] = positive_similarity(embeddings.detach().float(), batch.images.shape[1])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train(config: dict[str, Any], sources: list, dist_info: distributed.DistInfo,
          resume_state: dict[str, Any] | None) -> None:
    device = dist_info.device
    out = Path(config["out"])
    schedule = Schedule(**config["schedule"])
    world, started_on = dist_info.world_size, config["world_size"]
    if dist_info.is_main:
        click.echo(schedule.describe(parse_warmup(config["warmup"]), config["lr"],
                                     config["batch_size"] * started_on))
        if world != started_on:
            per_rank = rank_batch_size(config["batch_size"], started_on, world, config["gpu_augment"])
            click.echo(f"Resumed on {world} ranks, started on {started_on}: each rank takes {per_rank} samples "
                       f"per step, so the global batch stays {config['batch_size'] * started_on} and the "
                       "batches are those of the start.")
        make_folder(out)
        write_run_records(config, sources, resume_state["step"] if resume_state else 0)
    distributed.barrier()

    torch.manual_seed(config["seed"])  # the same initial weights on every rank
    model = build_model(config["backbone"], config["small_images"], config["projection_dim"])
    if resume_state:
        model.load_state_dict(resume_state["model"])
    if config["sync_bn"] and distributed.is_distributed():
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    channels_last = config["channels_last"]
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    ddp_model = (DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
                 if distributed.is_distributed() else model)

    augment = AugmentConfig(crop_size=config["crop_size"], crop_scale_min=config["crop_min_scale"],
                            blur=config["blur"], color=config["color_augment"])
    loader = build_loader(sources, batch_size=config["batch_size"], views=config["views"], augment=augment,
                          num_workers=config["workers"], seed=config["seed"], rank=dist_info.rank,
                          world_size=world, skip_corrupt=config["skip_corrupt"],
                          pin_memory=device.type == "cuda", gpu_augment=config["gpu_augment"],
                          stream_ranks=started_on)
    # --gpu-augment: the loader's batches hold JPEG bytes and parameters, decoded and augmented here.
    device_augment = DeviceAugment(augment, device, config["skip_corrupt"]) if config["gpu_augment"] else None
    steps_per_epoch, total_steps = loader.steps_per_epoch, schedule.total_steps
    assert steps_per_epoch == schedule.steps_per_epoch, "the loader and the schedule disagree on an epoch"
    optimizer = build_optimizer(config["optimizer"], model, schedule.peak_lr, config["weight_decay"])
    start_epoch, step = 0, 0
    if resume_state:
        optimizer.load_state_dict(resume_state["optimizer"])
        start_epoch, step = resume_state["epoch"], resume_state["step"]
        restore_rng(resume_state, dist_info.rank, device)
    saved_step = step if resume_state else None  # the step last.pt holds, named if the loss diverges
    # Steps whose loss was nan or inf since the last logged step: counted on the device, without a
    # sync per step, and checked at every logged step, which comes before every checkpoint.
    nonfinite, checked_step = torch.zeros((), device=device), step

    precision = autocast(config, device)
    supervised = config["method"] == "supcon"
    progress = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True,
                    disable=not (dist_info.is_main and config["progress"]))
    metrics = MetricsLog(out, step if resume_state else None) if dist_info.is_main else None
    if resume_state and step >= total_steps and dist_info.is_main:
        click.echo(f"{out} is already trained to its last step ({total_steps}); nothing to do.")
    elif total_steps == 0 and dist_info.is_main:  # --steps 0: the untrained encoder, as a baseline
        save_checkpoint(out / LAST, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                     "epoch": 0, "step": 0, "config": config})
    for epoch in range(start_epoch, schedule.epochs):
        ddp_model.train()
        window_start, data_wait, window_images, skipped = time.perf_counter(), 0.0, 0, 0
        wait_start = time.perf_counter()
        # step - epoch * steps_per_epoch is 0 but in a run resumed inside this epoch
        for batch in loader.epoch(epoch, start=step - epoch * steps_per_epoch):
            if device_augment:  # input preparation, so its time counts as waiting for data
                batch = device_augment(batch)
            data_wait += time.perf_counter() - wait_start
            lr = lr_at(step, total_steps, schedule.warmup_steps, schedule.peak_lr)
            set_lr(optimizer, lr)
            stats: dict[str, torch.Tensor] = {}
            loss = training_step(ddp_model, optimizer, batch, supervised=supervised,
                                 temperature=config["temperature"], precision=precision,
                                 channels_last=channels_last, stats=stats)
            step += 1
            nonfinite += (~torch.isfinite(loss)).float()
            window_images += batch.images.shape[0] * batch.images.shape[1] * world
            skipped += batch.skipped
            epoch_end = step % steps_per_epoch == 0 or step == total_steps
            save = epoch_end or (config["save_every_steps"] and step % config["save_every_steps"] == 0)
            if step % config["log_every"] == 0 or save:  # a checkpoint comes after the nan check
                mean_loss, bad_steps, similarity = distributed.all_reduce_mean(
                    torch.stack([loss, nonfinite, stats["positive_similarity"]])).tolist()
                if bad_steps:  # the same reduced value on every rank: all stop together
                    raise diverged_error(checked_step + 1, step, out, saved_step)
                checked_step = step
                elapsed = time.perf_counter() - window_start
                record = {"step": step, "epoch": epoch, "loss": mean_loss, "lr": lr,
                          "images_per_s": window_images / elapsed,
                          "data_wait_share": data_wait / elapsed, "positive_similarity": similarity,
                          "skipped": int(distributed.all_reduce_mean(float(skipped)) * world)}
                if metrics:
                    metrics.write(record)
                progress.set_postfix(loss=f"{mean_loss:.3f}", images_per_s=f"{record['images_per_s']:.0f}")
                window_start, data_wait, window_images, skipped = time.perf_counter(), 0.0, 0, 0
            progress.update(1)
            if save:  # at every epoch's end, at the last step, and every --save-every-steps
                rng = rng_states(device)  # a collective: every rank takes part
                if dist_info.is_main:
                    # "epoch" is the one to continue in: the next after an epoch's end, else this one.
                    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "epoch": epoch + 1 if epoch_end else epoch, "step": step, "config": config,
                             "rng": rng}
                    save_checkpoint(out / LAST, state)
                    if epoch_end and config["save_every"] and (epoch + 1) % config["save_every"] == 0:
                        save_checkpoint(out / f"epoch-{epoch + 1:04d}.pt", state)
                saved_step = step
                distributed.barrier()
            if step == total_steps:  # --steps: the last pass stops here; every rank is at this step
                break
            wait_start = time.perf_counter()
    progress.close()
    if metrics:
        metrics.close()
    finished = distributed.all_gather_no_grad(torch.tensor([step], device=device)).tolist()
    if finished != [total_steps] * world:
        raise RuntimeError(f"ranks finished at steps {finished}, not all at {total_steps}")
    if dist_info.is_main:
        ranks = f" on each of {world} ranks" if world > 1 else ""
        click.echo(f"Trained to step {total_steps}{ranks}; checkpoint {out / LAST}.")


def run(params: dict[str, Any], on_command_line: set[str]) -> None:
    """Train as ``params`` (the parsed options) say; ``on_command_line`` names the options the user gave,
    which a resumed run must not contradict."""
    sources = open_sources(params["data"], allow_pipe=params["allow_pipe"])
    config = resolve(params, image_size=min(source.shard_set.image_size for source in sources),
                     on_command_line=on_command_line)
    # The sets' content, not only their paths: a set regenerated in place is other data.
    config["data_manifests"] = [source.shard_set.manifest_sha256 for source in sources]
    check_method(config, sources)
    dist_info = distributed.setup_distributed()
    try:
        resume_state = previous_run(config)
        # The global batch, and so the schedule and the streams, are those of the run's start,
        # whatever number of ranks resumes it.
        config["world_size"] = (resume_state["config"].get("world_size", dist_info.world_size) if resume_state
                                else dist_info.world_size)
        check_before_writing(config, sources, dist_info)
        if resume_state:
            check_resume(config, resume_state)
        train(config, sources, dist_info, resume_state)
    except UserError as error:
        distributed.announce_stop(str(error))
        if isinstance(error, CorruptSampleError):  # a shard or sample that stays unreadable
            click.echo(stopped_on_data(Path(config["out"])))
        raise
    except RuntimeError as error:
        # A rank that stopped with a reason breaks the others' collectives: they stop with its reason,
        # not with the backend's traceback. Any other failure is a fault, and keeps its traceback.
        reason = None if isinstance(error, torch.cuda.OutOfMemoryError) else distributed.stop_of_another_rank()
        if reason is None:
            raise
        raise RunError(f"Rank {dist_info.rank} stopped because {reason}") from None
    finally:
        distributed.cleanup()

