"""Every example's stubs, C and Python, run against the simulator.

For every example and every stub it makes (one per partition), the Python
stub and the C stub (built with gcc) run the same scenario on two identical
simulated machines: their hook traces are identical call for call, the
simulator's live invariants hold (no message write to an unmasked MSI-X
entry, Enable only after the messages, nothing outside the partition, under
PAPR no address/data/MME write and the whole count asked up front), and
afterwards every function is in the state allocation.json describes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dtmsi.sim import SimOptions, Simulator
from tests.golden_update import EXAMPLES, example_names
from tests.stubs.stubrun import Compiled, Step, compile_msi, final_state_problems, parity

# QEMU's ibm,change-msi grants a multi-vector MSI one vector only (it reads
# MME, which the guest never writes under PAPR): the examples' plans are
# PowerVM's (Linux's arithmetic), so they run on the PowerVM model.
POWERVM = SimOptions(powervm=True)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Compiled]:
    out: dict[str, Compiled] = {}
    for name in example_names():
        out[name] = compile_msi(EXAMPLES / name / f"{name}.msi", tmp_path_factory.mktemp(name))
    return out


PARTITIONS: dict[str, list[str | None]] = {"partitions": ["lpar1", "lpar2", "lpar3"]}
CASES = [(name, part) for name in example_names() for part in PARTITIONS.get(name, [None])]


@pytest.mark.parametrize(("example", "partition"), CASES)
def test_setup_matches_the_plan_in_both_languages(
    compiled: dict[str, Compiled], example: str, partition: str | None, tmp_path: Path
) -> None:
    c = compiled[example]
    stub = c.stub(partition)
    py, _, c_sim = parity(c, stub, ["setup_all"], tmp_path, POWERVM)
    assert py.values == [0], [(r.mechanism, r.status) for r in py.results]
    assert c_sim.violations == []
    assert py.sim.violations == []
    assert final_state_problems(c, stub, c_sim) == []
    assert final_state_problems(c, stub, py.sim) == []
    # Something was really done: every planned function was touched.
    assert len(c_sim.trace_lines()) > 0


def _reset_all(sim: Simulator) -> None:
    for bdf in list(sim.devices):
        sim.reset_function(bdf)


@pytest.mark.parametrize(("example", "partition"), CASES)
def test_restore_teardown_and_setup_again(
    compiled: dict[str, Compiled], example: str, partition: str | None, tmp_path: Path
) -> None:
    """After a reset, restore_all puts every function back as planned;
    teardown_all leaves them in INTx; a second setup_all works again."""
    c = compiled[example]
    stub = c.stub(partition)
    steps: list[Step] = ["setup_all", _reset_all, "restore_all"]
    py, _, c_sim = parity(c, stub, steps, tmp_path, POWERVM)
    assert py.values == [0, 0]
    assert c_sim.violations == []
    assert final_state_problems(c, stub, c_sim) == []
    steps = ["setup_all", "teardown_all", "setup_all"]
    py, _, c_sim = parity(c, stub, steps, tmp_path, POWERVM)
    assert py.values == [0, 0, 0]
    assert c_sim.violations == []
    assert final_state_problems(c, stub, c_sim) == []
