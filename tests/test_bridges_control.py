"""Control parsers (OSC and WebSocket): validation, tokens, fuzzing, and the OSC listener."""

import socket
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opendance.bridges.control import (
    CONTROL_KEYS,
    OSC_ADDRESSES,
    OscControlDispatcher,
    OscControlServer,
    parse_osc_control,
    parse_ws_control,
)
from opendance.bridges.osc_wire import encode_bundle, encode_message
from opendance.bridges.security import is_loopback, require_token_if_exposed
from opendance.controls import ControlError, ControlState
from opendance.errors import OpenDanceError

TOKEN = "correct-horse"


def test_osc_controls_parse():
    assert parse_osc_control("/opendance/style", ["  waacking "]) == {"style": "waacking"}
    assert parse_osc_control("/opendance/energy", [1]) == {"energy": 1.0}
    assert parse_osc_control("/opendance/steps", [8]) == {"steps": 8}
    assert parse_osc_control("/opendance/refine", [True]) == {"refine": True}
    assert parse_osc_control("/opendance/frozen", [0]) == {"frozen": False}
    assert parse_osc_control("/opendance/traj", [1.0, 2.0, -1, 0.5]) == {
        "traj_path": ((1.0, 2.0), (-1.0, 0.5))}
    assert parse_osc_control("/opendance/traj", []) == {"traj_path": ()}
    assert parse_osc_control("/opendance/keyframe", []) == {"keyframe": None}
    assert parse_osc_control("/opendance/keyframe", [0.1] * 72)["keyframe"] == (0.1,) * 72


@pytest.mark.parametrize("address,args,match", [
    ("/opendance/dance", [1.0], "unknown control address"),
    ("/opendance/energy", [1.5], r"energy must be in \[0.0, 1.0\]"),
    ("/opendance/energy", ["loud"], "energy must be a number"),
    ("/opendance/energy", [], "exactly one argument"),
    ("/opendance/energy", [float("nan")], "energy must be in"),
    ("/opendance/steps", [2.5], "whole number"),
    ("/opendance/steps", [99], r"steps must be in \[1, 16\]"),
    ("/opendance/style", [3], "style must be a string"),
    ("/opendance/style", ["x" * 201], "at most 200"),
    ("/opendance/refine", ["yes"], "T/F"),
    ("/opendance/traj", [1.0, 2.0, 3.0], "pairs"),
    ("/opendance/traj", [1.0, 99.0], "traj z must be in"),
    ("/opendance/keyframe", [0.0] * 71, "72 numbers"),
    ("/opendance/keyframe", [b"blob"], "72 numbers"),
])
def test_osc_controls_reject_with_clear_errors(address, args, match):
    with pytest.raises(ControlError, match=match):
        parse_osc_control(address, args)


def test_osc_token():
    assert parse_osc_control("/opendance/energy", [TOKEN, 0.2], token=TOKEN) == {"energy": 0.2}
    for args in ([0.2], ["wrong-token", 0.2], []):
        with pytest.raises(ControlError, match="token"):
            parse_osc_control("/opendance/energy", args, token=TOKEN)


def test_ws_controls_parse_and_reject():
    assert parse_ws_control({"energy": 0.25, "traj": [[0, 1]], "keyframe": None}) == {
        "energy": 0.25, "traj_path": ((0.0, 1.0),), "keyframe": None}
    for bad, match in [({}, "non-empty"), ([1], "non-empty"), ({"speed": 1}, "unknown control"),
                       ({"keyframe": "1" * 72}, "72 numbers"), ({"traj": "ab"}, "pairs"),
                       ({"steps": "4"}, "whole number"), ({"energy": True}, "must be a number"),
                       ({"frozen": "no"}, "true/false")]:
        with pytest.raises(ControlError, match=match):
            parse_ws_control(bad)


