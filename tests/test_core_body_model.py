"""The optional SMPL body model, with a synthetic in-memory smplx model (no licensed files)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from opendance.errors import InputError
from opendance.motion import Motion
from opendance.skeleton import PARENTS, smpl_skeleton

smplx = pytest.importorskip("smplx", reason="smplx (the [smpl] extra) is not installed")

from opendance.exporters.body_model import (  # noqa: E402  (only once smplx is known to be there)
    N_VERTICES,
    BodyModel,
    add_body_model_arguments,
    body_model_from_args,
    save_obj,
    skeleton_from_args,
)


def synthetic_struct(seed: int = 0) -> smplx.utils.Struct:
    """An SMPL-shaped model: 6890 vertices, vertex j (< 24) on rest joint j, one-hot regressor."""
    rng = np.random.default_rng(seed)
    rest = smpl_skeleton().rest_joints()
    nearest = rng.integers(0, 24, N_VERTICES)
    nearest[:24] = np.arange(24)
    v = rest[nearest] + rng.normal(0, 0.03, (N_VERTICES, 3))
    v[:24] = rest
    j_reg = np.zeros((24, N_VERTICES))
    j_reg[np.arange(24), np.arange(24)] = 1.0
    weights = np.zeros((N_VERTICES, 24))
    weights[np.arange(N_VERTICES), nearest] = 1.0
    shapedirs = rng.normal(0, 0.01, (N_VERTICES, 3, 10))
    kintree = np.stack([np.array([2**32 - 1] + list(PARENTS[1:])), np.arange(24)]).astype(np.int64)
    faces = rng.integers(0, N_VERTICES, (100, 3))
    return smplx.utils.Struct(v_template=v, shapedirs=shapedirs, J_regressor=j_reg, kintree_table=kintree,
                              weights=weights, posedirs=np.zeros((N_VERTICES, 3, 207)), f=faces)


def test_zero_betas_reproduce_the_bundled_skeleton():
    model = BodyModel.from_struct(synthetic_struct())
    np.testing.assert_allclose(model.skeleton().offsets, smpl_skeleton().offsets, atol=1e-6)


def test_betas_change_the_skeleton_and_fk_matches_smplx():
    betas = [1.5, -1.0, 0.5]
    model = BodyModel.from_struct(synthetic_struct(), gender="female", betas=betas)
    sk = model.skeleton()
    assert np.abs(sk.offsets - smpl_skeleton().offsets).max() > 1e-3
    rng = np.random.default_rng(1)
    motion = Motion.from_axis_angle(rng.normal(0, 0.4, (5, 24, 3)), rng.normal(0, 1, (5, 3)), 30)
    verts, joints = model.vertices(motion, batch_frames=2)
    assert verts.shape == (5, N_VERTICES, 3) and joints.shape == (5, 24, 3)
    # Our FK with the model's skeleton = smplx's posed joints; pelvis at motion.trans.
    np.testing.assert_allclose(motion.joints(sk), joints, atol=2e-5)
    np.testing.assert_allclose(joints[:, 0], motion.trans, atol=2e-5)
    assert model.faces.shape == (100, 3)


def test_save_obj(tmp_path):
    save_obj(np.zeros((3, 3)), np.array([[0, 1, 2]]), tmp_path / "m.obj")
    assert (tmp_path / "m.obj").read_text().splitlines()[-1] == "f 1 2 3"


def test_without_files_the_bundled_skeleton_is_used_and_errors_are_clear(tmp_path):
    parser = argparse.ArgumentParser()
    add_body_model_arguments(parser)
    assert skeleton_from_args(parser.parse_args([])) is smpl_skeleton()
    with pytest.raises(InputError, match="no neutral SMPL model file"):
        body_model_from_args(parser.parse_args(["--smpl-model", str(tmp_path)]))
    with pytest.raises(InputError, match="no such folder"):
        body_model_from_args(parser.parse_args(["--smpl-model", str(tmp_path / "x")]))
    with pytest.raises(InputError, match="needs --smpl-model"):
        body_model_from_args(parser.parse_args(["--betas", "1,2"]))
    with pytest.raises(InputError, match="comma-separated"):
        body_model_from_args(parser.parse_args(["--smpl-model", str(tmp_path), "--betas", "a,b"]))
    with pytest.raises(InputError, match="at most 10"):
        BodyModel.from_struct(synthetic_struct(), betas=np.zeros(11))


def test_meshes_from_a_motion_through_the_cli_path(tmp_path):
    from opendance.commands.formats import _write_meshes
    from opendance.exporters import load_motion

    model = BodyModel.from_struct(synthetic_struct())
    motion = load_motion(__import__("pathlib").Path(__file__).parent / "data" / "aistpp_sample.pkl")[:3]
    _write_meshes(model, motion, tmp_path / "meshes")
    files = sorted((tmp_path / "meshes").glob("*.obj"))
    assert [f.name for f in files] == ["frame_00000.obj", "frame_00001.obj", "frame_00002.obj"]
    lines = files[1].read_text().splitlines()
    assert sum(ln.startswith("v ") for ln in lines) == N_VERTICES
    # The mesh follows the motion: vertex 0 sits on the pelvis (rest joint 0 in the synthetic model).
    v0 = np.array([float(x) for x in lines[0].split()[1:]])
    np.testing.assert_allclose(v0, motion.trans[1], atol=1e-4)


def test_glb_with_the_smpl_body_mesh(tmp_path):
    from opendance.exporters import save_motion
    from opendance.exporters.gltf import read_glb_document

    model = BodyModel.from_struct(synthetic_struct(), betas=[0.5])
    mesh = model.skinned_mesh()
    assert mesh.positions.shape == (N_VERTICES, 3)
    np.testing.assert_allclose(mesh.weights.sum(axis=1), 1.0, atol=1e-6)
    assert (mesh.joints[mesh.weights == 0] == 0).all()  # glTF: unused slots point at joint 0
    # Vertex j < 24 sits on rest joint j: in the bind pose (pelvis at origin) it is the skeleton's rest joint.
    np.testing.assert_allclose(mesh.positions[:24], model.skeleton().rest_joints(), atol=1e-5)
    motion = Motion.rest(3, height_m=0.9)
    save_motion(motion, tmp_path / "body.glb", skeleton=model.skeleton(), mesh=mesh)
    doc, _ = read_glb_document(tmp_path / "body.glb")
    prim = doc["meshes"][0]["primitives"][0]
    assert doc["accessors"][prim["attributes"]["POSITION"]]["count"] == N_VERTICES
    assert doc["accessors"][prim["indices"]]["count"] == 100 * 3


def test_cli_with_a_model_folder(tmp_path, capsys):
    """--smpl-model DIR end to end: a synthetic SMPL_FEMALE.pkl in a folder, BVH offsets,
    glb body and OBJ meshes come from it; info uses its skeleton."""
    import pickle

    from opendance.commands.main import main
    from opendance.exporters import load_motion
    from opendance.exporters.bvh import parse_bvh

    folder = tmp_path / "models" / "smpl"
    folder.mkdir(parents=True)
    with open(folder / "SMPL_FEMALE.pkl", "wb") as f:
        pickle.dump(dict(synthetic_struct().__dict__), f)
    fixture = str(__import__("pathlib").Path(__file__).parent / "data" / "aistpp_sample.pkl")
    flags = ["--smpl-model", str(tmp_path / "models"), "--gender", "female", "--betas", "1.0,-0.5"]
    assert main(["convert", fixture, str(tmp_path / "a.bvh"), "--fps", "30", *flags]) == 0
    expected = BodyModel.from_dir(tmp_path / "models", "female", [1.0, -0.5]).skeleton()
    offsets = {j.name: j.offset for j in parse_bvh(tmp_path / "a.bvh").joints}
    np.testing.assert_allclose(offsets["left_knee"], expected.offsets[4], atol=1e-5)
    np.testing.assert_allclose(load_motion(tmp_path / "a.bvh").rotations,
                               load_motion(fixture, fps=30).rotations, atol=1e-5)
    assert main(["convert", fixture, str(tmp_path / "a.glb"), "--fps", "10", "--mesh-dir",
                 str(tmp_path / "meshes"), *flags]) == 0
    assert len(list((tmp_path / "meshes").glob("*.obj"))) == load_motion(fixture, fps=10).n_frames
    capsys.readouterr()
    assert main(["info", fixture, "--json", *flags]) == 0
    assert '"frames": 127' in capsys.readouterr().out
    assert main(["info", fixture, "--smpl-model", str(tmp_path / "models"), "--gender", "male"]) == 2
    assert "no male SMPL model file" in capsys.readouterr().err
