"""VMC and plain OSC datagrams, parsed by an independent OSC implementation (osc4py3)."""

import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from opendance import rotations as rot
from opendance.bridges import coords
from opendance.bridges.humanoid import HUMANOID_JOINTS, HUMANOID_NAMES
from opendance.bridges.osc_out import OscEncoder, OscSender
from opendance.bridges.osc_wire import encode_message, pack_bundles
from opendance.bridges.vmc import VmcEncoder, VmcSender
from opendance.frames import PoseFrame
from opendance.skeleton import JOINT_NAMES, smpl_skeleton

osc4py3 = pytest.importorskip("osc4py3.oscbuildparse",
                              reason="osc4py3 (dev extra) is the independent OSC parser")


def _messages(datagram):
    """Flatten an osc4py3-decoded packet into [(address, typetags, args)]."""
    pkt = osc4py3.decode_packet(datagram)
    out = []
    stack = [pkt]
    while stack:
        p = stack.pop(0)
        if isinstance(p, osc4py3.OSCBundle):
            stack.extend(p.elements)
        else:
            out.append((p.addrpattern, p.typetags, tuple(p.arguments)))
    return out


def _frame(seed=0, t=100.0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(24, 4)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return PoseFrame(time_s=t, frame_index=42, fps=60.0, local_quats=q,
                     root_pos=np.array([0.3, 0.95, -0.2], np.float32),
                     joints=rng.normal(size=(24, 3)).astype(np.float32), audio_time_s=12.25,
                     beat_phase=0.25, tempo_bpm=123.0, beat_confidence=0.8, downbeat_phase=0.5, energy=0.7,
                     music_level=0.25, onset_strength=0.6)


def test_vmc_datagrams_parse_and_carry_unity_frame_values():
    enc = VmcEncoder(time_origin_s=90.0, rest_correction=False)
    frame = _frame()
    datagrams = enc.encode(frame)
    assert all(len(d) <= 1400 for d in datagrams) and len(datagrams) >= 2
    msgs = [m for d in datagrams for m in _messages(d)]
    by_addr = {}
    for addr, tags, args in msgs:
        by_addr.setdefault(addr, []).append((tags, args))
    assert by_addr["/VMC/Ext/OK"] == [(",iiii", (1, 3, 0, 1))]
    (tags, (t,)), = by_addr["/VMC/Ext/T"]
    assert tags == ",f" and t == pytest.approx(10.0)
    (tags, root), = by_addr["/VMC/Ext/Root/Pos"]
    assert tags == ",sfffffff" and root[0] == "root"
    np.testing.assert_allclose(root[1:], [-0.3, 0.0, -0.2, 0, 0, 0, 1], atol=1e-6)  # x mirrored, on the floor
    bones = {args[0]: np.array(args[1:]) for tags, args in by_addr["/VMC/Ext/Bone/Pos"]}
    assert set(bones) == set(HUMANOID_NAMES)
    offsets = smpl_skeleton().offsets
    for j, name in zip(HUMANOID_JOINTS, HUMANOID_NAMES, strict=False):
        want = coords.smpl_to_unity_quat(frame.local_quats[j])
        np.testing.assert_allclose(bones[name][3:], want, atol=1e-6)
        if name == "Hips":
            np.testing.assert_allclose(bones[name][:3], [0, 0.95, 0], atol=1e-6)
        else:
            np.testing.assert_allclose(bones[name][:3], coords.smpl_to_unity_pos(offsets[j]), atol=1e-6)


def _bones(datagrams):
    root, bones = None, {}
    for d in datagrams:
        for addr, _, args in _messages(d):
            if addr == "/VMC/Ext/Root/Pos":
                root = np.array(args[1:4])
            elif addr == "/VMC/Ext/Bone/Pos":
                bones[args[0]] = (np.array(args[1:4], np.float64), np.array(args[4:8], np.float64))
    return root, bones


def _unity_fk(root, bones):
    """World positions of the 22 bones from what a Marionette receives (Unity frame)."""
    parents = smpl_skeleton().parents
    g, world = {}, {}
    for j, name in zip(HUMANOID_JOINTS, HUMANOID_NAMES, strict=False):
        pos, q = bones[name]
        r = rot.quat_to_matrix(q)
        p = parents[j]
        if p < 0:
            g[j], world[j] = r, root + pos
        else:
            g[j], world[j] = g[p] @ r, world[p] + g[p] @ pos
    return np.array([world[j] for j in HUMANOID_JOINTS])


@pytest.mark.parametrize("correct", [True, False])
def test_vmc_receiver_fk_reproduces_smpl_joints(correct):
    """Rebuild the skeleton from the datagrams alone: the same world joints as SMPL's FK."""
    from opendance.bridges.playback import MotionPlayback, load_motion
    motion = load_motion(Path(__file__).parent / "data" / "aistpp_sample.pkl")
    frame = MotionPlayback(motion, fps=30.0).frame(40, 0.0)
    root, bones = _bones(VmcEncoder(rest_correction=correct).encode(frame))
    world = _unity_fk(root, bones)
    expected = coords.smpl_to_unity_pos(frame.joints[list(HUMANOID_JOINTS)])
    np.testing.assert_allclose(world, expected, atol=2e-4)


def test_vmc_rest_correction_gives_a_t_pose_rest():
    """With the correction the sent rest offsets of the limbs are exact T-pose directions."""
    q = np.zeros((24, 4), np.float32)
    q[:, 3] = 1
    frame = PoseFrame(0.0, 0, 30.0, q, np.array([0, 0.9, 0], np.float32), np.zeros((24, 3), np.float32))
    _, bones = _bones(VmcEncoder(rest_correction=True).encode(frame))
    for child, direction in [("LeftLowerArm", [-1, 0, 0]), ("LeftHand", [-1, 0, 0]),
                             ("RightLowerArm", [1, 0, 0]), ("LeftLowerLeg", [0, -1, 0]),
                             ("RightFoot", [0, -1, 0])]:
        pos = bones[child][0]
        np.testing.assert_allclose(pos / np.linalg.norm(pos), direction, atol=1e-5)  # Unity: left is -X
    # SMPL's rest pose itself is then a few degrees off the T-pose, as measured in humanoid.py
    angle = np.degrees(2 * np.arccos(min(1.0, abs(bones["LeftUpperArm"][1][3]))))
    assert 3.0 < angle < 10.0


def test_vmc_over_real_udp():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    sender = VmcSender("127.0.0.1", rx.getsockname()[1])
    try:
        sender.send(_frame())
        got = [rx.recv(65535) for _ in range(2)]
    finally:
        sender.close()
        rx.close()
    names = {a[0] for d in got for addr, _, a in _messages(d) if addr == "/VMC/Ext/Bone/Pos"}
    assert names == set(HUMANOID_NAMES) and sender.udp.dropped == 0


def test_vmc_hips_rotation_is_the_global_orientation():
    frame = _frame()
    q = rot.axis_angle_to_quat(np.array([0.0, np.pi / 2, 0.0])).astype(np.float32)  # turn left 90 deg
    frame.local_quats[0] = q
    msgs = [m for d in VmcEncoder().encode(frame) for m in _messages(d)]
    hips = next(a for addr, _, a in msgs if addr == "/VMC/Ext/Bone/Pos" and a[0] == "Hips")
    # Unity: the same turn is about -Y (left-handed), i.e. the quaternion (0, -s, 0, c)
    np.testing.assert_allclose(hips[4:], [0, -np.sin(np.pi / 4), 0, np.cos(np.pi / 4)], atol=1e-6)


@pytest.mark.parametrize("mode", ["blob", "flat", "per-joint"])
def test_plain_osc_modes(mode):
    frame = _frame()
    datagrams = OscEncoder(mode, time_origin_s=99.5).encode(frame)
    assert all(len(d) <= 1400 for d in datagrams)
    assert len(datagrams) == (2 if mode == "per-joint" else 1)
    msgs = {addr: (tags, args) for d in datagrams for addr, tags, args in _messages(d)}
    assert msgs["/opendance/frame"] == (",ifff", (42, 0.5, 12.25, 60.0))
    np.testing.assert_allclose(msgs["/opendance/beat"][1], [0.25, 123.0, 0.8, 0.5], atol=1e-6)
    np.testing.assert_allclose(msgs["/opendance/control/energy"][1], [0.7], atol=1e-6)
    assert "/opendance/energy" not in msgs  # the control is named as one; the music's level is separate
    assert msgs["/opendance/bar"] == (",fi", (0.5, 3))
    np.testing.assert_allclose(msgs["/opendance/music/level"][1], [0.25, -45.0], atol=1e-5)
    np.testing.assert_allclose(msgs["/opendance/music/onset"][1], [0.6], atol=1e-6)
    np.testing.assert_allclose(msgs["/opendance/root"][1], frame.root_pos, atol=1e-6)
    if mode == "blob":
        tags, (blob,) = msgs["/opendance/joints"]
        assert tags == ",b"
        joints = np.frombuffer(bytes(blob), ">f4").reshape(24, 3)
    elif mode == "flat":
        tags, args = msgs["/opendance/joints"]
        assert tags == "," + "f" * 72
        joints = np.array(args).reshape(24, 3)
    else:
        joints = np.array([msgs[f"/opendance/joint/{n}"][1] for n in JOINT_NAMES])
    np.testing.assert_allclose(joints, frame.joints, atol=1e-6)


def test_plain_osc_unreal_coordinates():
    frame = _frame()
    msgs = {a: args for d in OscEncoder("flat", "unreal").encode(frame) for a, _, args in _messages(d)}
    np.testing.assert_allclose(msgs["/opendance/root"], coords.smpl_to_unreal_pos(frame.root_pos), rtol=1e-6)


def test_generic_encoder_against_independent_parser():
    d = encode_message("/x/y", [7, 1.5, "hello", b"\x01\x02\x03", True, False])
    (addr, tags, args), = _messages(d)
    assert addr == "/x/y" and tags == ",ifsbTF"
    assert args[:3] == (7, 1.5, "hello") and bytes(args[3]) == b"\x01\x02\x03" and args[4:] == (True, False)
    with pytest.raises(ValueError, match="does not fit"):
        pack_bundles([b"x" * 2000], 1400)
    bundles = pack_bundles([encode_message("/m", [float(i)] * 30) for i in range(20)], 600)
    assert all(len(b) <= 600 for b in bundles)
    assert sum(len(_messages(b)) for b in bundles) == 20


def test_sender_to_unreachable_port_never_raises():
    s = OscSender("127.0.0.1", 9, "blob")  # discard port; nothing listens
    try:
        for _ in range(5):
            s.send(_frame())
    finally:
        s.close()
    assert s.udp.sent_datagrams + s.udp.dropped == 5


def test_blob_layout_is_big_endian_float32():
    frame = _frame()
    (d,) = OscEncoder("blob").encode(frame)
    i = d.index(b"/opendance/joints")
    size_off = i + len(b"/opendance/joints\x00\x00\x00") + 4  # address (20 bytes) + ",b\0\0"
    assert struct.unpack(">i", d[size_off:size_off + 4])[0] == 288


def test_plain_osc_beat_and_downbeat_triggers_fire_once_per_beat_and_bar():
    """120 BPM at 60 FPS for 4 bars: 16 beat triggers and 4 downbeat triggers, each in the
    frame where its phase wraps, counted up; none while the bar is unknown."""
    enc = OscEncoder("blob", time_origin_s=0.0)
    beats, bars, bar_args = [], [], []
    for k in range(1, 60 * 8 + 1):        # 8 s: 16 beats, 4 bars (the first at frame 120)
        t = k / 60
        f = _frame()
        f.beat_phase, f.downbeat_phase, f.tempo_bpm = (t * 2) % 1.0, (t / 2) % 1.0, 120.0
        if k <= 60:
            f.downbeat_phase = -1.0        # bar not found yet
        msgs = {a: args for d in enc.encode(f) for a, _, args in _messages(d)}
        if "/opendance/trigger/beat" in msgs:
            beats.append((k, msgs["/opendance/trigger/beat"][0]))
        if "/opendance/trigger/downbeat" in msgs:
            bars.append((k, msgs["/opendance/trigger/downbeat"][0]))
        bar_args.append(msgs["/opendance/bar"])
    assert [k for k, _ in beats] == list(range(30, 481, 30))[:len(beats)] and len(beats) == 16
    assert [n for _, n in beats] == list(range(1, 17))
    assert bars == [(120, 1), (240, 2), (360, 3), (480, 4)]
    assert bar_args[0] == (-1.0, 0) and bar_args[119][1] == 1 and bar_args[118][1] == 4


def test_music_meter_level_and_onset():
    from opendance.bridges.music_meter import MusicMeter
    sr = 48000
    m = MusicMeter(sr)
    assert m.read() == (0.0, 0.0)
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(sr // 10) / sr)).astype(np.float32)  # -9 dBFS RMS
    for _ in range(10):
        m.update(tone, np.array([0.2, 0.1], np.float32))
    level, onset = m.read()
    assert m.level_db() == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.3)
    assert level == pytest.approx((m.level_db() + 60) / 60, abs=1e-6)
    m.update(tone, np.array([4.0], np.float32))          # a strong onset: 1 relative to its peak
    assert m.read()[1] == pytest.approx(1.0)
    for _ in range(5):                                   # 0.5 s of silence: level falls, onset decays
        m.update(np.zeros(sr // 10, np.float32), np.zeros(3, np.float32))
    level2, onset2 = m.read()
    assert level2 < level - 0.1 and onset2 < 0.05
    m.update(np.full(480, np.nan, np.float32))           # never NaN out
    assert all(np.isfinite(m.read()))
