"""Security: nothing we load executes code; listeners stay on loopback unless a token is
given; inbound messages are bounded in size and rate.

* A static (AST) scan of the package: no ``pickle.load(s)`` / ``Unpickler`` outside the
  AIST++ reader's restricted unpickler, no ``torch.load`` without ``weights_only=True``,
  no ``np.load(..., allow_pickle=True)``, no ``eval`` / ``exec`` / ``marshal`` /
  ``yaml.load`` / ``shelve`` / ``dill`` / ``joblib``.
* Malicious files (a pickle whose ``__reduce__`` would create a marker directory; a
  torch pickle renamed .safetensors) are refused and the payload never runs.
* Every listener defaults to 127.0.0.1 and refuses a public bind without a token;
  tokens are checked; oversized and flooding messages are rejected (session-level
  floods: tests/test_faults.py).
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import pickle
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from opendance.errors import OpenDanceError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("opendance", "engine", "realtime", "bridges", "exporters", "training", "kernels",
                "benchmarks")
RESTRICTED_UNPICKLER = "exporters/aistpp.py"   # subclasses pickle.Unpickler, allow-list of NumPy globals


# ---------------------------------------------------------------------- static scan
def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    else:                        # a method of some expression: x().eval() is not eval()
        parts.append("<expr>")
    return ".".join(reversed(parts))


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def unsafe_calls(source: str) -> list[tuple[int, str]]:
    """(line, what) for each unsafe deserialisation / code-execution call in ``source``."""
    out = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                if _dotted(base) in ("pickle.Unpickler", "Unpickler"):
                    out.append((node.lineno, "pickle.Unpickler subclass"))
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        short = name.split(".")[-1]
        if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.load", "marshal.load",
                    "marshal.loads", "shelve.open", "dill.load", "dill.loads", "joblib.load",
                    "pd.read_pickle", "pandas.read_pickle") or name in ("eval", "exec", "compile"):
            out.append((node.lineno, name))
        elif name == "torch.load":
            wo = _kw(node, "weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                out.append((node.lineno, "torch.load without weights_only=True"))
        elif short == "load" and name.split(".")[0] in ("np", "numpy"):
            ap = _kw(node, "allow_pickle")
            if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                out.append((node.lineno, "np.load with allow_pickle"))
        elif name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"):
            loader = _kw(node, "Loader")
            if name != "yaml.load" or loader is None or "Safe" not in _dotted(loader):
                out.append((node.lineno, name))
    return out


def _package_files():
    for d in PACKAGE_DIRS:
        yield from sorted((ROOT / d).rglob("*.py"))


def test_the_scanner_finds_what_it_looks_for():
    bad = ("import pickle, torch, numpy as np, yaml\n"
           "pickle.load(f)\npickle.loads(b)\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
           "np.load(p, allow_pickle=True)\neval('1')\nexec('x=1')\nyaml.load(s)\n"
           "class U(pickle.Unpickler): pass\n")
    found = [w for _, w in unsafe_calls(bad)]
    assert len(found) == 9, found
    good = ("import torch, numpy as np, yaml\ntorch.load(p, weights_only=True)\nnp.load(p)\n"
            "np.load(p, allow_pickle=False)\nyaml.load(s, Loader=yaml.SafeLoader)\n"
            "model.eval()\nbuild().eval()\n")
    assert unsafe_calls(good) == []


def test_no_code_executing_loaders_in_the_package():
    offenders = []
    for p in _package_files():
        rel = p.relative_to(ROOT).as_posix()
        for line, what in unsafe_calls(p.read_text()):
            if rel == RESTRICTED_UNPICKLER and what == "pickle.Unpickler subclass":
                continue
            offenders.append(f"{rel}:{line}: {what}")
    assert offenders == [], "unsafe loading (use safetensors / JSON, or the restricted unpickler):\n" \
        + "\n".join(offenders)


def test_the_restricted_unpickler_is_the_only_unpickler():
    users = [p.relative_to(ROOT).as_posix() for p in _package_files()
             if any(w == "pickle.Unpickler subclass" for _, w in unsafe_calls(p.read_text()))]
    assert users == [RESTRICTED_UNPICKLER]


# ---------------------------------------------------------------------- malicious files
class _Payload:
    """Unpickling this calls os.mkdir(marker): proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _evil_pickle(path: Path, marker: Path) -> Path:
    data = {"smpl_poses": np.zeros((4, 72)), "smpl_trans": np.zeros((4, 3)), "smpl_scaling": _Payload(marker)}
    path.write_bytes(pickle.dumps(data, protocol=4))
    return path