@pytest.mark.parametrize("key,value", [
    ("energy", "0.5"), ("energy", True), ("energy", 1.5), ("steps", 2.5), ("steps", "4"), ("style", 3),
    ("refine", "yes"), ("frozen", 2), ("traj_path", [("1", 2.0)]), ("traj_path", [(1.0, 99.0)]),
    ("keyframe", [0.0] * 71), ("keyframe", ["0.1"] * 72),
])
def test_bridges_leave_every_value_check_to_the_core(key, value):
    """One validator: OSC and WebSocket reject a bad value with the core's own message."""
    with pytest.raises(ControlError) as core:
        ControlState().updated(**{key: value})
    with pytest.raises(ControlError) as ws:
        parse_ws_control({key: value})
    assert str(ws.value) == str(core.value)
    if key == "traj_path":
        args = [c for point in value for c in point]
    else:
        args = list(value) if key == "keyframe" else [value]
    address = next(a for a, k in OSC_ADDRESSES.items() if k == key)
    with pytest.raises(ControlError) as osc:
        parse_osc_control(address, args)
    assert str(osc.value) == str(core.value)


def test_core_controls_take_numpy_numbers_but_not_strings():
    import numpy as np

    s = ControlState().updated(energy=np.float32(0.25), steps=np.int64(6), refine=np.int8(1))
    assert (s.energy, s.steps, s.refine) == (0.25, 6, True) and type(s.steps) is int
    with pytest.raises(ControlError, match="energy must be a number, got str"):
        ControlState().updated(energy="0.25")


def test_binding_policy():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    require_token_if_exposed("127.0.0.1", None, "--x")
    require_token_if_exposed("0.0.0.0", "long-enough-secret", "--x")
    with pytest.raises(OpenDanceError, match="--token"):
        require_token_if_exposed("0.0.0.0", None, "--ws-host")
    with pytest.raises(OpenDanceError, match="at least 8"):
        require_token_if_exposed("127.0.0.1", "short", "--ws-host")


# ---------------------------------------------------------------- fuzz
_json_scalar = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | st.text(max_size=300)
_json = st.recursive(
    _json_scalar,
    lambda c: st.lists(c, max_size=80) | st.dictionaries(st.text(max_size=12), c, max_size=8),
    max_leaves=200)
_osc_arg = (st.integers(-2**31, 2**31 - 1) | st.floats(width=32) | st.text(max_size=250)
            | st.binary(max_size=40) | st.booleans())


def _check_state_accepts(changes):
    state = ControlState().updated(**changes)
    assert set(changes) <= set(CONTROL_KEYS)
    for k, v in changes.items():
        assert getattr(state, k) == v


@settings(max_examples=200, deadline=None)
@given(address=st.sampled_from(list(OSC_ADDRESSES)) | st.text(max_size=30),
       args=st.lists(_osc_arg, max_size=80))
def test_fuzz_osc_parser(address, args):
    try:
        changes = parse_osc_control(address, args)
    except ControlError as exc:
        assert str(exc)
        return
    _check_state_accepts(changes)


@settings(max_examples=200, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(list(CONTROL_KEYS) + ["traj", "x"]), _json, max_size=4)
       | _json)
def test_fuzz_ws_parser(changes):
    try:
        clean = parse_ws_control(changes)
    except ControlError as exc:
        assert str(exc)
        return
    _check_state_accepts(clean)


