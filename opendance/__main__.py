"""``python -m opendance``: the same as the ``opendance`` command.

Run from a checkout, ``python -m`` puts the checkout's root on ``sys.path``; its top-level
folders (``kernels/``, ``engine/``, ...) would then shadow installed packages of the same
names (transformers imports a package called ``kernels``). The installed ``opendance``
never needs that entry (the folders install as ``opendance.kernels`` and so on), so it is
dropped before anything else is imported.
"""

import os
import sys

_checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _checkout]

from opendance.commands.main import main  # noqa: E402

sys.exit(main())
