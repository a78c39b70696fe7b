"""YAML that people share (a trainer's --config, a run folder's config.yaml), read so that no file can
make a reader hang or exhaust memory, and written so that this reader always takes it back.

A few lines of aliases to aliases (``*name``, the "billion laughs") expand to billions of values for
whoever walks the result, so aliases are refused; the size and the nesting depth are bounded too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from common.errors import UserError
from common.files import read_head

MAX_BYTES = 1 << 20  # a config of options is a few kB
MAX_DEPTH = 64  # nesting levels; each costs the composer a recursion


class YamlFileError(UserError):
    """A YAML file that cannot be read as plain data; the message is one sentence."""


def _too_deep() -> yaml.YAMLError:
    return yaml.YAMLError(f"it nests values more than {MAX_DEPTH} levels deep")


class _PlainDataLoader(yaml.SafeLoader):
    """SafeLoader without aliases and with a bounded nesting depth."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        # Checked by the scanner as well: it runs ahead of the composer, and each open [ or { costs
        # it a step through every one still open, so ten thousand of them take seconds to reach it.
        if self.flow_level >= MAX_DEPTH:
            raise _too_deep()
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("it uses a YAML alias (*name), which a shared file may not: write the "
                                 "value out in full")
        if self.depth >= MAX_DEPTH:
            raise _too_deep()
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _NoAliasDumper(yaml.SafeDumper):
    """SafeDumper that writes a value held twice out twice, as the loader above requires."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def read_yaml(path: Path) -> Any:
    """The plain data of a YAML file; raises YamlFileError with one sentence for a file that is
    unreadable, too large, not UTF-8, not YAML, nested too deeply or using aliases."""
    data = read_head(path, MAX_BYTES, YamlFileError)
    if len(data) > MAX_BYTES:
        raise YamlFileError(f"{path} is larger than {MAX_BYTES // 1024} kB, more than a YAML file of "
                            "options holds.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise YamlFileError(f"{path} is not a text file (it is not UTF-8).") from None
    try:
        return yaml.load(text, Loader=_PlainDataLoader)  # noqa: S506 - a SafeLoader, with fewer features
    except yaml.YAMLError as error:
        raise YamlFileError(f"{path} is not usable YAML: {_describe(error)}.") from None


def dump_yaml(data: Any) -> bytes:
    """``data`` as YAML without anchors or aliases, keys sorted."""
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=True).encode("utf-8")


def _describe(error: yaml.YAMLError) -> str:
    """The problem and its line for a parse error, else the error's own text."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem:
        where = f" (line {error.problem_mark.line + 1})" if error.problem_mark else ""
        return f"{error.problem}{where}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__
