"""Motion formats: round trips, the independent BVH reader, glTF structure, bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import bvh as bvh_pypi
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from opendance.errors import InputError
from opendance.exporters import FORMATS, load_motion, save_motion
from opendance.exporters.bvh import EULER_ORDERS, parse_bvh
from opendance.exporters.gltf import read_glb_document
from opendance.motion import Motion
from opendance.skeleton import JOINT_NAMES, N_JOINTS

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "aistpp_sample.pkl"


def _motion(n: int = 24, fps: float = 30.0, seed: int = 0, hands: bool = True) -> Motion:
    rng = np.random.default_rng(seed)
    aa = rng.normal(0, 0.5, (n, N_JOINTS, 3))
    if not hands:
        aa[:, 22:] = 0
    trans = rng.normal(0, 0.3, (n, 3)) + [0, 0.9, 0]
    return Motion.from_axis_angle(aa, trans, fps)


def _assert_same_motion(a: Motion, b: Motion, tol: float = 1e-5) -> None:
    assert a.n_frames == b.n_frames and a.fps == pytest.approx(b.fps)
    np.testing.assert_allclose(a.joints(), b.joints(), atol=tol)
    np.testing.assert_allclose(a.rotations, b.rotations, atol=tol)


@pytest.mark.parametrize("ext,fps,hands", [(".npz", 24.0, True), (".pkl", 60.0, True),
                                           (".npy", 30.0, False), (".bvh", 30.0, True)])
def test_round_trip(tmp_path, ext, fps, hands):
    m = _motion(fps=fps, hands=hands)
    path = tmp_path / f"clip{ext}"
    save_motion(m, path)
    _assert_same_motion(load_motion(path), m)


def test_fixed_rate_formats_resample_on_write(tmp_path):
    m = _motion(n=61, fps=60.0, hands=False)
    save_motion(m, tmp_path / "a.npy")
    back = load_motion(tmp_path / "a.npy")
    assert back.fps == 30 and back.n_frames == 31
    np.testing.assert_allclose(back.rotations, m.rotations[::2], atol=1e-5)
    save_motion(back, tmp_path / "b.pkl")
    assert load_motion(tmp_path / "b.pkl").n_frames == 61


def test_finedance_layout_is_rows_6d_and_hands_identity(tmp_path):
    """A (T, 315) file: root then 52 x PyTorch3D 6D (rows); joints 22/23 come back identity."""
    m = _motion(n=5, seed=3)
    save_motion(m, tmp_path / "f.npy")
    raw = np.load(tmp_path / "f.npy")
    assert raw.shape == (5, 315)
    np.testing.assert_allclose(raw[:, :3], m.trans, atol=1e-6)
    d6 = raw[:, 3:].reshape(5, 52, 6)
    np.testing.assert_allclose(d6[:, :22, :3], m.rotations[:, :22, 0, :], atol=1e-6)  # row 0
    np.testing.assert_allclose(d6[:, :22, 3:], m.rotations[:, :22, 1, :], atol=1e-6)  # row 1
    np.testing.assert_allclose(d6[:, 22:], np.tile([1, 0, 0, 0, 1, 0], (5, 30, 1)), atol=1e-7)
    back = load_motion(tmp_path / "f.npy")
    np.testing.assert_allclose(back.rotations[:, 22:], np.broadcast_to(np.eye(3), (5, 2, 3, 3)), atol=1e-7)
    np.testing.assert_allclose(back.rotations[:, :22], m.rotations[:, :22], atol=1e-5)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_aistpp_reads_every_pickle_protocol(tmp_path, protocol):
    data = {"smpl_poses": np.zeros((2, 72)), "smpl_trans": np.ones((2, 3), np.float32),
            "smpl_loss": np.float64(1.5), "smpl_scaling": np.array([2.0])}
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    m = load_motion(path)
    np.testing.assert_allclose(m.trans, 0.5)


def test_aistpp_scaling_is_divided(tmp_path):
    m = load_motion(FIXTURE)
    with open(FIXTURE, "rb") as f:
        data = pickle.load(f)
    data["smpl_trans"] = data["smpl_trans"] * 93.5
    data["smpl_scaling"] = np.array([93.5])
    with open(tmp_path / "scaled.pkl", "wb") as f:
        pickle.dump(data, f)
    np.testing.assert_allclose(load_motion(tmp_path / "scaled.pkl").trans, m.trans, atol=1e-5)


@pytest.mark.parametrize("order", EULER_ORDERS)
@pytest.mark.parametrize("units", ["m", "cm"])
def test_bvh_units_and_euler_orders_round_trip(tmp_path, order, units):
    m = _motion(n=8, seed=4)
    path = tmp_path / "clip.bvh"
    save_motion(m, path, units=units, euler=order)
    assert f"CHANNELS 3 {order[0]}rotation {order[1]}rotation {order[2]}rotation" in path.read_text()
    _assert_same_motion(load_motion(path), m, tol=1e-5)
    _assert_same_motion(load_motion(path, units=units), m, tol=1e-5)


def _pypi_bvh_world_positions(path: Path) -> tuple[list[str], np.ndarray, float]:
    """World joint positions computed only from what the ``bvh`` PyPI package parses."""
    with open(path) as f:
        doc = bvh_pypi.Bvh(f.read())
    names = doc.get_joints_names()
    t = doc.nframes
    world_r: dict[str, np.ndarray] = {}
    world_p: dict[str, np.ndarray] = {}
    out = np.zeros((t, len(names), 3))
    for k, name in enumerate(names):
        channels = doc.joint_channels(name)
        values = np.array(doc.frames_joint_channels(name, channels),
                          dtype=np.float64).reshape(t, len(channels))
        rot_ch = [c for c in channels if c.endswith("rotation")]
        local_r = Rotation.from_euler("".join(c[0] for c in rot_ch),
                                      values[:, [channels.index(c) for c in rot_ch]],
                                      degrees=True).as_matrix()
        local_p = np.tile(np.array(doc.joint_offset(name), dtype=np.float64), (t, 1))
        for c in channels:
            if c.endswith("position"):
                local_p[:, "XYZ".index(c[0])] += values[:, channels.index(c)]
        parent = doc.joint_parent(name)
        if parent is None:
            world_r[name], world_p[name] = local_r, local_p
        else:
            pr = world_r[parent.name]
            world_p[name] = world_p[parent.name] + np.einsum("tij,tj->ti", pr, local_p)
            world_r[name] = pr @ local_r
        out[:, k] = world_p[name]
    return names, out, doc.frame_time


@pytest.mark.parametrize("units,scale", [("m", 1.0), ("cm", 100.0)])
def test_bvh_read_by_independent_package_matches_our_fk(tmp_path, units, scale):
    m = load_motion(FIXTURE, fps=30)
    path = tmp_path / "fixture.bvh"
    save_motion(m, path, units=units, euler="ZXY")
    names, world, frame_time = _pypi_bvh_world_positions(path)
    assert sorted(names) == sorted(JOINT_NAMES)  # hierarchy (depth-first) order
    assert frame_time == pytest.approx(1 / 30, abs=1e-7)
    ours = m.joints()
    theirs = world[:, [names.index(n) for n in JOINT_NAMES]] / scale
    assert np.abs(ours).max() > 0.5  # real positions, not all zero
    np.testing.assert_allclose(theirs, ours, atol=1e-4)


def test_bvh_hierarchy_is_upright_and_leaves_have_end_sites(tmp_path):
    save_motion(_motion(n=2), tmp_path / "a.bvh")
    data = parse_bvh(tmp_path / "a.bvh")
    offsets = {j.name: j.offset for j in data.joints}
    assert offsets["spine1"][1] > 0 and offsets["left_knee"][1] < 0  # Y-up
    assert offsets["left_foot"][2] > 0                                 # toes towards +Z
    assert data.joints[0].channels[:3] == ["Xposition", "Yposition", "Zposition"]
    assert (tmp_path / "a.bvh").read_text().count("End Site") == 5


def test_glb_holds_skin_and_animation_of_the_motion(tmp_path):
    m = _motion(n=6, fps=30.0)
    save_motion(m, tmp_path / "a.glb")
    doc, blob = read_glb_document(tmp_path / "a.glb")
    assert doc["asset"]["version"] == "2.0"
    assert [n["name"] for n in doc["nodes"][:24]] == list(JOINT_NAMES)
    assert len(doc["skins"][0]["joints"]) == 24

    def accessor(i: int) -> np.ndarray:
        acc = doc["accessors"][i]
        view = doc["bufferViews"][acc["bufferView"]]
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc["type"]]
        dtype = {5126: np.float32, 5123: np.uint16}[acc["componentType"]]
        raw = np.frombuffer(blob, dtype, acc["count"] * width, view["byteOffset"])
        assert raw.nbytes == view["byteLength"] and view["byteOffset"] % 4 == 0
        return raw.reshape(acc["count"], width)

    anim = doc["animations"][0]
    times = accessor(anim["samplers"][0]["input"])[:, 0]
    np.testing.assert_allclose(times, np.arange(6) / 30, atol=1e-7)
    for ch in anim["channels"]:
        out = accessor(anim["samplers"][ch["sampler"]]["output"])
        node, path = ch["target"]["node"], ch["target"]["path"]
        if path == "translation":
            np.testing.assert_allclose(out, m.trans, atol=1e-6)
        else:
            q = m.quaternions()[:, node]
            sign = np.sign(np.sum(out * q, axis=-1, keepdims=True))  # q and -q: one rotation
            np.testing.assert_allclose(out, sign * q, atol=1e-6)
            assert (np.sum(out[1:] * out[:-1], axis=-1) >= 0).all()  # no long-way interpolation
    positions = accessor(doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"])
    assert positions.shape[0] > 0 and np.isfinite(positions).all()
    with pytest.raises(InputError, match="write"):
        load_motion(tmp_path / "a.glb")


def test_bvh_reader_accepts_other_naming_line_endings_and_channel_orders(tmp_path):
    """SMPL-24 written by another tool: L_Hip-style names, CRLF, per-joint channel order, cm."""
    m = _motion(n=4, seed=5)
    save_motion(m, tmp_path / "ours.bvh", units="cm", euler="XYZ")
    text = (tmp_path / "ours.bvh").read_text()
    for name in JOINT_NAMES:
        for long, short in (("left_", "L_"), ("right_", "R_")):
            if name.startswith(long):
                text = text.replace(f" {name}\n", f" {short}{name[len(long):].capitalize()}\n")
    assert "JOINT L_Hip" in text
    (tmp_path / "theirs.bvh").write_bytes(text.replace("\n", "\r\n").encode())
    _assert_same_motion(load_motion(tmp_path / "theirs.bvh"), m)


def test_bvh_with_unknown_units_needs_them_given(tmp_path):
    m = _motion(n=2)
    save_motion(m, tmp_path / "a.bvh")
    text = (tmp_path / "a.bvh").read_text()
    data = parse_bvh(tmp_path / "a.bvh")
    # Scale every OFFSET by 10 (decimetres): neither metres nor centimetres.
    lines = [ln if "OFFSET" not in ln else ln.split("OFFSET")[0] + "OFFSET " +
             " ".join(f"{float(x) * 10:.6f}" for x in ln.split()[1:]) for ln in text.splitlines()]
    (tmp_path / "dm.bvh").write_text("\n".join(lines) + "\n")
    assert len(data.joints) == 24
    with pytest.raises(InputError, match="units"):
        load_motion(tmp_path / "dm.bvh")


def test_load_resamples_and_checks_options(tmp_path):
    assert load_motion(FIXTURE, fps=30).fps == 30
    with pytest.raises(InputError, match="option"):
        load_motion(FIXTURE, units="cm")
    with pytest.raises(InputError, match="option"):
        save_motion(_motion(), tmp_path / "x.npz", euler="ZXY")


def test_every_registered_format_has_a_writer_or_reader():
    for f in FORMATS:
        assert f.reader or f.writer
        assert all(e.startswith(".") and e == e.lower() for e in f.extensions)


# ----------------------------------------------------------------------------- bad input
def _pickle(path: Path, obj) -> Path:
    with open(path, "wb") as f:
        pickle.dump(obj, f)
    return path


FOREIGN_BVH = """HIERARCHY
ROOT Hips
{
\tOFFSET 0 0 0
\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
\tJOINT Spine
\t{
\t\tOFFSET 0 10 0
\t\tCHANNELS 3 Zrotation Xrotation Yrotation
\t\tEnd Site
\t\t{
\t\t\tOFFSET 0 10 0
\t\t}
\t}
}
MOTION
Frames: 1
Frame Time: 0.033333
0 90 0 0 0 0 0 0 0
"""


@pytest.mark.parametrize("case,match", [
    ("missing", "no such file"),
    ("no_poses", "smpl_poses"),
    ("wrong_shape_pkl", "shape"),
    ("wrong_shape_npy", "shape"),
    ("finedance_319", "319"),
    ("npz_missing_trans", "trans"),
    ("foreign_bvh", "SMPL-24"),
    ("truncated_bvh", "BVH"),
    ("unknown_ext", "extension"),
    ("evil_pickle", "refusing"),
    ("not_a_dict", "dict"),
    ("nan_trans", "NaN"),
])
def test_bad_input_raises_one_line_input_error(tmp_path, case, match):
    good = _motion(n=4)
    if case == "missing":
        path = tmp_path / "nope.pkl"
    elif case == "no_poses":
        path = _pickle(tmp_path / "a.pkl", {"smpl_trans": np.zeros((3, 3))})
    elif case == "wrong_shape_pkl":
        path = _pickle(tmp_path / "a.pkl", {"smpl_poses": np.zeros((3, 69)), "smpl_trans": np.zeros((3, 3))})
    elif case == "wrong_shape_npy":
        path = tmp_path / "a.npy"
        np.save(path, np.zeros((4, 300), np.float32))
    elif case == "finedance_319":
        path = tmp_path / "a.npy"
        np.save(path, np.zeros((4, 319), np.float32))
    elif case == "npz_missing_trans":
        path = tmp_path / "a.npz"
        np.savez(path, poses=np.zeros((2, 72)), fps=30.0)
    elif case == "foreign_bvh":
        path = tmp_path / "a.bvh"
        path.write_text(FOREIGN_BVH)
    elif case == "truncated_bvh":
        path = tmp_path / "a.bvh"
        save_motion(good, path)
        path.write_text(path.read_text()[:700])
    elif case == "unknown_ext":
        path = tmp_path / "a.fbx"
        path.write_bytes(b"x")
    elif case == "evil_pickle":
        class Evil:
            def __reduce__(self):
                return (print, ("this must never run",))
        path = _pickle(tmp_path / "a.pkl", {"smpl_poses": Evil()})
    elif case == "not_a_dict":
        path = _pickle(tmp_path / "a.pkl", [1, 2, 3])
    elif case == "nan_trans":
        path = _pickle(tmp_path / "a.pkl", {"smpl_poses": np.zeros((2, 72)),
                                            "smpl_trans": np.array([[0, 0, 0], [np.nan, 0, 0]])})
    with pytest.raises(InputError, match=match) as info:
        load_motion(path)
    assert "\n" not in str(info.value)


def test_save_into_missing_folder_is_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        save_motion(_motion(), tmp_path / "nope" / "a.bvh")


@pytest.mark.parametrize("order", EULER_ORDERS)
def test_bvh_gimbal_lock_poses_survive(tmp_path, order, recwarn):
    """90 degrees about each axis puts some Euler order in gimbal lock: the pose must survive."""
    aa = np.zeros((3, N_JOINTS, 3))
    aa[0, 5] = [np.pi / 2, 0, 0]
    aa[1, 6] = [0, np.pi / 2, 0.0]
    aa[2, 3] = [0, 0, np.pi / 2]
    m = Motion.from_axis_angle(aa, np.zeros((3, 3)), 30)
    save_motion(m, tmp_path / "g.bvh", euler=order)
    _assert_same_motion(load_motion(tmp_path / "g.bvh"), m, tol=1e-5)
    assert not [w for w in recwarn if "Gimbal" in str(w.message)]


def test_bvh_is_upright_and_facing_front_in_blender_axes(tmp_path):
    """Blender's BVH importer defaults (axis_forward='-Z', axis_up='Y') map BVH (x, y, z) to
    Blender (x, -z, y). Our character must stand along Blender +Z with its toes towards -Y,
    the direction Blender's front view looks from."""
    to_blender = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])
    save_motion(Motion.rest(1, height_m=0.95), tmp_path / "rest.bvh")
    names, rest_world, _ = _pypi_bvh_world_positions(tmp_path / "rest.bvh")
    b = rest_world[0] @ to_blender.T
    head, pelvis, l_ankle, l_foot = (b[names.index(n)] for n in ("head", "pelvis", "left_ankle", "left_foot"))
    assert head[2] - pelvis[2] > 0.4          # upright: head above pelvis along Blender +Z
    assert l_foot[1] < l_ankle[1]             # toes point to Blender -Y: facing the front view
