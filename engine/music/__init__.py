"""The music representation the model is conditioned on: onsets, beat tracking, causal features."""
