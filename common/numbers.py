"""Numbers given on a command line or in a shared config: finite, in range, refused in one sentence."""

from __future__ import annotations

import math
from typing import Any

import click

# numpy seeds take any non-negative integer, torch.manual_seed one below 2**64: this bound suits both.
MAX_SEED = 2**63 - 1


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange that also refuses nan and inf.

    nan compares false with every bound, so FloatRange lets it through (and inf through an open
    upper end); a nan learning rate or temperature then trains or scores silently to nonsense.
    """

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            bounded = self.min is not None or self.max is not None
            where = f" in the range {self._describe_range()}" if bounded else ""
            self.fail(f"{number} is not a finite number{where}.", param, ctx)
        return number


class WholeNumberRange(click.IntRange):
    """click's IntRange that also refuses a float that is not a whole number.

    Values from a YAML config arrive as floats (``epochs: 1.5``, ``epochs: .inf``): IntRange would
    cut 1.5 to 1 silently and raise OverflowError, a traceback, on inf.
    """

    name = "whole number range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float) and not value.is_integer():
            self.fail(f"{value} is not a whole number.", param, ctx)
        return super().convert(value, param, ctx)


def seed_range() -> WholeNumberRange:
    """The type of a ``--seed`` option: a whole number from 0 to ``MAX_SEED``."""
    return WholeNumberRange(0, MAX_SEED)
