// CUDA kernels: batched forward kinematics (6D or matrix local rotations + root translation)
// with its backward pass, and the contact-weighted horizontal foot-velocity loss with its
// gradient. Compiled at run time by opendance/kernels/nvrtc.py; launched on torch's current
// stream by opendance/kernels/fk_cuda.py. The per-frame math is in fk_common.cuh (shared
// with the CPU harness that checks it against the PyTorch reference).
//
// Memory traffic per frame (float32): forward reads rot (J*6 or J*9) + trans (3) and writes
// only the K requested joints (K*3): asking for the 4 feet instead of all 24 joints writes
// 48 B instead of 288 B, and the backward then reads 48 B of incoming gradient. That is the
// fusion the foot-slide path uses (joints never materialised in full).
//
// Launch contract (see fk_cuda.py): one thread per frame for FK; blockDim.x == OD_BLOCK for
// the reductions; every pointer is a contiguous float32 / int32 device buffer; all index
// arithmetic is bounds-checked against the sizes passed in, so compute-sanitizer memcheck
// can vouch for every launch.
#include "fk_common.cuh"

#ifndef OD_BLOCK
#define OD_BLOCK 256
#endif

namespace {

// Skeleton tables (parents, offsets, requested joints) staged in shared memory per block.
struct SkeletonShared {
  int parents[OD_MAX_JOINTS];
  int out_idx[OD_MAX_JOINTS];
  float offsets[OD_MAX_JOINTS * 3];
};

// Callers return early (uniformly per launch) when J or K exceed OD_MAX_JOINTS, so the
// staging below never writes past the shared arrays; the host checks this too.
__device__ void stage_skeleton(SkeletonShared& s, const int* parents, const float* offsets, const int* out_idx,
                               int J, int K) {
  for (int i = threadIdx.x; i < J; i += blockDim.x) s.parents[i] = parents[i];
  for (int i = threadIdx.x; i < K; i += blockDim.x) s.out_idx[i] = out_idx[i];
  for (int i = threadIdx.x; i < J * 3; i += blockDim.x) s.offsets[i] = offsets[i];
  __syncthreads();
}

template <bool SIXD>
__device__ void fk_forward_impl(const float* __restrict__ rot, const float* __restrict__ trans,
                                const float* __restrict__ offsets, const int* __restrict__ parents,
                                const int* __restrict__ out_idx, float* __restrict__ out, long long N, int J, int K,
                                unsigned need) {
  if (J > OD_MAX_JOINTS || K > OD_MAX_JOINTS) return;
  __shared__ SkeletonShared s;
  stage_skeleton(s, parents, offsets, out_idx, J, K);
  const int W = SIXD ? 6 : 9;
  float G[OD_MAX_JOINTS * 9];
  float P[OD_MAX_JOINTS * 3];
  for (long long n = blockIdx.x * (long long)blockDim.x + threadIdx.x; n < N; n += (long long)gridDim.x * blockDim.x) {
    od::fk_frame_forward<SIXD>(rot + n * J * W, trans + n * 3, s.offsets, s.parents, J, need, G, P);
    float* o = out + n * K * 3;
    for (int k = 0; k < K; ++k) {
      int j = s.out_idx[k];
      o[k * 3 + 0] = P[j * 3 + 0];
      o[k * 3 + 1] = P[j * 3 + 1];
      o[k * 3 + 2] = P[j * 3 + 2];
    }
  }
}

template <bool SIXD>
__device__ void fk_backward_impl(const float* __restrict__ rot, const float* __restrict__ trans,
                                 const float* __restrict__ offsets, const int* __restrict__ parents,
                                 const int* __restrict__ out_idx, const float* __restrict__ grad_out,
                                 float* __restrict__ grad_rot, float* __restrict__ grad_trans, long long N, int J,
                                 int K, unsigned need) {
  if (J > OD_MAX_JOINTS || K > OD_MAX_JOINTS) return;
  __shared__ SkeletonShared s;
  stage_skeleton(s, parents, offsets, out_idx, J, K);
  const int W = SIXD ? 6 : 9;
  float G[OD_MAX_JOINTS * 9];
  float P[OD_MAX_JOINTS * 3];
  float gG[OD_MAX_JOINTS * 9];
  float gP[OD_MAX_JOINTS * 3];
  for (long long n = blockIdx.x * (long long)blockDim.x + threadIdx.x; n < N; n += (long long)gridDim.x * blockDim.x) {
    const float* r = rot + n * J * W;
    od::fk_frame_forward<SIXD>(r, trans + n * 3, s.offsets, s.parents, J, need, G, P);
    for (int i = 0; i < J * 9; ++i) gG[i] = 0.f;
    for (int i = 0; i < J * 3; ++i) gP[i] = 0.f;
    const float* go = grad_out + n * K * 3;
    for (int k = 0; k < K; ++k) {
      int j = s.out_idx[k];
      gP[j * 3 + 0] += go[k * 3 + 0];
      gP[j * 3 + 1] += go[k * 3 + 1];
      gP[j * 3 + 2] += go[k * 3 + 2];
    }
    od::fk_frame_backward<SIXD>(r, s.offsets, s.parents, J, need, G, gP, gG, grad_rot + n * J * W, grad_trans + n * 3);
  }
}

__device__ float block_sum(float v) {
  __shared__ float buf[OD_BLOCK];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int stride = OD_BLOCK / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) buf[threadIdx.x] += buf[threadIdx.x + stride];
    __syncthreads();
  }
  return buf[0];
}

