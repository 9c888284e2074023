"""The benchmark's topology generator writes input dtmsi accepts cleanly.

Speed is measured by ``make bench``, never by a timed test; this only keeps
the generator honest (a benchmark of inputs full of errors would measure the
wrong thing).
"""

from __future__ import annotations

import pytest

from bench.gen import count_functions, generate
from bench.selfcheck import check_small


@pytest.mark.parametrize("n", [1, 37, 200])
def test_generated_topologies_compile_without_diagnostics(n: int) -> None:
    diags = check_small(n)
    assert not diags, [f"{d.code.id} {d.span.location()}: {d.message}" for d in diags]


def test_generator_is_deterministic_and_flat() -> None:
    text = generate(500, seed=3)
    assert text == generate(500, seed=3)
    assert count_functions(text) == 500
    assert "repeat" not in text.split()
