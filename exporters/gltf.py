"""Binary glTF 2.0 (``.glb``) writer: an SMPL-24 skin with a stick-figure mesh and the
motion as a node animation.

Specification: Khronos glTF 2.0 (https://registry.khronos.org/glTF/specs/2.0/glTF-2.0.html).
glTF is right-handed, Y-up, metres, with +Z the model's front: the SMPL frame as is, so
no axis change. Quaternions in glTF are x, y, z, w, as ours.

Layout: 24 joint nodes (our names, translation = rest offset, root translation animated),
one mesh node skinned to them (by default one thin four-sided spindle per bone, rigidly
weighted to the bone's parent joint; with the user's SMPL model, the SMPL body with its
four strongest skin weights per vertex, linear blend skinning without SMPL's pose
correctives), one animation ("dance") with LINEAR samplers: rotation for every joint,
translation for the root. Read-only viewers (Blender, three.js, gltf-viewer) show
the stick figure dancing. Reading .glb back is not supported.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opendance.exporters._io import atomic_write
from opendance.motion import Motion
from opendance.skeleton import Skeleton, smpl_skeleton

_FLOAT, _USHORT, _UINT = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
BONE_RADIUS_M = 0.02


@dataclass
class SkinnedMesh:
    """A mesh bound to the SMPL-24 joints, in the bind pose (rest pose, root at the origin).

    Attributes:
        positions: (V, 3) float32 metres.
        faces: (F, 3) integer vertex indices (V must be < 65536).
        joints: (V, 4) integer joint indices per vertex.
        weights: (V, 4) float32 skin weights per vertex, each row summing to 1.
    """

    positions: np.ndarray
    faces: np.ndarray
    joints: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        v = len(self.positions)
        if v >= 65536 or np.shape(self.positions) != (v, 3) or np.shape(self.joints) != (v, 4) \
                or np.shape(self.weights) != (v, 4) or np.ndim(self.faces) != 2 \
                or np.shape(self.faces)[1] != 3:
            raise ValueError("SkinnedMesh needs (V,3) positions, (F,3) faces, (V,4) joints and weights, "
                             "V < 65536")


def stick_figure(sk: Skeleton) -> SkinnedMesh:
    """Thin four-sided spindles from each parent joint to its child, rigidly bound to the parent."""
    rest = sk.rest_joints()
    pos, joint, tris = [], [], []
    for j, p in enumerate(sk.parents):
        if p < 0:
            continue
        a, b = rest[p], rest[j]
        axis = b - a
        length = np.linalg.norm(axis)
        if length < 1e-6:
            continue
        axis = axis / length
        helper = np.array([1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.array([0, 1.0, 0])
        u = np.cross(axis, helper)
        u /= np.linalg.norm(u)
        v = np.cross(axis, u)
        mid = a + axis * length * 0.2
        ring = [mid + BONE_RADIUS_M * (np.cos(k * np.pi / 2) * u + np.sin(k * np.pi / 2) * v)
                for k in range(4)]
        base = len(pos)
        pos += [a, b] + ring
        joint += [p] * 6
        for k in range(4):
            r0, r1 = base + 2 + k, base + 2 + (k + 1) % 4
            tris += [(base, r1, r0), (base + 1, r0, r1)]
    joints4 = np.zeros((len(joint), 4), np.uint16)
    joints4[:, 0] = joint
    weights4 = np.zeros((len(joint), 4), np.float32)
    weights4[:, 0] = 1.0
    return SkinnedMesh(np.asarray(pos, np.float32), np.asarray(tris, np.int64), joints4, weights4)


def continuous_quaternions(q: np.ndarray) -> np.ndarray:
    """(T, J, 4) quaternions with signs flipped so consecutive frames have a dot >= 0.

    q and -q are the same rotation, but a viewer that interpolates component-wise between
    keys would take the long way round between them.
    """
    q = np.array(q, dtype=np.float32, copy=True)
    for t in range(1, q.shape[0]):
        flip = np.sum(q[t] * q[t - 1], axis=-1) < 0
        q[t, flip] *= -1
    return q


class _Buffer:
    """Collects binary views and accessors for one glTF buffer."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, array: np.ndarray, component: int, kind: str, target: int | None = None,
            minmax: bool = False) -> int:
        while len(self.blob) % 4:
            self.blob.append(0)
        data = np.ascontiguousarray(array).tobytes()
        view = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        self.blob += data
        count = array.shape[0]
        acc = {"bufferView": len(self.views) - 1, "componentType": component, "count": int(count),
               "type": kind}
        if minmax:
            flat = array.reshape(count, -1)
            acc["min"] = [float(x) for x in flat.min(axis=0)]
            acc["max"] = [float(x) for x in flat.max(axis=0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1


def write_glb(motion: Motion, path: str | Path, skeleton: Skeleton | None = None,
              mesh: SkinnedMesh | None = None) -> None:
    """Write ``motion`` as a binary glTF 2.0 file (see module docstring).

    Args:
        skeleton: joint offsets (default: the bundled SMPL-24 skeleton).
        mesh: the skinned mesh in that skeleton's bind pose (default: a stick figure);
            ``BodyModel.skinned_mesh()`` gives the SMPL body of the user's model files.
    """
    sk = skeleton or smpl_skeleton()
    n = sk.n_joints
    m = mesh or stick_figure(sk)
    buf = _Buffer()
    a_pos = buf.add(np.asarray(m.positions, np.float32), _FLOAT, "VEC3", _ARRAY_BUFFER, minmax=True)
    a_jnt = buf.add(np.asarray(m.joints, np.uint16), _USHORT, "VEC4", _ARRAY_BUFFER)
    a_wgt = buf.add(np.asarray(m.weights, np.float32), _FLOAT, "VEC4", _ARRAY_BUFFER)
    a_idx = buf.add(np.asarray(m.faces, np.uint16).reshape(-1), _USHORT, "SCALAR", _ELEMENT_ARRAY_BUFFER)
    # Inverse bind matrices: the bind pose is the rest pose with the root at the origin,
    # every joint's world transform a pure translation. Column-major 4x4, as glTF requires.
    ibm = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    ibm[:, :3, 3] = -sk.rest_joints()
    a_ibm = buf.add(np.ascontiguousarray(ibm.transpose(0, 2, 1)), _FLOAT, "MAT4")
    times = (np.arange(motion.n_frames) / motion.fps).astype(np.float32)
    a_time = buf.add(times, _FLOAT, "SCALAR", minmax=True)
    quats = continuous_quaternions(motion.quaternions())  # (T, 24, 4) x, y, z, w
    channels, samplers = [], []
    a_trans = buf.add(motion.trans.astype(np.float32), _FLOAT, "VEC3")
    samplers.append({"input": a_time, "output": a_trans, "interpolation": "LINEAR"})
    channels.append({"sampler": 0, "target": {"node": 0, "path": "translation"}})
    for j in range(n):
        a_q = buf.add(np.ascontiguousarray(quats[:, j]), _FLOAT, "VEC4")
        samplers.append({"input": a_time, "output": a_q, "interpolation": "LINEAR"})
        channels.append({"sampler": len(samplers) - 1, "target": {"node": j, "path": "rotation"}})
    nodes = []
    for j in range(n):
        node: dict = {"name": sk.names[j],
                      "translation": [float(x) for x in (motion.trans[0] if j == 0 else sk.offsets[j])],
                      "rotation": [float(x) for x in quats[0, j]]}
        kids = sk.children(j)
        if kids:
            node["children"] = kids
        nodes.append(node)
    nodes.append({"name": "body", "mesh": 0, "skin": 0})
    doc = {
        "asset": {"version": "2.0", "generator": "opendance"},
        "scene": 0,
        "scenes": [{"nodes": [0, n]}],
        "nodes": nodes,
        "meshes": [{"name": "smpl_bones", "primitives": [{
            "attributes": {"POSITION": a_pos, "JOINTS_0": a_jnt, "WEIGHTS_0": a_wgt},
            "indices": a_idx, "mode": 4}]}],
        "skins": [{"name": "smpl24", "joints": list(range(n)), "skeleton": 0, "inverseBindMatrices": a_ibm}],
        "animations": [{"name": "dance", "channels": channels, "samplers": samplers}],
        "accessors": buf.accessors,
        "bufferViews": buf.views,
        "buffers": [{"byteLength": 0}],
    }
    while len(buf.blob) % 4:
        buf.blob.append(0)
    doc["buffers"][0]["byteLength"] = len(buf.blob)
    js = json.dumps(doc, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 4)
    total = 12 + 8 + len(js) + 8 + len(buf.blob)
    with atomic_write(path) as f:
        f.write(struct.pack("<III", 0x46546C67, 2, total))        # 'glTF', version 2
        f.write(struct.pack("<II", len(js), 0x4E4F534A) + js)     # JSON chunk
        f.write(struct.pack("<II", len(buf.blob), 0x004E4942) + bytes(buf.blob))  # BIN chunk


def read_glb_document(path: str | Path) -> tuple[dict, bytes]:
    """Split a .glb into its JSON document and binary chunk (for checks and tests)."""
    data = Path(path).read_bytes()
    magic, version, total = struct.unpack_from("<III", data, 0)
    if magic != 0x46546C67 or version != 2 or total != len(data):
        raise ValueError(f"{path}: not a glTF 2.0 binary file")
    jlen, jtype = struct.unpack_from("<II", data, 12)
    doc = json.loads(data[20:20 + jlen])
    blen, btype = struct.unpack_from("<II", data, 20 + jlen)
    if jtype != 0x4E4F534A or btype != 0x004E4942:
        raise ValueError(f"{path}: unexpected glb chunk types")
    return doc, data[28 + jlen:28 + jlen + blen]