__device__ float block_min(float v) {
  __shared__ float buf[OD_BLOCK];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int stride = OD_BLOCK / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) buf[threadIdx.x] = fminf(buf[threadIdx.x], buf[threadIdx.x + stride]);
    __syncthreads();
  }
  return buf[0];
}

__device__ od::FootSlideParams fs_params(int M, int T, int JX, int F, float fps, float h, float speed) {
  od::FootSlideParams q;
  q.M = M; q.T = T; q.JX = JX; q.F = F;
  q.fps = fps; q.contact_height_m = h; q.contact_speed_mps = speed;
  return q;
}

}  // namespace

// ---------------------------------------------------------------- forward kinematics
// rot: (N, J, 6) or (N, J, 3, 3); trans: (N, 3); offsets: (J, 3); parents: (J,) int32;
// out_idx: (K,) int32 joints to write; out: (N, K, 3). Grid-stride over N frames.
extern "C" __global__ void od_fk_forward_6d(const float* rot, const float* trans, const float* offsets,
                                            const int* parents, const int* out_idx, float* out, long long N, int J,
                                            int K, unsigned need) {
  fk_forward_impl<true>(rot, trans, offsets, parents, out_idx, out, N, J, K, need);
}

extern "C" __global__ void od_fk_forward_mat(const float* rot, const float* trans, const float* offsets,
                                             const int* parents, const int* out_idx, float* out, long long N, int J,
                                             int K, unsigned need) {
  fk_forward_impl<false>(rot, trans, offsets, parents, out_idx, out, N, J, K, need);
}

// grad_out: (N, K, 3); grad_rot: (N, J, 6|9) fully written; grad_trans: (N, 3) fully written.
extern "C" __global__ void od_fk_backward_6d(const float* rot, const float* trans, const float* offsets,
                                             const int* parents, const int* out_idx, const float* grad_out,
                                             float* grad_rot, float* grad_trans, long long N, int J, int K,
                                             unsigned need) {
  fk_backward_impl<true>(rot, trans, offsets, parents, out_idx, grad_out, grad_rot, grad_trans, N, J, K, need);
}

extern "C" __global__ void od_fk_backward_mat(const float* rot, const float* trans, const float* offsets,
                                              const int* parents, const int* out_idx, const float* grad_out,
                                              float* grad_rot, float* grad_trans, long long N, int J, int K,
                                              unsigned need) {
  fk_backward_impl<false>(rot, trans, offsets, parents, out_idx, grad_out, grad_rot, grad_trans, N, J, K, need);
}

// ---------------------------------------------------------------- foot-slide loss
// joints: (M, T, JX, 3); feet: (F,) int32. One block per clip m: floor_out[m] = lowest
// foot height over frames 1..T-1 (the reference's floor). blockDim.x == OD_BLOCK.
extern "C" __global__ void od_fs_floor(const float* joints, const int* feet, float* floor_out, int M, int T, int JX,
                                       int F) {
  int m = blockIdx.x;
  if (m >= M) return;  // uniform per block: safe before the block reduction
  float lo = 3.402823466e38f;
  long long count = (long long)(T - 1) * F;
  for (long long i = threadIdx.x; i < count; i += OD_BLOCK) {
    int t = 1 + (int)(i / F);
    int f = (int)(i % F);
    lo = fminf(lo, joints[(((long long)m * T + t) * JX + feet[f]) * 3 + 1]);
  }
  lo = block_min(lo);
  if (threadIdx.x == 0) floor_out[m] = lo;
}

// partial_out[blockIdx.x] = sum of the loss terms of this block's elements (not divided by
// the count); the host sums the partials in a fixed order (deterministic). Elements are
// (m, t, f) with t < T-1; grid-stride.
extern "C" __global__ void od_fs_loss(const float* joints, const int* feet, const float* floor_y, float* partial_out,
                                      int M, int T, int JX, int F, float fps, float contact_height_m,
                                      float contact_speed_mps) {
  od::FootSlideParams q = fs_params(M, T, JX, F, fps, contact_height_m, contact_speed_mps);
  long long E = (long long)M * (T - 1) * F;
  float acc = 0.f;
  for (long long e = blockIdx.x * (long long)OD_BLOCK + threadIdx.x; e < E; e += (long long)gridDim.x * OD_BLOCK)
    acc += od::foot_slide_term(joints, q, feet, floor_y, e);
  acc = block_sum(acc);
  if (threadIdx.x == 0) partial_out[blockIdx.x] = acc;
}

// grad_joints: (M, T, JX, 3), zero-filled by the caller; this writes the x and z entries of
// the foot joints. grad_loss: pointer to the incoming scalar gradient (stays on the device:
// no host sync); inv_count = 1 / (M (T-1) F). Feet must be distinct. Elements (m, t, f).
extern "C" __global__ void od_fs_backward(const float* joints, const int* feet, const float* floor_y,
                                          const float* grad_loss, float inv_count, float* grad_joints, int M, int T,
                                          int JX, int F, float fps, float contact_height_m,
                                          float contact_speed_mps) {
  od::FootSlideParams q = fs_params(M, T, JX, F, fps, contact_height_m, contact_speed_mps);
  long long E = (long long)M * T * F;
  float scale = grad_loss[0] * inv_count;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < E; e += (long long)gridDim.x * blockDim.x) {
    int f = (int)(e % F);
    long long mt = e / F;
    int t = (int)(mt % T);
    int m = (int)(mt / T);
    float g[3];
    od::foot_slide_point_grad(joints, q, feet, floor_y, scale, m, t, f, g);
    float* dst = grad_joints + (((long long)m * T + t) * JX + feet[f]) * 3;
    dst[0] = g[0];
    dst[2] = g[2];
  }
}
