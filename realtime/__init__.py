"""Live path: audio sources and ring buffer, beat tracking and the beat clock, causal
music features, the output clock, and the session that wires them."""
