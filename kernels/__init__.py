"""Forward kinematics and foot-slide loss: PyTorch reference (``fk``), NumPy twin
(``fk_numpy``) and CUDA kernels."""
