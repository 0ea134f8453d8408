"""CUDA kernels: they compile for sm_90 without a GPU (NVRTC, else nvcc); their arithmetic
(the shared per-frame code, run on the CPU through the host harness) matches the PyTorch
reference and its autograd gradients; the dispatcher falls back to the reference off CUDA.
On a CUDA machine the kernels themselves are checked against the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from opendance.kernels import dispatch, nvrtc
from opendance.kernels.fk import foot_slide_loss, forward_kinematics, forward_kinematics_6d
from opendance.rotations_torch import sixd_to_matrix
from opendance.skeleton import Skeleton, smpl_skeleton

FEET = (7, 8, 10, 11)
SK = smpl_skeleton()
PAR = np.array(SK.parents)


def _nvrtc_ok() -> tuple[bool, str]:
    return nvrtc.nvrtc_status()


# ------------------------------------------------------------------ compilation (no GPU)
@pytest.mark.parametrize("without_nvrtc", [False, True], ids=["nvrtc", "nvcc-fallback"])
def test_sources_compile_for_sm90(tmp_path, monkeypatch, without_nvrtc):
    """NVRTC when cuda-python and libnvrtc load, else nvcc, else skip (with the reason)."""
    monkeypatch.setenv("OPENDANCE_CACHE_DIR", str(tmp_path))
    if without_nvrtc:
        monkeypatch.setattr(nvrtc, "nvrtc_status", lambda: (False, "simulated: no libnvrtc"))
    ok, why = _nvrtc_ok()
    if ok:
        built = nvrtc.compile_kernels("sm_90")
        assert built.compiler.startswith("nvrtc") and not built.from_cache
        assert built.cubin[:4] == b"\x7fELF"  # a cubin is an ELF image
        for name in nvrtc.KERNEL_NAMES:
            assert name.encode() in built.cubin
        again = nvrtc.compile_kernels("sm_90")
        assert again.from_cache and again.cubin == built.cubin and again.digest == built.digest
        return
    if nvrtc.find_nvcc() is None:
        pytest.skip(f"neither NVRTC ({why}) nor nvcc is available")
    out = nvrtc.compile_with_nvcc("sm_90", tmp_path / "fk.cubin")
    assert out.read_bytes()[:4] == b"\x7fELF"


def test_cache_key_depends_on_arch_and_capacity(tmp_path, monkeypatch):
    ok, why = _nvrtc_ok()
    if not ok:
        pytest.skip(why)
    monkeypatch.setenv("OPENDANCE_CACHE_DIR", str(tmp_path))
    a = nvrtc.compile_kernels("sm_80")
    b = nvrtc.compile_kernels("sm_80", max_joints=32)
    assert a.digest != b.digest
    assert len(list((tmp_path / "kernels").glob("*.cubin"))) == 2
    with pytest.raises(ValueError):
        nvrtc.compile_kernels("sm_80", max_joints=33)


@pytest.mark.skipif(nvrtc.find_nvcc() is None, reason="nvcc not installed")
def test_nvcc_emits_ptx(tmp_path):
    out = nvrtc.compile_with_nvcc("sm_90", tmp_path / "fk.ptx", ptx=True)
    text = out.read_text()
    assert ".target sm_90" in text and ".entry od_fk_backward_6d" in text


def test_bad_source_reports_the_compiler_log(tmp_path, monkeypatch):
    ok, why = _nvrtc_ok()
    if not ok:
        pytest.skip(why)
    bad = tmp_path / "cuda"
    bad.mkdir()
    (bad / "fk_kernels.cu").write_text('extern "C" __global__ void k() { undefined_symbol(); }\n')
    monkeypatch.setattr(nvrtc, "CUDA_DIR", bad)
    monkeypatch.setenv("OPENDANCE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(nvrtc.KernelUnavailable, match="undefined_symbol"):
        nvrtc.compile_kernels("sm_90")


# ------------------------------------------------------------------ kernel math on the CPU
@pytest.fixture(scope="module")
def hc():
    from support import host_check

    try:
        host_check.load_harness()
    except nvrtc.KernelUnavailable as exc:
        pytest.skip(str(exc))
    return host_check


def _rand(shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).requires_grad_(True)


@pytest.mark.parametrize("n,seed", [(1, 0), (7, 1), (130, 2)])
@pytest.mark.parametrize("joints", [None, FEET, (15,), (0,)])
def test_fk_6d_forward_and_backward_match_reference(hc, n, seed, joints):
    r6, tr = _rand((n, 24, 6), seed), _rand((n, 3), seed + 100)
    sel = list(range(24)) if joints is None else list(joints)
    ref = forward_kinematics_6d(r6, tr)[:, sel]
    out = hc.fk_forward(r6.detach().numpy(), tr.detach().numpy(), SK.offsets, PAR, joints)
    np.testing.assert_allclose(out, ref.detach().numpy(), atol=2e-5)
    go = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed + 7), dtype=torch.float64)
    gr, gt = torch.autograd.grad(ref, (r6, tr), go)
    hr, ht = hc.fk_backward(r6.detach().numpy(), tr.detach().numpy(), SK.offsets, PAR, go.numpy(), joints)
    scale = max(1.0, float(gr.abs().max()))
    np.testing.assert_allclose(hr, gr.numpy(), atol=1e-5 * scale)
    np.testing.assert_allclose(ht, gt.numpy(), atol=1e-5)
    if joints == (15,):  # head: the leg joints get exactly zero gradient
        assert np.all(hr[:, [1, 2, 4, 5, 7, 8, 10, 11]] == 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_fk_matrix_path_matches_reference(hc, seed):
    g = torch.Generator().manual_seed(seed)
    rot = sixd_to_matrix(torch.randn(9, 24, 6, generator=g, dtype=torch.float64)).requires_grad_(True)
    tr = _rand((9, 3), seed + 3)
    ref = forward_kinematics(rot, tr)
    out = hc.fk_forward(rot.detach().numpy(), tr.detach().numpy(), SK.offsets, PAR)
    np.testing.assert_allclose(out, ref.detach().numpy(), atol=2e-5)
    go = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    gr, gt = torch.autograd.grad(ref, (rot, tr), go)
    hr, ht = hc.fk_backward(rot.detach().numpy(), tr.detach().numpy(), SK.offsets, PAR, go.numpy())
    np.testing.assert_allclose(hr, gr.numpy(), atol=2e-5)
    np.testing.assert_allclose(ht, gt.numpy(), atol=1e-5)


def test_fk_handles_degenerate_6d(hc):
    """Zero / parallel 6D columns hit the 1e-8 clamp like the reference (finite, equal)."""
    r6 = torch.zeros(3, 24, 6, dtype=torch.float64)
    r6[0, :, 0] = 1.0
    r6[0, :, 3] = 1.0           # parallel columns: u = 0
    r6[1] = 0.0                 # all zero
    r6[2, :, 0] = 1.0
    r6[2, :, 4] = 1.0           # identity
    r6.requires_grad_(True)
    tr = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    ref = forward_kinematics_6d(r6, tr)
    out = hc.fk_forward(r6.detach().numpy(), tr.detach().numpy(), SK.offsets, PAR)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, ref.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(out[2], SK.rest_joints(), atol=1e-5)


def test_fk_other_skeleton(hc):
    sk = Skeleton(("a", "b", "c", "d"), (-1, 0, 1, 0),
                  np.array([[0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 2]], float))
    r6, tr = _rand((5, 4, 6), 3), _rand((5, 3), 4)
    ref = forward_kinematics_6d(r6, tr, sk)
    out = hc.fk_forward(r6.detach().numpy(), tr.detach().numpy(), sk.offsets, np.array(sk.parents))
    np.testing.assert_allclose(out, ref.detach().numpy(), atol=2e-5)


@pytest.mark.parametrize("kw", [{}, {"contact_speed_mps": 6.0, "contact_height_m": 0.1}, {"floor_y": -0.05}])
@pytest.mark.parametrize("shape", [(1, 2, 24, 3), (3, 41, 24, 3), (2, 17, 4, 3)])
def test_foot_slide_matches_reference(hc, kw, shape):
    joints = _rand(shape, shape[1], scale=0.1)
    feet = FEET if shape[2] == 24 else (0, 1, 2, 3)
    loss = foot_slide_loss(joints, 30.0, feet, **kw)
    (grad,) = torch.autograd.grad(loss, joints)
    h_loss, h_grad = hc.foot_slide(joints.detach().numpy(), 30.0, feet, **kw)
    assert h_loss == pytest.approx(float(loss.detach()), rel=1e-5, abs=1e-9)
    np.testing.assert_allclose(h_grad, grad.numpy(), atol=1e-6 * max(1.0, float(grad.abs().max())))
    if shape[1] > 2 and "floor_y" not in kw:
        assert float(loss.detach()) > 0  # the case must exercise contacts


def _signatures(path):
    import re

    text = path.read_text()
    out = {}
    for m in re.finditer(r"(?:__global__ )?(?:void|double) (od_\w+)\(([^)]*)\)", text):
        params = [" ".join(p.split()[:-1]).replace("const ", "") for p in m.group(2).split(",")]
        out[m.group(1)] = params
    return out


def test_host_harness_mirrors_the_kernel_signatures():
    """The CPU harness must keep the kernels' argument lists (the emulated-launch test and
    the tests above rely on it); only the loss / its backward differ, as documented."""
    kern = _signatures(nvrtc.CUDA_DIR / "fk_kernels.cu")
    host = _signatures(nvrtc.CUDA_DIR / "host_harness.cpp")
    assert set(nvrtc.KERNEL_NAMES) <= set(kern) and set(nvrtc.KERNEL_NAMES) <= set(host)
    for name in nvrtc.KERNEL_NAMES:
        k, h = kern[name], host[name]
        if name == "od_fs_loss":
            k = k[:3] + k[4:]  # the kernel writes block partials, the harness returns the sum
        if name == "od_fs_backward":
            k = k[:3] + ["float"] + k[4:]  # the kernel reads the incoming gradient through a pointer
        assert k == h, name


def test_need_mask_closes_over_ancestors(hc):
    m = hc.need_mask(PAR, [10])  # L_FOOT: 10 <- 7 <- 4 <- 1 <- 0
    assert m == sum(1 << j for j in (0, 1, 4, 7, 10))


# ------------------------------------------------------------------ dispatcher (CPU)
def test_dispatch_uses_reference_off_cuda(monkeypatch):
    monkeypatch.delenv(dispatch.MODE_ENV, raising=False)
    r6, tr = _rand((2, 6, 24, 6), 0).detach().float(), _rand((2, 6, 3), 1).detach().float()
    assert dispatch.choose_path(r6, tr) == "reference"
    j = dispatch.forward_kinematics_6d(r6, tr)
    torch.testing.assert_close(j, forward_kinematics_6d(r6, tr))
    torch.testing.assert_close(dispatch.foot_slide_loss(j, 30.0), foot_slide_loss(j, 30.0))
    torch.testing.assert_close(dispatch.foot_slide_loss_6d(r6, tr, 30.0), foot_slide_loss(j, 30.0))
    rot = sixd_to_matrix(r6)
    torch.testing.assert_close(dispatch.foot_slide_loss_fk(rot, tr, 30.0), foot_slide_loss(j, 30.0))
    pos, grot = dispatch.forward_kinematics(rot, tr, return_global_rot=True)
    assert pos.shape == (2, 6, 24, 3) and grot.shape == (2, 6, 24, 3, 3)


def test_dispatch_mode_env(monkeypatch):
    t = torch.zeros(2, 24, 3)
    monkeypatch.setenv(dispatch.MODE_ENV, "reference")
    assert dispatch.choose_path(t) == "reference"
    monkeypatch.setenv(dispatch.MODE_ENV, "bogus")
    with pytest.raises(ValueError, match="OPENDANCE_KERNELS"):
        dispatch.choose_path(t)


class _FakeCudaTensor:
    """Just the attributes ``choose_path`` reads, as a CUDA tensor would have them."""

    def __init__(self, dtype=torch.float32):
        self.is_cuda, self.device, self.dtype = True, torch.device("cuda", 0), dtype


def test_dispatch_policy_for_cuda_tensors(monkeypatch):
    x = _FakeCudaTensor()
    monkeypatch.delenv(dispatch.MODE_ENV, raising=False)
    monkeypatch.setattr(dispatch, "kernels_status", lambda device=None: (True, ""))
    assert dispatch.choose_path(x, x) == "cuda"
    assert dispatch.choose_path(x, _FakeCudaTensor(torch.float64)) == "reference"  # kernels are float32
    monkeypatch.setattr(dispatch, "kernels_status", lambda device=None: (False, "no libnvrtc"))
    assert dispatch.choose_path(x) == "reference"
    monkeypatch.setenv(dispatch.MODE_ENV, "cuda")
    with pytest.raises(nvrtc.KernelUnavailable, match="no libnvrtc"):
        dispatch.choose_path(x)


def test_cuda_functions_refuse_cpu_tensors():
    from opendance.kernels.fk_cuda import KernelUnsupported, forward_kinematics_6d_cuda

    with pytest.raises(KernelUnsupported, match="CUDA"):
        forward_kinematics_6d_cuda(torch.zeros(2, 24, 6), torch.zeros(2, 3))


# ------------------------------------------------------------------ on a GPU
def _cuda_ready() -> tuple[bool, str]:
    if not torch.cuda.is_available():
        return False, "no CUDA device (this machine has none; run benchmarks/gpu_check.py on a GPU)"
    return dispatch.kernels_status("cuda")


_GPU_OK, _GPU_WHY = _cuda_ready()
gpu = pytest.mark.skipif(not _GPU_OK, reason=_GPU_WHY or "CUDA kernels unavailable")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (3, 17), (8, 120), (64, 256)])
def test_gpu_fk_and_grad_match_reference(shape):
    from opendance.kernels.fk_cuda import forward_kinematics_6d_cuda

    g = torch.Generator(device="cuda").manual_seed(sum(shape))
    r6 = torch.randn(shape + (24, 6), device="cuda", generator=g).requires_grad_(True)
    tr = torch.randn(shape + (3,), device="cuda", generator=g).requires_grad_(True)
    out = forward_kinematics_6d_cuda(r6, tr)
    r64, t64 = r6.detach().double().requires_grad_(True), tr.detach().double().requires_grad_(True)
    ref = forward_kinematics_6d(r64, t64)
    torch.testing.assert_close(out.double(), ref, atol=3e-5, rtol=1e-5)
    go = torch.randn_like(out)
    ga, gb = torch.autograd.grad(out, (r6, tr), go)
    ra, rb = torch.autograd.grad(ref, (r64, t64), go.double())
    torch.testing.assert_close(ga.double(), ra, atol=1e-4 * max(1.0, float(ra.abs().max())), rtol=1e-4)
    torch.testing.assert_close(gb.double(), rb, atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("shape", [(1, 2), (4, 33), (16, 300)])
def test_gpu_fused_foot_slide_matches_reference(shape):
    from opendance.kernels.fk_cuda import foot_slide_loss_6d_cuda

    g = torch.Generator(device="cuda").manual_seed(shape[1])
    r6 = (torch.randn(shape + (24, 6), device="cuda", generator=g)).requires_grad_(True)
    tr = (torch.randn(shape + (3,), device="cuda", generator=g) * 0.05).requires_grad_(True)
    loss = foot_slide_loss_6d_cuda(r6, tr, 30.0, contact_height_m=0.2)
    # float32 reference: contacts are thresholds, float64 joints may cross one differently.
    r64, t64 = r6.detach().clone().requires_grad_(True), tr.detach().clone().requires_grad_(True)
    ref = foot_slide_loss(forward_kinematics_6d(r64, t64), 30.0, contact_height_m=0.2)
    assert float(ref) > 0
    assert float(loss) == pytest.approx(float(ref), rel=1e-4, abs=1e-7)
    ga, gb = torch.autograd.grad(loss, (r6, tr))
    ra, rb = torch.autograd.grad(ref, (r64, t64))
    torch.testing.assert_close(ga.double(), ra, atol=1e-4 * max(1e-3, float(ra.abs().max())), rtol=1e-3)
    torch.testing.assert_close(gb.double(), rb, atol=1e-4 * max(1e-3, float(rb.abs().max())), rtol=1e-3)


@pytest.mark.gpu
@gpu
def test_gpu_kernels_run_on_the_current_stream_and_in_graphs():
    from opendance.kernels.fk_cuda import forward_kinematics_6d_cuda

    r6 = torch.randn(4, 64, 24, 6, device="cuda")
    tr = torch.randn(4, 64, 3, device="cuda")
    expect = forward_kinematics_6d(r6, tr)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        out = forward_kinematics_6d_cuda(r6, tr)
    side.synchronize()
    torch.testing.assert_close(out, expect, atol=3e-5, rtol=1e-5)
    graph = torch.cuda.CUDAGraph()
    forward_kinematics_6d_cuda(r6, tr)  # warm-up: load + tables
    with torch.cuda.graph(graph):
        static = forward_kinematics_6d_cuda(r6, tr)
    r6.copy_(torch.randn_like(r6))
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(static, forward_kinematics_6d(r6, tr), atol=3e-5, rtol=1e-5)


# ------------------------------------------------------------------ autograd glue, emulated launches
class _EmulatedLaunches:
    """Stands in for ``fk_cuda._launch`` on CPU tensors: each kernel launch runs the host
    harness (the same per-frame code) with the same argument list, so the autograd
    Functions' shapes, pointers and argument order are exercised without a GPU."""

    def __init__(self, lib):
        self.lib = lib
        self.names: list[str] = []

    def __call__(self, ks, name, grid, block, *args):
        import ctypes

        self.names.append(name)
        fn = getattr(self.lib, name)
        if name == "od_fs_loss":  # the harness returns the sum; the kernel writes block partials
            joints, feet, floor, partial, *rest = args
            cargs = self._convert(fn.argtypes, (joints, feet, floor, *rest))
            total = fn(*cargs)
            for i in range(grid):
                ctypes.c_float.from_address(partial + 4 * i).value = total if i == 0 else 0.0
            return
        if name == "od_fs_backward":  # the kernel reads the incoming gradient from the device
            joints, feet, floor, grad_ptr, *rest = args
            g = ctypes.c_float.from_address(grad_ptr).value
            fn(*self._convert(fn.argtypes, (joints, feet, floor, np.float32(g), *rest)))
            return
        fn(*self._convert(fn.argtypes, args))

    @staticmethod
    def _convert(argtypes, args):
        import ctypes

        out = []
        for t, a in zip(argtypes, args, strict=True):
            if isinstance(a, int) and not isinstance(a, np.integer):
                out.append(ctypes.cast(ctypes.c_void_p(a), t))  # a device pointer, here host memory
            else:
                out.append(a.item() if isinstance(a, np.generic) else a)
        return out