def test_a_malicious_aistpp_pickle_is_refused_without_running_code(tmp_path):
    from opendance.errors import InputError
    from opendance.exporters.aistpp import read_aistpp
    from opendance.exporters.formats import load_motion

    marker = tmp_path / "pwned"
    evil = _evil_pickle(tmp_path / "evil.pkl", marker)
    with pytest.raises(InputError, match="refusing"):
        read_aistpp(evil)
    with pytest.raises(InputError):
        load_motion(evil)
    assert not marker.exists(), "the pickle's payload ran"


def test_the_convert_command_refuses_a_malicious_pickle_with_one_line(tmp_path, capsys):
    from opendance.commands.main import main

    marker = tmp_path / "pwned"
    evil = _evil_pickle(tmp_path / "evil.pkl", marker)
    rc = main(["convert", str(evil), str(tmp_path / "out.bvh")])
    assert rc == 2 and not marker.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refusing" in err[0]


def test_a_benign_aistpp_pickle_still_loads(tmp_path):
    from opendance.exporters.aistpp import read_aistpp
    p = tmp_path / "ok.pkl"
    rng = np.random.default_rng(0)
    p.write_bytes(pickle.dumps({"smpl_poses": rng.normal(0, 0.1, (10, 72)), "smpl_trans": np.zeros((10, 3)),
                                "smpl_scaling": np.ones(1)}, protocol=2))
    assert read_aistpp(p).n_frames == 10


def test_training_aistpp_reader_does_not_run_pickled_code(tmp_path):
    from opendance.training.datasets import read_aistpp_motion

    marker = tmp_path / "pwned"
    evil = _evil_pickle(tmp_path / "evil.pkl", marker)
    with contextlib.suppress(Exception):      # refusing it with an error is the right outcome
        read_aistpp_motion(evil)
    assert not marker.exists(), "the pickle's payload ran"


def test_a_torch_pickle_posing_as_a_checkpoint_is_refused(tmp_path):
    import torch

    from opendance.engine.checkpoint import load_checkpoint

    marker = tmp_path / "pwned"
    ckpt = tmp_path / "model.safetensors"
    torch.save({"w": torch.zeros(2), "x": _Payload(marker)}, ckpt)
    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(OpenDanceError, match="safetensors"):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_a_truncated_or_lying_safetensors_header_is_a_clean_error(tmp_path):
    import torch

    from opendance.engine.checkpoint import load_checkpoint, save_checkpoint

    p = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.ones(8)}, {"kind": "x"})
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(OpenDanceError):
        load_checkpoint(p)
    p.write_bytes((10 ** 12).to_bytes(8, "little") + b"{}")      # claims a 1 TB header
    with pytest.raises(OpenDanceError):
        load_checkpoint(p)


def test_checkpoint_configs_are_plain_json(tmp_path):
    import torch

    from opendance.engine.checkpoint import load_checkpoint, save_checkpoint

    p = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.ones(2)}, {"kind": "x"})
    p.with_suffix(".json").write_text("{'kind': __import__('os').getcwd()}")   # Python, not JSON
    with pytest.raises(OpenDanceError, match="invalid JSON"):
        load_checkpoint(p)


def test_an_mct_config_with_unknown_keys_is_a_clean_error(tmp_path):
    from opendance.engine.mct import MCTConfig, build_mct, load_mct, save_mct
    from opendance.engine.music.features import FEATURE_DIM, SPECTRAL_DIM

    m = build_mct("tiny", music_dim=FEATURE_DIM, spectral_dim=SPECTRAL_DIM, n_motion_codes=8, n_traj_codes=8,
                  n_kpt_codes=8)
    p = save_mct(m, tmp_path / "mct.safetensors")
    cfg = json.loads(p.with_suffix(".json").read_text())
    cfg["mct"]["__class__"] = "os.system"
    p.with_suffix(".json").write_text(json.dumps(cfg))
    with pytest.raises(OpenDanceError):
        load_mct(p)
    assert MCTConfig  # imported for the reader: the config class is a dataclass, no code hooks


def test_convert_help_says_pickles_are_trusted_data(capsys):
    from opendance.commands.main import main
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    out = capsys.readouterr().out.lower()
    assert "pickle" in out and ("trust" in out or "chose" in out)


# ---------------------------------------------------------------------- listeners
def _all_actions(parser):
    import argparse
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                for path, act in _all_actions(sub):
                    yield f"{name} {path}".strip(), act
        else:
            yield "", a


def test_every_cli_listener_defaults_to_loopback():
    from opendance.bridges.security import is_loopback
    from opendance.bridges.udp import parse_host_port
    from opendance.commands.main import build_parser

    seen = 0
    for cmd, act in _all_actions(build_parser()):
        dest = act.dest.lower()
        if "host" in dest or "bind" in dest or "listen" in dest:
            seen += 1
            assert act.default is None or is_loopback(str(act.default)), f"{cmd} --{act.dest} = {act.default}"
        if dest == "control_osc":
            seen += 1
            assert is_loopback(parse_host_port(act.const)[0]), f"{cmd} --control-osc const {act.const}"
    assert seen >= 2, "no listener options found: did the CLI change?"
    assert is_loopback(parse_host_port("9001")[0])           # a bare port binds loopback


