"""Run a command module and SIGKILL it at one step of the commit protocol.

    python -m tests.shards.kill_at PATTERN WHEN NTH MODULE ARGS...

The process dies at the NTH rename onto a final name matching PATTERN (fnmatch), ``before`` the
rename (the temporary file is whole and fsynced) or ``after`` it. Every atomic write of genviews
ends in ``os.replace``, so this reaches each step: the temporary tar, the tar renamed without its
record, the record, the manifest. Nothing else of the run is changed.
"""

from __future__ import annotations

import fnmatch
import os
import runpy
import signal
import sys

pattern, when, nth, module, *arguments = sys.argv[1:]
real_replace = os.replace
seen = 0


def replace_then_maybe_die(source, destination, **kwargs):
    global seen
    hit = fnmatch.fnmatch(os.path.basename(destination), pattern)
    if hit:
        seen += 1
    if hit and seen == int(nth) and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(source, destination, **kwargs)
    if hit and seen == int(nth) and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)


os.replace = replace_then_maybe_die
sys.argv = [module, *arguments]
runpy.run_module(module, run_name="__main__", alter_sys=True)
