"""The one base class for errors meant for users: its message is one sentence, printed as is."""

from __future__ import annotations


class UserError(Exception):
    """A mistake or condition the user can act on (bad input, a full disk, a damaged file).

    Command lines catch this type alone and print its message; anything else is a bug and keeps
    its traceback.
    """
