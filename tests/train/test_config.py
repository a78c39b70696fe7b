"""Training options: one length (--epochs or --steps), one warm-up (--warmup or --warmup-epochs),
the command line winning over --config, and old checkpoints' configs read in today's terms."""

from __future__ import annotations

import pytest

from train.config import OptionsError, choose_alternatives, resolve, upgrade_saved_config
from train.choices import parse_warmup

BASE = {"config": None, "out": "runs/a", "data": ("sets/a",), "optimizer": "sgd", "lr": None, "weight_decay": None,
        "crop_size": None, "small_images": None, "epochs": None, "steps": None, "warmup": None,
        "warmup_epochs": None}


def resolved(on_command_line: tuple[str, ...] = (), **given) -> dict:
    return resolve({**BASE, **given}, image_size=32, on_command_line=on_command_line)


def test_defaults_are_100_epochs_and_a_warmup_of_5_percent():
    config = resolved()
    assert (config["epochs"], config["steps"], config["warmup"]) == (100, None, "0.05")
    assert "warmup_epochs" not in config  # one way to record the warm-up


def test_steps_alone_leave_epochs_unset_and_warmup_epochs_is_warmup_in_epochs():
    config = resolved(("steps", "warmup_epochs"), steps=300, warmup_epochs=2.0)
    assert (config["epochs"], config["steps"], config["warmup"]) == (None, 300, "2epochs")
    assert resolved(warmup=parse_warmup("500steps"))["warmup"] == "500steps"


def test_the_command_line_wins_over_the_config_file_and_both_on_one_side_are_refused():
    from_file_and_flag = {"epochs": 8, "steps": 300}
    assert choose_alternatives(from_file_and_flag, {"steps"}) == {"epochs": None, "steps": 300}
    assert choose_alternatives(from_file_and_flag, {"epochs"}) == {"epochs": 8, "steps": None}
    with pytest.raises(OptionsError, match="--epochs and --steps both set the training length on the command "
                                           "line; give one."):
        resolved(("epochs", "steps"), epochs=8, steps=300)
    with pytest.raises(OptionsError, match="--warmup and --warmup-epochs both set the warm-up in --config"):
        resolved(warmup=parse_warmup("0.1"), warmup_epochs=1.0)


def test_a_checkpoint_from_before_steps_warmup_and_colour_reads_in_todays_terms():
    wanted = {"epochs": 10, "steps": None, "warmup": "10epochs", "schedule": {"total_steps": 30},
              "color_augment": True}
    saved = upgrade_saved_config({"epochs": 10, "warmup_epochs": 10.0}, wanted)
    assert saved == wanted
    assert upgrade_saved_config(wanted, {}) == wanted
    assert upgrade_saved_config({**wanted, "color_augment": False}, {})["color_augment"] is False