# ---------------------------------------------------------------- the OSC listener
def _wait(pred, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_osc_listener_rejects_bad_input_and_keeps_serving():
    got = []
    srv = OscControlServer("127.0.0.1", 0, got.append, rate_hz=1000, burst=1000)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        addr = ("127.0.0.1", srv.port)
        for bad in [b"garbage", b"/opendance/energy\x00\x00\x00,f\x00\x00\x00", b"#bundle\x00" + b"\xff" * 20,
                    encode_message("/opendance/energy", ["high"]), encode_message("/opendance/nope", [1.0]),
                    b"/" + b"a" * 9000]:
            tx.sendto(bad, addr)
        tx.sendto(encode_bundle([encode_message("/opendance/energy", [0.9]),
                                 encode_message("/opendance/style", ["krump"])]), addr)
        assert _wait(lambda: len(got) == 2)
        assert got == [{"energy": pytest.approx(0.9)}, {"style": "krump"}]
        assert _wait(lambda: sum(srv.rejected.values()) == 6)
        assert (srv.rejected["malformed"] == 3 and srv.rejected["invalid"] == 2
                and srv.rejected["too large"] == 1)
    finally:
        tx.close()
        srv.close()


def test_osc_listener_flood_is_rate_limited():
    got = []
    srv = OscControlServer("127.0.0.1", 0, got.append, rate_hz=10, burst=20)
    try:
        msg = encode_message("/opendance/energy", [0.5])
        for _ in range(500):  # straight into the handler: deterministic, no socket buffer limits
            srv.handle_datagram(msg, ("test", 0))
        assert len(got) <= 25 and srv.rejected["rate limit"] >= 475
    finally:
        srv.close()


def test_osc_listener_token_and_engine_refusal():
    def refuse(changes):
        raise ControlError("engine says no")
    srv = OscControlServer("127.0.0.1", 0, refuse, token=TOKEN)
    try:
        srv.handle_datagram(encode_message("/opendance/energy", [0.5]))
        srv.handle_datagram(encode_message("/opendance/energy", [TOKEN, 0.5]))
        assert srv.rejected["invalid"] == 1 and srv.rejected["refused"] == 1 and srv.accepted == 1
    finally:
        srv.close()
    with pytest.raises(OpenDanceError, match="--token"):
        OscControlServer("0.0.0.0", 0, refuse)


# ---------------------------------------------------------------- the strict decoder
def test_decoder_reads_python_osc_packets():
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
    from pythonosc.osc_message_builder import OscMessageBuilder

    from opendance.bridges.osc_wire import decode_packet
    m = OscMessageBuilder("/opendance/traj")
    for v in (1.5, -2.0, 3.0, 4.0):
        m.add_arg(v)
    m2 = OscMessageBuilder("/opendance/style")
    m2.add_arg("house")
    m2.add_arg(7)
    m2.add_arg(b"\x01\x02\x03\x04\x05")
    m2.add_arg(True)
    b = OscBundleBuilder(IMMEDIATELY)
    b.add_content(m.build())
    b.add_content(m2.build())
    assert decode_packet(b.build().dgram) == [
        ("/opendance/traj", [1.5, -2.0, 3.0, 4.0]),
        ("/opendance/style", ["house", 7, b"\x01\x02\x03\x04\x05", True])]


@pytest.mark.parametrize("data", [
    b"/opendance/energy\x00\x00\x00,f\x00\x00\x00",           # float missing (python-osc reads 0.0)
    b"/opendance/energy\x00\x00\x00,f\x00\x00\x00\x3f\x00",   # float cut short
    b"/a\x00\x00,s\x00\x00abc",                                # unterminated string
    b"/a\x00\x00,b\x00\x00\x00\x00\x00\x10abc\x00",           # blob longer than the packet
    b"/a\x00\x00,f\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",   # bytes left over
    b"/a\x00\x00,q\x00\x00",                                   # unknown tag
    b"#bundle\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x08/a\x00\x00",  # element size too big
    b"hello", b"",
])
def test_decoder_rejects_malformed(data):
    from opendance.bridges.osc_wire import OscDecodeError, decode_packet
    with pytest.raises(OscDecodeError):
        decode_packet(data)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300) | st.builds(lambda a, b: a + b, st.sampled_from(
    [b"/opendance/energy\x00\x00\x00", b"#bundle\x00" + b"\x00" * 8, b"/opendance/traj\x00,ff\x00"]),
    st.binary(max_size=100)))
def test_fuzz_listener_never_raises(data):
    srv = _FUZZ_SERVER
    srv.handle_datagram(data, ("fuzz", 0))


_FUZZ_SERVER = OscControlDispatcher(lambda changes: None, rate_hz=1e9, burst=1e9)
