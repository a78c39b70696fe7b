"""The mutants of ``python -m tests.mutation`` still break the code they name: each one's original text
occurs exactly once in its file, so moving or rewriting that code cannot quietly retire a mutant."""

from __future__ import annotations

import pytest

from tests.mutation import MUTANTS, REPO


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda mutant: mutant.name)
def test_each_mutant_finds_the_code_it_breaks(mutant):
    assert (REPO / mutant.path).read_text().count(mutant.original) == 1
    assert all((REPO / test).is_file() for test in mutant.tests)
