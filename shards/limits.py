"""Bounds on what a shard set from another lab can make a reader allocate.

Each bound is checked from a header (a manifest field, a tar header, a JPEG frame header, an
``.npy`` header) before the memory it implies is allocated. The defaults fit any real set; an
environment variable raises a bound on purpose (README, "Receiving a set from another lab").
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from common.errors import UserError


class LimitSettingError(UserError):
    """An environment variable meant to raise a limit holds no usable number."""


@dataclass(frozen=True)
class Limit:
    variable: str  # the environment variable that changes it
    default: int
    unit: str  # what is counted, e.g. "pixels per image"

    @property
    def value(self) -> int:
        text = os.environ.get(self.variable)
        if text is None:
            return self.default
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            value = 0
        if value < 1:
            raise LimitSettingError(f"{self.variable} must be a positive whole number, not {text!r}.")
        return value

    def exceeded_by(self, amount: int) -> str | None:
        """None when ``amount`` is within the bound, else the clause that names the bound."""
        value = self.value
        if amount <= value:
            return None
        return f"more than the limit of {value} {self.unit} (set {self.variable} to raise it)"


IMAGE_PIXELS = Limit("GENVIEWS_MAX_IMAGE_PIXELS", 4096 * 4096, "pixels per image")
MEMBER_BYTES = Limit("GENVIEWS_MAX_MEMBER_BYTES", 256 << 20, "bytes per file or tar member")
VIEWS = Limit("GENVIEWS_MAX_VIEWS", 1024, "views per group")
LIMITS = (IMAGE_PIXELS, MEMBER_BYTES, VIEWS)
