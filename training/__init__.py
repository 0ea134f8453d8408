"""Datasets, the procedural corpus (music and choreography synthesizer), trainers and
quality metrics."""
