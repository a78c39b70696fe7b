"""common.yaml_files: shared YAML read as plain data, never expanded into a hang, and written so it reads back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from common.yaml_files import MAX_BYTES, MAX_DEPTH, YamlFileError, dump_yaml, read_yaml
from tests.common.helpers import billion_laughs


@pytest.mark.parametrize("content, message", [
    (billion_laughs().encode(), "uses a YAML alias (*name)"),
    (b"base: &base {lr: 0.1}\nrun:\n  <<: *base\n", "uses a YAML alias (*name)"),
    (b"[" * 10_000 + b"]" * 10_000, f"nests values more than {MAX_DEPTH} levels deep"),  # RecursionError once
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "is not a text file (it is not UTF-8)"),
    (b"lr: [0.1\nepochs: 3\n", "is not usable YAML: expected ',' or ']', but got ':' (line 2)"),
    (b"#" * (MAX_BYTES + 1), f"is larger than {MAX_BYTES // 1024} kB"),
], ids=["billion laughs", "merge key", "deep nesting", "binary", "broken", "oversized"])
def test_hostile_or_broken_yaml_is_refused_in_one_sentence_at_once(tmp_path, content, message):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    started = time.monotonic()
    with pytest.raises(YamlFileError) as refused:
        read_yaml(path)
    assert time.monotonic() - started < 30  # a shared machine is slow at times; the hang is endless
    assert str(refused.value).startswith(str(path)) and message in str(refused.value)
    assert str(refused.value).endswith(".") and "\n" not in str(refused.value)


def test_a_missing_file_is_one_sentence():
    with pytest.raises(YamlFileError, match=r"^Cannot read /no/such/config.yaml \(No such file or directory\)\.$"):
        read_yaml(Path("/no/such/config.yaml"))


def test_what_dump_yaml_writes_reads_back_even_with_a_value_held_twice(tmp_path):
    shared = ["sets/a", "sets/b"]
    config = {"data": shared, "data_again": shared, "lr": 0.1, "schedule": {"total_steps": 6}}
    path = tmp_path / "config.yaml"
    path.write_bytes(dump_yaml(config))
    assert b"&" not in path.read_bytes() and read_yaml(path) == config
