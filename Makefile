# The two commands the README promises. Both set up a fresh machine first.
#   make example   compile the bundled QEMU virt example into out/qemu-virt
#   make test      run every test (lint, types, unit, golden, dtc, gcc, QEMU)
#   make fuzz      the fuzzers for about an hour (FUZZ_SECONDS=900 per test)
.PHONY: example test bench lint golden clean fuzz

VENV := .venv/bin

example:
	@scripts/bootstrap.sh
	$(VENV)/dtmsi compile examples/qemu-virt/qemu-virt.msi -o out/qemu-virt
	@echo "wrote: $$(ls out/qemu-virt | tr '\n' ' ')"

test:
	@scripts/bootstrap.sh
	$(VENV)/ruff check dtmsi tests bench
	$(VENV)/mypy
	$(VENV)/pytest -q

bench:
	@scripts/bootstrap.sh
	$(VENV)/python -m bench.run

# The fuzzers for longer than the test suite's minute: FUZZ_SECONDS per
# Hypothesis test (three of them) and 3/4 of it for atheris; prints inputs/s.
FUZZ_SECONDS ?= 900
fuzz:
	@scripts/bootstrap.sh
	DTMSI_FUZZ_SECONDS=$(FUZZ_SECONDS) $(VENV)/pytest -q -s -p no:cacheprovider tests/fuzz

# Regenerate golden files: only on purpose, then review the diff.
golden:
	@scripts/bootstrap.sh
	$(VENV)/python -m tests.golden_update

clean:
	rm -rf out build dist .pytest_cache .mypy_cache
