"""``opendance doctor``: every check reports, never crashes; the model checksum is right."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

from opendance.commands import doctor


def test_doctor_json_lists_every_piece(capsys):
    from opendance.commands.main import main

    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = {c["name"] for c in report["checks"]}
    for piece in ("python", "torch", "gpu / cuda", "nvrtc (cuda-python)", "tensorrt", "onnx runtime",
                  "portaudio", "audio devices", "pulseaudio", "default model"):
        assert piece in names
    for c in report["checks"]:
        assert c["status"] in ("ok", "missing", "warn")
        assert c["detail"]
        if c["status"] == "missing":
            assert c["disables"], f"{c['name']} is missing but does not say what that disables"
    assert next(c for c in report["checks"] if c["name"] == "python")["status"] == "ok"


def test_model_checksum_and_mismatch(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "weights_dir", lambda: tmp_path)
    none = doctor.check_default_model()
    assert none.status == "missing" and "not bundled yet" in none.detail
    blob = b"\x00\x01weights" * 1000
    (tmp_path / "default.safetensors").write_bytes(blob)
    digest = hashlib.sha256(blob).hexdigest()
    unchecked = doctor.check_default_model()      # no .sha256 shipped: reported, not silently ok
    assert unchecked.status == "warn" and digest in unchecked.detail and "no .sha256" in unchecked.detail
    (tmp_path / "default.safetensors.sha256").write_text(digest + "  default.safetensors\n")
    ok = doctor.check_default_model()
    assert ok.status == "ok" and "matches .sha256" in ok.detail
    (tmp_path / "default.safetensors.sha256").write_text("0" * 64 + "  default.safetensors\n")
    bad = doctor.check_default_model()      # refused on load, so the learned dancer is missing
    assert bad.status == "missing" and "MISMATCH" in bad.detail and "--write-checksums" in bad.fix


def test_a_crashing_check_is_reported_not_raised():
    def check_broken():
        raise RuntimeError("boom")
    out = doctor.run_checks((doctor.check_python, check_broken))
    assert [c.status for c in out] == ["ok", "warn"] and "boom" in out[1].detail
    text = doctor.format_report(out)
    assert "1 of 2 checks ok" in text


def test_doctor_runs_as_a_command():
    r = subprocess.run([sys.executable, "-m", "opendance", "doctor", "--help"],
                       check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "TensorRT" in r.stdout


def test_missing_tool_is_reported():
    rc, out = doctor._run_tool(["definitely-not-a-tool-opendance"])
    assert rc == 127 and "not found" in out
