"""Inference backends for the MCT: one interface (``Backend.logits``), several runtimes.

See ``base.py`` for the contract every backend implements and ``create_backend`` for
choosing one by name.
"""

from opendance.engine.backends.base import (
                                            Backend,
                                            BackendUnavailable,
                                            TorchBackend,
                                            available_backends,
                                            create_backend,
                                            register_backend,
)

__all__ = ["Backend", "BackendUnavailable", "TorchBackend", "available_backends", "create_backend",
           "register_backend"]
