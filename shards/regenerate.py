"""``shards verify --regenerate N``: the provenance check, run by the command that owns generators.

Rendering needs the generators, which live in ``generate``; ``shards`` never imports it (DESIGN.md,
"Layout"), so the check runs as ``python -m generate.verify`` in a child process of this
interpreter, whose report and exit status become this command's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def regenerate_groups(location: str, count: int, weights: Path | None, walks: Path | None) -> int:
    """Render ``count`` groups of the set again and compare them; returns the check's exit status."""
    options = [*(["--weights", str(weights)] if weights else []), *(["--walks", str(walks)] if walks else [])]
    command = [sys.executable, "-m", "generate.verify", location, "--regenerate", str(count), *options]
    return subprocess.run(command).returncode
