// CPU harness for the kernel math: the loops the CUDA kernels run in parallel, run
// serially on the host through the very same functions (fk_common.cuh). Built with a C++
// compiler into a shared library by opendance/kernels/host_check.py and compared against
// the PyTorch reference in tests, so the CUDA arithmetic is checked on machines without a
// GPU. Layouts and arguments mirror fk_kernels.cu.
#include <float.h>

#include "fk_common.cuh"

template <bool SIXD>
static void fk_forward(const float* rot, const float* trans, const float* offsets, const int* parents,
                       const int* out_idx, float* out, long long N, int J, int K, unsigned need) {
  const int W = SIXD ? 6 : 9;
  float G[OD_MAX_JOINTS * 9], P[OD_MAX_JOINTS * 3];
  for (long long n = 0; n < N; ++n) {
    od::fk_frame_forward<SIXD>(rot + n * J * W, trans + n * 3, offsets, parents, J, need, G, P);
    for (int k = 0; k < K; ++k)
      for (int c = 0; c < 3; ++c) out[(n * K + k) * 3 + c] = P[out_idx[k] * 3 + c];
  }
}

template <bool SIXD>
static void fk_backward(const float* rot, const float* trans, const float* offsets, const int* parents,
                        const int* out_idx, const float* grad_out, float* grad_rot, float* grad_trans, long long N,
                        int J, int K, unsigned need) {
  const int W = SIXD ? 6 : 9;
  float G[OD_MAX_JOINTS * 9], P[OD_MAX_JOINTS * 3], gG[OD_MAX_JOINTS * 9], gP[OD_MAX_JOINTS * 3];
  for (long long n = 0; n < N; ++n) {
    const float* r = rot + n * J * W;
    od::fk_frame_forward<SIXD>(r, trans + n * 3, offsets, parents, J, need, G, P);
    for (int i = 0; i < J * 9; ++i) gG[i] = 0.f;
    for (int i = 0; i < J * 3; ++i) gP[i] = 0.f;
    for (int k = 0; k < K; ++k)
      for (int c = 0; c < 3; ++c) gP[out_idx[k] * 3 + c] += grad_out[(n * K + k) * 3 + c];
    od::fk_frame_backward<SIXD>(r, offsets, parents, J, need, G, gP, gG, grad_rot + n * J * W, grad_trans + n * 3);
  }
}

extern "C" {

void od_fk_forward_6d(const float* rot, const float* trans, const float* offsets, const int* parents,
                      const int* out_idx, float* out, long long N, int J, int K, unsigned need) {
  fk_forward<true>(rot, trans, offsets, parents, out_idx, out, N, J, K, need);
}

void od_fk_forward_mat(const float* rot, const float* trans, const float* offsets, const int* parents,
                       const int* out_idx, float* out, long long N, int J, int K, unsigned need) {
  fk_forward<false>(rot, trans, offsets, parents, out_idx, out, N, J, K, need);
}

void od_fk_backward_6d(const float* rot, const float* trans, const float* offsets, const int* parents,
                       const int* out_idx, const float* grad_out, float* grad_rot, float* grad_trans, long long N,
                       int J, int K, unsigned need) {
  fk_backward<true>(rot, trans, offsets, parents, out_idx, grad_out, grad_rot, grad_trans, N, J, K, need);
}

void od_fk_backward_mat(const float* rot, const float* trans, const float* offsets, const int* parents,
                        const int* out_idx, const float* grad_out, float* grad_rot, float* grad_trans, long long N,
                        int J, int K, unsigned need) {
  fk_backward<false>(rot, trans, offsets, parents, out_idx, grad_out, grad_rot, grad_trans, N, J, K, need);
}

void od_fs_floor(const float* joints, const int* feet, float* floor_out, int M, int T, int JX, int F) {
  for (int m = 0; m < M; ++m) {
    float lo = FLT_MAX;
    for (int t = 1; t < T; ++t)
      for (int f = 0; f < F; ++f) lo = fminf(lo, joints[(((long long)m * T + t) * JX + feet[f]) * 3 + 1]);
    floor_out[m] = lo;
  }
}

// Returns the sum of the terms (the caller divides by the count), like the partial sums.
double od_fs_loss(const float* joints, const int* feet, const float* floor_y, int M, int T, int JX, int F, float fps,
                  float contact_height_m, float contact_speed_mps) {
  od::FootSlideParams q = {M, T, JX, F, fps, contact_height_m, contact_speed_mps};
  long long E = (long long)M * (T - 1) * F;
  double acc = 0.0;
  for (long long e = 0; e < E; ++e) acc += od::foot_slide_term(joints, q, feet, floor_y, e);
  return acc;
}

void od_fs_backward(const float* joints, const int* feet, const float* floor_y, float grad_loss, float inv_count,
                    float* grad_joints, int M, int T, int JX, int F, float fps, float contact_height_m,
                    float contact_speed_mps) {
  od::FootSlideParams q = {M, T, JX, F, fps, contact_height_m, contact_speed_mps};
  float scale = grad_loss * inv_count;
  for (int m = 0; m < M; ++m)
    for (int t = 0; t < T; ++t)
      for (int f = 0; f < F; ++f) {
        float g[3];
        od::foot_slide_point_grad(joints, q, feet, floor_y, scale, m, t, f, g);
        float* dst = grad_joints + (((long long)m * T + t) * JX + feet[f]) * 3;
        dst[0] = g[0];
        dst[2] = g[2];
      }
}

}  // extern "C"
