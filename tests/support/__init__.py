"""Test and benchmark tooling: fault injection, virtual microphones, beat scoring, GPU host checks.

Not part of the runtime packages. Imported as ``support.*``: pytest puts ``tests/`` on sys.path,
and the benchmarks insert it."""
