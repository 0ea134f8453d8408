"""The model: DDT tokenizer, MCT, MS-LRM sampler, refinement, streaming generator,
inference backends, checkpoints, text encoders and the bundled default weights."""
