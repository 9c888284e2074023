"""Speed benchmark for dtmsi: a generator of large flat topologies (``bench.gen``),
the side-by-side runner against dtc (``python -m bench.run``) and a small
self-check the test suite calls (``bench.selfcheck.check_small``).

Importing this package does nothing: every module does its work only when called.
"""
