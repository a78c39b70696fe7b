"""Running the project's command lines as a user would: a real subprocess, checked output; or, where the
shell adds nothing under test, the same command in this process."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
PLUGIN = "tests.generate.plugin_generators"


def cli_env() -> dict[str, str]:
    """The environment for subprocesses: tests' plug-in modules importable, no GPU, quiet threads."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["CUDA_VISIBLE_DEVICES"] = ""
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_module(module: str, *args: object, cwd: Path | None = None,
               timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def run_in_process(command: click.Command, prog_name: str, *args: object) -> subprocess.CompletedProcess:
    """A command line in this process (no interpreter start-up), its result read as a process's."""
    result = CliRunner().invoke(command, [str(arg) for arg in args], prog_name=prog_name)
    return subprocess.CompletedProcess([prog_name, *map(str, args)], result.exit_code, result.stdout,
                                       result.stderr)


def assert_clean_failure(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """A refused command: non-zero exit, no traceback, a message holding every fragment."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def kill_every_process_of(run: Path) -> None:
    """SIGKILL every process whose command line names the run folder (the agent, ranks, loaders)."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(run).encode() in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass  # it ended meanwhile


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file in a folder, by name."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.iterdir()) if path.is_file()}
