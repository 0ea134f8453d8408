"""Files for other tools: motion formats (AIST++ pkl, FineDance npy, SMPL npz, BVH, glTF)
with readers and writers, and model exports (ONNX, TensorRT plans).

Motion files: ``load_motion(path, fmt=None, fps=None, **options) -> Motion`` and
``save_motion(motion, path, fmt=None, **options)``; the registry is ``FORMATS`` in
``opendance.exporters.formats``. These names are imported on first use, so importing
this package (e.g. for ``opendance --help``) stays cheap. Model exports live in their
own modules and are not imported here.
"""

from __future__ import annotations

import importlib

__all__ = ["FORMATS", "MotionFormat", "load_motion", "save_motion"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("opendance.exporters.formats"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
