"""The SMPL 24-joint skeleton (AIST++ joint order, Y-up, metres, facing +Z).

Numbers: the SMPL male template joints at betas = 0, derived from the SMPL body model
(Loper, Mahmood, Romero, Pons-Moll, Black: "SMPL: A Skinned Multi-Person Linear Model",
SIGGRAPH Asia 2015) as published in Stanford-TML/EDGE ``vis.py`` (MIT licence). They are
stored in ``opendance/data/smpl_skeleton.json`` (see ``tests/data/README.md``).

Root convention (EDGE's): a motion's root translation is the world position of the
pelvis joint itself, so forward kinematics puts joint 0 exactly at ``trans``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

N_JOINTS = 24


@dataclass(frozen=True)
class Skeleton:
    """A kinematic tree.

    Attributes:
        names: joint names, length J.
        parents: (J,) int, parent index per joint, -1 for the root; parents precede children.
        offsets: (J, 3) float64 metres, each joint's rest position relative to its parent
            (the root's offset is zero: the root sits at the motion's translation).
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray

    def __post_init__(self) -> None:
        offsets = np.asarray(self.offsets, dtype=np.float64)
        n = len(self.names)
        if offsets.shape != (n, 3) or len(self.parents) != n:
            raise ValueError(f"skeleton needs {n} parents and ({n}, 3) offsets, got "
                             f"{len(self.parents)} and {offsets.shape}")
        for j, p in enumerate(self.parents):
            if not (-1 <= p < j) or (p == -1) != (j == 0):
                raise ValueError(f"joint {j} has parent {p}: parents must precede children, "
                                 "and only joint 0 is the root")
        offsets.setflags(write=False)
        object.__setattr__(self, "offsets", offsets)

    @property
    def n_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no joint named {name!r}; joints are {', '.join(self.names)}") from None

    def rest_joints(self) -> np.ndarray:
        """(J, 3) float64 metres: world joint positions of the zero pose with the root at 0."""
        out = np.zeros((self.n_joints, 3))
        for j, p in enumerate(self.parents):
            if p >= 0:
                out[j] = out[p] + self.offsets[j]
        return out

    def children(self, joint: int) -> list[int]:
        return [j for j, p in enumerate(self.parents) if p == joint]


@lru_cache(maxsize=1)
def _skeleton_json() -> dict:
    text = resources.files("opendance").joinpath("data/smpl_skeleton.json").read_text()
    return json.loads(text)


@lru_cache(maxsize=1)
def smpl_skeleton() -> Skeleton:
    """The bundled SMPL-24 skeleton (male template, betas = 0)."""
    data = _skeleton_json()
    return Skeleton(tuple(data["joint_names"]), tuple(int(p) for p in data["parents"]),
                    np.asarray(data["offsets_parent_relative_m"], dtype=np.float64))


JOINT_NAMES: tuple[str, ...] = smpl_skeleton().names
PARENTS: tuple[int, ...] = smpl_skeleton().parents

# Named indices used across the project (AIST++ / SMPL order).
PELVIS, L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3 = range(10)
L_FOOT, R_FOOT, NECK, L_COLLAR, R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER = range(10, 18)
L_ELBOW, R_ELBOW, L_WRIST, R_WRIST, L_HAND, R_HAND = range(18, 24)
FOOT_JOINTS = (L_ANKLE, R_ANKLE, L_FOOT, R_FOOT)