@pytest.fixture
def emulated(hc, monkeypatch):
    from opendance.kernels import fk_cuda

    emu = _EmulatedLaunches(hc.load_harness())
    fake = nvrtc.LoadedKernels(0, "host", nvrtc.DEFAULT_MAX_JOINTS, {}, None, None)
    monkeypatch.setattr(fk_cuda, "_launch", emu)
    monkeypatch.setattr(fk_cuda, "kernels_for", lambda device, n_joints=24: fake)
    monkeypatch.setattr(fk_cuda, "_check_float32_cuda", lambda *t: None)
    monkeypatch.setattr(fk_cuda, "_int_table", lambda idx, values: torch.tensor(values, dtype=torch.int32))
    monkeypatch.setattr(fk_cuda, "_default_offsets",
                        lambda idx: torch.tensor(SK.offsets, dtype=torch.float32))
    return emu


def test_autograd_functions_through_emulated_launches(emulated):
    from opendance.kernels import fk_cuda

    g = torch.Generator().manual_seed(5)
    r6 = torch.randn(2, 9, 24, 6, generator=g).requires_grad_(True)
    tr = (torch.randn(2, 9, 3, generator=g) * 0.05).requires_grad_(True)
    out = fk_cuda.forward_kinematics_6d_cuda(r6, tr)
    ref_r6, ref_tr = r6.detach().clone().requires_grad_(True), tr.detach().clone().requires_grad_(True)
    ref = forward_kinematics_6d(ref_r6, ref_tr)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-5)
    go = torch.randn(out.shape, generator=g)
    ga, gb = torch.autograd.grad(out, (r6, tr), go)
    ra, rb = torch.autograd.grad(ref, (ref_r6, ref_tr), go)
    torch.testing.assert_close(ga, ra, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gb, rb, atol=1e-4, rtol=1e-4)

    loss = fk_cuda.foot_slide_loss_6d_cuda(r6, tr, 30.0, contact_height_m=0.3)
    lref = foot_slide_loss(forward_kinematics_6d(ref_r6, ref_tr), 30.0, contact_height_m=0.3)
    assert float(lref.detach()) > 0
    assert float(loss.detach()) == pytest.approx(float(lref.detach()), rel=1e-4)
    la, lb = torch.autograd.grad(loss * 3.0, (r6, tr))
    lra, lrb = torch.autograd.grad(lref * 3.0, (ref_r6, ref_tr))
    torch.testing.assert_close(la, lra, atol=1e-4 * float(lra.abs().max()), rtol=1e-3)
    torch.testing.assert_close(lb, lrb, atol=1e-4 * float(lrb.abs().max()), rtol=1e-3)
    assert emulated.names[-2:] == ["od_fs_backward", "od_fk_backward_6d"]  # fused: feet-only FK backward

    rot = sixd_to_matrix(r6.detach()).requires_grad_(True)
    joints = fk_cuda.forward_kinematics_cuda(rot, tr.detach(), joints=(0, 15))
    torch.testing.assert_close(joints, forward_kinematics(rot.detach(), tr.detach())[..., [0, 15], :],
                               atol=2e-5, rtol=1e-5)
    loss = fk_cuda.foot_slide_loss_cuda(ref.detach().reshape(18, 24, 3), 30.0, floor_y=-0.1)
    torch.testing.assert_close(loss, foot_slide_loss(ref.detach().reshape(18, 24, 3), 30.0, floor_y=-0.1))


def test_emulated_launches_reject_what_the_kernels_cannot_do(emulated):
    from opendance.kernels import fk_cuda

    with pytest.raises(fk_cuda.KernelUnsupported, match="at least 2 frames"):
        fk_cuda.foot_slide_loss_cuda(torch.zeros(1, 24, 3), 30.0)
    with pytest.raises(fk_cuda.KernelUnsupported, match="distinct"):
        fk_cuda.foot_slide_loss_cuda(torch.zeros(4, 24, 3), 30.0, foot_joints=(7, 7))
    with pytest.raises(fk_cuda.KernelUnsupported, match="no broadcasting"):
        fk_cuda.forward_kinematics_6d_cuda(torch.zeros(3, 24, 6), torch.zeros(1, 3))
