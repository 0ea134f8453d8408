"""The OSC control listener survives any datagram and its rate limit counts messages."""

from __future__ import annotations

import math
import socket
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opendance.bridges.control import OscControlDispatcher, OscControlServer, parse_osc_control
from opendance.bridges.osc_wire import encode_bundle, encode_message
from opendance.controls import ControlError, ControlState

pytestmark = pytest.mark.timeout(60)
OSC_CHARS = st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))   # encodable OSC strings


def _float_message(address: str, value: float) -> bytes:
    """An OSC message with one float32 argument, any bit pattern (NaN, inf included)."""
    addr = address.encode() + b"\0"
    addr += b"\0" * (-len(addr) % 4)
    return addr + b",f\0\0" + struct.pack(">f", value)


def _wait(pred, timeout=3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("key", ["steps", "energy", "refine", "frozen"])
def test_non_finite_control_values_are_refused(key, value):
    with pytest.raises(ControlError):
        ControlState().updated(**{key: value})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 3e38])
def test_listener_survives_non_finite_steps_and_keeps_serving(value):
    got = []
    srv = OscControlServer("127.0.0.1", 0, got.append, rate_hz=1000, burst=1000)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        addr = ("127.0.0.1", srv.port)
        for address in ("/opendance/steps", "/opendance/energy", "/opendance/traj", "/opendance/keyframe"):
            tx.sendto(_float_message(address, value), addr)
        tx.sendto(encode_message("/opendance/steps", [6]), addr)    # a later control still applies
        assert _wait(lambda: got == [{"steps": 6}])
        assert srv.rejected["invalid"] == 4
    finally:
        tx.close()
        srv.close()


def test_rate_limit_counts_messages_not_datagrams():
    got = []
    srv = OscControlDispatcher(got.append, rate_hz=1.0, burst=5)
    bundle = encode_bundle([encode_message("/opendance/energy", [i / 40]) for i in range(32)])
    srv.handle_datagram(bundle, ("test", 0))
    assert len(got) == 5 and srv.rejected["rate limit"] >= 1


def test_keyframe_and_traj_reject_nan_and_inf():
    for bad in (math.nan, math.inf):
        with pytest.raises(ControlError):
            parse_osc_control("/opendance/traj", [0.0, bad])
        with pytest.raises(ControlError):
            parse_osc_control("/opendance/keyframe", [0.0] * 71 + [bad])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["/opendance/steps", "/opendance/energy", "/opendance/refine", "/opendance/frozen",
                        "/opendance/traj", "/opendance/keyframe", "/opendance/style"]),
       st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                          st.integers(-2**31, 2**31 - 1), st.booleans(),
                          st.text(OSC_CHARS, max_size=8)), max_size=6))
def test_fuzz_every_address_with_any_values_never_raises(address, args):
    got = []
    srv = OscControlDispatcher(got.append, rate_hz=1e6, burst=1e6)
    srv.handle_datagram(encode_message(address, args), ("fuzz", 0))
    for changes in got:                           # whatever was accepted is finite and valid
        ControlState().updated(**changes)
