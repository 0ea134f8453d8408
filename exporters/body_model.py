"""Optional SMPL body model: per-subject skeletons and meshes from the user's own files.

The SMPL model files are licensed (https://smpl.is.tue.mpg.de) and not bundled. Without
them everything uses the bundled skeleton (``opendance.skeleton.smpl_skeleton``) and
nothing asks for them. With ``--smpl-model DIR`` (a folder holding ``SMPL_NEUTRAL.pkl`` /
``SMPL_MALE.pkl`` / ``SMPL_FEMALE.pkl``, or the original ``basicmodel_*`` names, directly
or in a ``smpl/`` subfolder), a gender and shape coefficients (betas), the skeleton's
rest offsets come from the model (joints = J_regressor @ (v_template + shapedirs @ betas),
Loper et al., "SMPL", SIGGRAPH Asia 2015) and meshes (6890 vertices) can be produced
through the ``smplx`` package (the ``[smpl]`` extra).

Root convention: our ``Motion.trans`` is the pelvis's world position, while SMPL's
``transl`` is added after posing a body whose pelvis sits at J_0(betas); so
``transl = trans - J_0(betas)``.

Note: SMPL's own files are pickles; smplx loads them as they are. They are files the user
downloaded from the SMPL site and chose to trust.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opendance.errors import InputError, OpenDanceError
from opendance.motion import Motion
from opendance.skeleton import JOINT_NAMES, PARENTS, Skeleton, smpl_skeleton

log = logging.getLogger(__name__)

GENDERS = ("neutral", "male", "female")
N_VERTICES = 6890
MAX_BETAS = 10


def _candidate_files(model_dir: Path, gender: str) -> list[Path]:
    names = [f"SMPL_{gender.upper()}.pkl"]
    names += {"neutral": ["basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl",
                          "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"],
              "male": ["basicmodel_m_lbs_10_207_0_v1.1.0.pkl", "basicModel_m_lbs_10_207_0_v1.0.0.pkl"],
              "female": ["basicmodel_f_lbs_10_207_0_v1.1.0.pkl",
                         "basicModel_f_lbs_10_207_0_v1.0.0.pkl"]}[gender]
    return [d / n for d in (model_dir, model_dir / "smpl") for n in names]


def find_model_file(model_dir: str | Path, gender: str = "neutral") -> Path:
    """The SMPL model file for ``gender`` in ``model_dir``; ``InputError`` saying what was looked for."""
    if gender not in GENDERS:
        raise InputError(f"gender must be one of {', '.join(GENDERS)}, got {gender!r}")
    d = Path(model_dir)
    if d.is_file():
        return d
    if not d.is_dir():
        raise InputError(f"--smpl-model {d}: no such folder")
    for c in _candidate_files(d, gender):
        if c.is_file():
            return c
    raise InputError(f"--smpl-model {d}: no {gender} SMPL model file (looked for SMPL_{gender.upper()}.pkl "
                     "and the basicmodel_* names, there and in smpl/)")


@dataclass
class BodyModel:
    """An SMPL body (smplx ``SMPL`` layer) with fixed gender and betas.

    Attributes:
        layer: the ``smplx.SMPL`` module (float32, CPU).
        gender: "neutral", "male" or "female".
        betas: (B,) float32 shape coefficients, B <= 10.
    """

    layer: object
    gender: str
    betas: np.ndarray

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_struct(cls, data_struct, gender: str = "neutral", betas=None) -> BodyModel:
        """Build from an in-memory ``smplx.utils.Struct`` (tests, or arrays already loaded)."""
        return cls._build({"model_path": "", "data_struct": data_struct}, gender, betas)

    @classmethod
    def from_dir(cls, model_dir: str | Path, gender: str = "neutral", betas=None) -> BodyModel:
        """Load the user's SMPL model file for ``gender`` from ``model_dir`` (see module doc)."""
        path = find_model_file(model_dir, gender)
        return cls._build({"model_path": str(path)}, gender, betas)

    @classmethod
    def _build(cls, source: dict, gender: str, betas) -> BodyModel:
        try:
            import smplx
        except ImportError:
            raise OpenDanceError("SMPL meshes need the smplx package: "
                                 "pip install 'opendance[smpl]'") from None
        import torch

        if gender not in GENDERS:
            raise InputError(f"gender must be one of {', '.join(GENDERS)}, got {gender!r}")
        b = np.zeros(0, np.float32) if betas is None else np.asarray(betas, np.float32).reshape(-1)
        if b.size > MAX_BETAS or not np.isfinite(b).all():
            raise InputError(f"betas: at most {MAX_BETAS} finite numbers, got {b.size}")
        try:
            # smplx print()s a notice for 10-beta models (all SMPL 1.x files): keep stdout clean.
            with contextlib.redirect_stdout(io.StringIO()) as notes:
                layer = smplx.SMPL(gender=gender, num_betas=MAX_BETAS, batch_size=1, dtype=torch.float32,
                                   **source)
            if notes.getvalue().strip():
                log.debug("smplx: %s", notes.getvalue().strip())
        except (OSError, AssertionError, KeyError, ValueError, EOFError, ImportError,
                ModuleNotFoundError) as exc:
            raise InputError(f"cannot load the SMPL model {source.get('model_path') or '(in memory)'}: "
                             f"{type(exc).__name__}: {exc}") from None
        parents = layer.parents.tolist()
        if len(parents) != len(PARENTS) or parents[1:] != list(PARENTS[1:]):
            raise InputError("the SMPL model's kinematic tree differs from SMPL-24")
        if layer.v_template.shape[0] != N_VERTICES:
            raise InputError(f"the SMPL model has {layer.v_template.shape[0]} vertices, "
                             f"expected {N_VERTICES}")
        full = np.zeros(layer.num_betas, np.float32)
        full[:b.size] = b[:layer.num_betas]
        return cls(layer.eval(), gender, full)

    # ----------------------------------------------------------------- skeleton
    def rest_joints(self) -> np.ndarray:
        """(24, 3) float64 metres: the model's rest joints for these betas (pelvis not moved)."""
        import torch

        with torch.no_grad():
            betas = torch.from_numpy(self.betas)[None]
            shaped = self.layer.v_template + torch.einsum("vcb,nb->nvc", self.layer.shapedirs, betas)[0]
            joints = self.layer.J_regressor @ shaped
        return joints.double().numpy()

    def skeleton(self) -> Skeleton:
        """The SMPL-24 ``Skeleton`` with parent-relative offsets from this body."""
        j = self.rest_joints()
        offsets = np.zeros_like(j)
        for k, p in enumerate(PARENTS):
            if p >= 0:
                offsets[k] = j[k] - j[p]
        return Skeleton(JOINT_NAMES, PARENTS, offsets)

    @property
    def faces(self) -> np.ndarray:
        """(F, 3) int64 triangle vertex indices."""
        return np.asarray(self.layer.faces, dtype=np.int64)

    # ----------------------------------------------------------------- meshes
    def skinned_mesh(self):
        """The shaped body in its bind pose for glTF export (``exporters.gltf.SkinnedMesh``).

        Vertices are ``v_template + shapedirs @ betas`` moved so the pelvis is at the origin
        (the bind pose of ``skeleton()``); each vertex keeps its 4 largest SMPL skin weights,
        renormalised. Pose-corrective blend shapes are not representable in glTF skinning.
        """
        import torch

        from opendance.exporters.gltf import SkinnedMesh

        with torch.no_grad():
            betas = torch.from_numpy(self.betas)[None]
            offsets = torch.einsum("vcb,nb->nvc", self.layer.shapedirs, betas)[0]
            shaped = (self.layer.v_template + offsets).numpy()
        weights = self.layer.lbs_weights.numpy()
        top = np.argsort(-weights, axis=1)[:, :4]
        w4 = np.take_along_axis(weights, top, axis=1)
        w4 = w4 / np.maximum(w4.sum(axis=1, keepdims=True), 1e-12)
        top[w4 == 0] = 0  # glTF: unused influence slots point at joint 0
        return SkinnedMesh((shaped - self.rest_joints()[0]).astype(np.float32), self.faces,
                           top.astype(np.uint16), w4.astype(np.float32))

    def vertices(self, motion: Motion, batch_frames: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Posed meshes and joints of ``motion`` with this body.

        Returns:
            vertices (T, 6890, 3) float32 metres and joints (T, 24, 3) float32 metres, world
            frame, pelvis at ``motion.trans`` (see module doc for the root convention).
        """
        import torch

        aa = motion.axis_angle().reshape(motion.n_frames, 72)
        transl = motion.trans - self.rest_joints()[0].astype(np.float32)
        verts, joints = [], []
        with torch.no_grad():
            for s in range(0, motion.n_frames, batch_frames):
                a = torch.from_numpy(aa[s:s + batch_frames])
                n = a.shape[0]
                out = self.layer(global_orient=a[:, :3], body_pose=a[:, 3:],
                                 betas=torch.from_numpy(self.betas)[None].expand(n, -1),
                                 transl=torch.from_numpy(transl[s:s + batch_frames]))
                verts.append(out.vertices.numpy())
                joints.append(out.joints[:, :24].numpy())
        return np.concatenate(verts), np.concatenate(joints)


def save_obj(vertices: np.ndarray, faces: np.ndarray, path: str | Path) -> None:
    """Write one mesh, (V, 3) metres and (F, 3) 0-based indices, as Wavefront OBJ."""
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(vertices)]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in np.asarray(faces)]
    Path(path).write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- CLI glue
def add_body_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--smpl-model DIR``, ``--gender`` and ``--betas`` to a command's parser."""
    g = parser.add_argument_group("SMPL body model (optional; your own licensed files)")
    g.add_argument("--smpl-model", metavar="DIR", default=None,
                   help="folder with SMPL_{NEUTRAL,MALE,FEMALE}.pkl; without it the bundled skeleton is used")
    g.add_argument("--gender", choices=GENDERS, default="neutral", help="SMPL model gender (default neutral)")
    g.add_argument("--betas", default=None, metavar="B1,B2,...",
                   help="up to 10 comma-separated SMPL shape coefficients (default all 0)")


def parse_betas(text: str | None) -> np.ndarray | None:
    """'0.5,-1' -> array([0.5, -1.0]); None stays None. ``InputError`` on bad numbers."""
    if text is None:
        return None
    try:
        return np.array([float(x) for x in text.split(",") if x.strip()], np.float32)
    except ValueError:
        raise InputError(f"--betas must be comma-separated numbers, got {text!r}") from None


def body_model_from_args(args: argparse.Namespace) -> BodyModel | None:
    """The ``BodyModel`` the flags ask for, or None when ``--smpl-model`` is not given."""
    if getattr(args, "smpl_model", None) is None:
        if getattr(args, "betas", None):
            raise InputError("--betas needs --smpl-model DIR (your SMPL model files)")
        return None
    return BodyModel.from_dir(args.smpl_model, args.gender, parse_betas(args.betas))


def skeleton_from_args(args: argparse.Namespace) -> Skeleton:
    """The model's skeleton when ``--smpl-model`` is given, else the bundled one."""
    model = body_model_from_args(args)
    return smpl_skeleton() if model is None else model.skeleton()
