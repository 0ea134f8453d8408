"""opendance: live music in, a dancing SMPL avatar out.

The import package is ``opendance``; the repository's root folders ``realtime/``,
``kernels/``, ``engine/``, ``exporters/``, ``bridges/`` and ``training/`` install as its
subpackages (``engine/`` is ``opendance.engine``). See ``docs/`` and the README.
"""

__version__ = "0.1.0"
