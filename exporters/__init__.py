"""Files for other tools: motion formats (AIST++ pkl, FineDance npy, SMPL npz, BVH, ...)
with readers and writers, and model exports (ONNX, TensorRT plans)."""
