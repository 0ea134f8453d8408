"""Test and benchmark tooling: fault injection, virtual microphones, beat scoring, GPU host checks.

Not part of the runtime packages; importable from the repository root."""
