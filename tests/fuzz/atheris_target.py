"""Coverage-guided fuzzing with atheris (libFuzzer): ``python -m tests.fuzz.atheris_target [libFuzzer flags]``.

Each input is mutated bytes that ``inputs.mutate_bytes`` turns into an
example set with its tokens changed; ``harness.judge`` asserts the promises.
dtmsi's modules are instrumented, so libFuzzer keeps the inputs that reach
new code.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["dtmsi"]):
    import dtmsi.cli
    import dtmsi.devicetree.basetree
    import dtmsi.driver
    import dtmsi.lower
    import dtmsi.parser
    import dtmsi.resolve  # noqa: F401

from tests.fuzz import harness
from tests.fuzz.inputs import mutate_bytes


def one_input(data: bytes) -> None:
    files, top = mutate_bytes(data)
    harness.judge(files, top, "atheris")


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
