"""Maps the repository's root folders onto subpackages of ``opendance``.

``engine/`` installs as ``opendance.engine``, ``realtime/`` as ``opendance.realtime`` and so
on; both ``pip install .`` and ``pip install -e .`` import the same modules.
"""

import os

from setuptools import setup

SUBPACKAGE_ROOTS = ("realtime", "kernels", "engine", "exporters", "bridges", "training")
DATA_GLOBS = ["*.json", "*.safetensors", "*.html", "*.js", "*.css", "*.cu", "*.cuh", "*.wav",
              "*.txt", "*.md", "*.npz"]


def _packages() -> dict[str, str]:
    mapping = {}
    for root, prefix in [("opendance", "opendance")] + [(r, f"opendance.{r}") for r in SUBPACKAGE_ROOTS]:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "__"))]
            if "__init__.py" in filenames:
                rel = os.path.relpath(dirpath, root)
                name = prefix if rel == "." else prefix + "." + rel.replace(os.sep, ".")
                mapping[name] = dirpath
    return mapping


def _package_data(mapping: dict[str, str]) -> dict[str, list[str]]:
    data = {}
    for name, path in mapping.items():
        globs = list(DATA_GLOBS)
        for entry in os.listdir(path):
            full = os.path.join(path, entry)
            if os.path.isdir(full) and not os.path.exists(os.path.join(full, "__init__.py")) \
                    and not entry.startswith((".", "__")):
                for dirpath, _, _ in os.walk(full):
                    rel = os.path.relpath(dirpath, path)
                    globs.append(os.path.join(rel, "*"))
        data[name] = globs
    return data


PACKAGES = _packages()
setup(packages=list(PACKAGES), package_dir=PACKAGES, package_data=_package_data(PACKAGES))
