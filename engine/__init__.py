"""The model: DDT tokenizer, MCT, MS-LRM sampler, refinement, stream scheduler,
inference backends, checkpoints, text encoders and the bundled default weights."""
