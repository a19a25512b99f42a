"""Benchmarks: gicnet's runtime against MD with ML potentials and against the hardware.

Run from the repository root: ``python -m benchmarks.speed --help``.  Results and their
reading are in BENCHMARKS.md.
"""