def test_servers_bind_loopback_by_default():
    from opendance.bridges.control import OscControlServer
    from opendance.bridges.ws_server import WsServer

    ws = WsServer(0)
    ctl = OscControlServer("127.0.0.1", 0, lambda c: None)
    try:
        assert ws.host == "127.0.0.1" and ctl.host == "127.0.0.1"
    finally:
        ws.close()
        ctl.close()
    import inspect
    assert inspect.signature(WsServer).parameters["host"].default == "127.0.0.1"


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_public_binds_need_a_token(host):
    from opendance.bridges.control import OscControlServer
    from opendance.bridges.ws_server import WsServer

    with pytest.raises(OpenDanceError, match="token"):
        WsServer(0, host=host)
    with pytest.raises(OpenDanceError, match="token"):
        OscControlServer(host, 0, lambda c: None)
    with pytest.raises(OpenDanceError, match="8 characters"):
        WsServer(0, host=host, token="short")


def test_a_public_websocket_bind_with_a_token_checks_it():
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from opendance.bridges.ws_server import WsServer

    ws = WsServer(0, host="0.0.0.0", token="correct-horse-battery")
    try:
        with pytest.raises(InvalidStatus) as e:
            connect(f"ws://127.0.0.1:{ws.port}/ws").close()
        assert e.value.response.status_code == 401
        with pytest.raises(InvalidStatus):
            connect(f"ws://127.0.0.1:{ws.port}/ws?token=wrong-horse-battery").close()
        with connect(f"ws://127.0.0.1:{ws.port}/ws?token=correct-horse-battery") as c:
            assert json.loads(c.recv(timeout=5))["type"] == "hello"
    finally:
        ws.close()


def test_osc_control_with_a_token_rejects_messages_without_it():
    from support.faults import osc_message

    from opendance.bridges.control import OscControlServer

    got = []
    ctl = OscControlServer("0.0.0.0", 0, got.append, token="correct-horse-battery")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(osc_message("/opendance/energy", 0.9), ("127.0.0.1", ctl.port))
        s.sendto(osc_message("/opendance/energy", "wrong-horse-battery", 0.9), ("127.0.0.1", ctl.port))
        s.sendto(osc_message("/opendance/energy", "correct-horse-battery", 0.8), ("127.0.0.1", ctl.port))
        deadline = time.monotonic() + 3
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        s.close()
        ctl.close()
    assert got == [{"energy": pytest.approx(0.8)}]           # OSC floats are float32
    assert ctl.rejected["invalid"] == 2


# ---------------------------------------------------------------------- bounds
def test_oversized_messages_are_rejected():
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from opendance.bridges.control import MAX_OSC_DATAGRAM, OscControlDispatcher
    from opendance.bridges.ws_server import WsServer

    d = OscControlDispatcher(lambda c: pytest.fail("an oversized datagram was dispatched"))
    d.handle_datagram(b"\x00" * (MAX_OSC_DATAGRAM + 1))
    assert d.rejected["too large"] == 1

    ws = WsServer(0, max_message_bytes=4096)
    try:
        with connect(f"ws://127.0.0.1:{ws.port}/ws") as c:
            c.recv(timeout=5)                               # hello
            c.send("x" * 5000)
            with pytest.raises(ConnectionClosed) as e:
                for _ in range(10):
                    c.recv(timeout=5)
            assert e.value.rcvd is not None and e.value.rcvd.code == 1009
    finally:
        ws.close()


def test_control_values_are_bounded():
    from opendance.controls import MAX_PATH_POINTS, MAX_TEXT_CHARS, ControlError, ControlState

    s = ControlState()
    with pytest.raises(ControlError):
        s.updated(style="x" * (MAX_TEXT_CHARS + 1))
    with pytest.raises(ControlError):
        s.updated(traj_path=[(0.0, 0.0)] * (MAX_PATH_POINTS + 1))
    with pytest.raises(ControlError):
        s.updated(keyframe=[0.0] * 73)
    for bad in (float("nan"), float("inf"), 1e308, -1):
        with pytest.raises(ControlError):
            s.updated(energy=bad)
    with pytest.raises(ControlError):
        s.updated(steps=10 ** 9)


def test_osc_rate_limit_bounds_what_reaches_the_engine():
    from support.faults import osc_message

    from opendance.bridges.control import OscControlDispatcher

    got = []
    d = OscControlDispatcher(got.append, rate_hz=100.0, burst=200.0)
    msg = osc_message("/opendance/energy", 0.5)
    for _ in range(5000):                       # far faster than 100/s
        d.handle_datagram(msg)
    assert 200 <= len(got) <= 260
    assert d.rejected["rate limit"] == 5000 - len(got)
