// Forward kinematics and the foot-slide loss, per frame / per element: the math shared by
// the CUDA kernels (fk_kernels.cu, compiled with NVRTC) and the host harness
// (host_harness.cpp, compiled with a C++ compiler so the same code is checked on a CPU
// against the PyTorch reference in opendance/kernels/fk.py).
//
// Conventions (same as opendance.kernels.fk and opendance.rotations_torch):
// * rotation matrices are row-major float[9]; a 6D rotation is column 0 then column 1 of
//   the matrix (Zhou et al. 2019, "On the Continuity of Rotation Representations in
//   Neural Networks"), turned back into a matrix by Gram-Schmidt with |v| clamped at 1e-8;
// * forward kinematics: G_root = R_root, p_root = trans; G_j = G_parent R_j,
//   p_j = p_parent + G_parent o_j (o_j the parent-relative rest offset, metres);
// * joints are in topological order (parents[j] < j), at most OD_MAX_JOINTS of them, and
//   `need` is a bitmask of the joints to compute, closed under "parent of" (the host side
//   builds it from the joints the caller asked for).
//
// Backward passes are plain reverse-mode differentiation of the above; the derivation is
// written next to each function.
#pragma once

#ifndef __CUDACC_RTC__
#ifndef __CUDACC__
// Host compilation (host_harness.cpp): the CUDA qualifiers vanish.
#define __host__
#define __device__
#define __forceinline__ inline
#endif
#include <math.h>
#endif

#ifndef OD_MAX_JOINTS
#define OD_MAX_JOINTS 32  // skeleton capacity; the host build passes -DOD_MAX_JOINTS=24 for SMPL
#endif
#define OD_NORM_EPS 1e-8f

#define OD_HD __host__ __device__ __forceinline__

namespace od {

OD_HD float dot3(const float* a, const float* b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

OD_HD void cross3(const float* a, const float* b, float* out) {
  out[0] = a[1] * b[2] - a[2] * b[1];
  out[1] = a[2] * b[0] - a[0] * b[2];
  out[2] = a[0] * b[1] - a[1] * b[0];
}

// out = a @ b (3x3 row-major).
OD_HD void matmul3(const float* a, const float* b, float* out) {
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      out[r * 3 + c] = a[r * 3 + 0] * b[0 * 3 + c] + a[r * 3 + 1] * b[1 * 3 + c] + a[r * 3 + 2] * b[2 * 3 + c];
}

// 6D -> matrix by Gram-Schmidt (opendance.rotations_torch.sixd_to_matrix):
//   b1 = a1 / max(|a1|, eps); u = a2 - (b1.a2) b1; b2 = u / max(|u|, eps); b3 = b1 x b2;
//   R = [b1 b2 b3] (as columns).
OD_HD void sixd_to_mat(const float* d6, float* R) {
  float b1[3], b2[3], b3[3];
  float n1 = fmaxf(sqrtf(dot3(d6, d6)), OD_NORM_EPS);
  for (int i = 0; i < 3; ++i) b1[i] = d6[i] / n1;
  const float* a2 = d6 + 3;
  float d = dot3(b1, a2);
  float u[3] = {a2[0] - d * b1[0], a2[1] - d * b1[1], a2[2] - d * b1[2]};
  float n2 = fmaxf(sqrtf(dot3(u, u)), OD_NORM_EPS);
  for (int i = 0; i < 3; ++i) b2[i] = u[i] / n2;
  cross3(b1, b2, b3);
  for (int r = 0; r < 3; ++r) {
    R[r * 3 + 0] = b1[r];
    R[r * 3 + 1] = b2[r];
    R[r * 3 + 2] = b3[r];
  }
}

// Gradient of sixd_to_mat: gR (dL/dR, row-major) -> g6 (dL/d d6).
//   b3 = b1 x b2:       gb1 += b2 x gb3,  gb2 += gb3 x b1
//   b2 = u / |u|:       gu = (gb2 - b2 (b2.gb2)) / |u|      (gu = gb2 / eps when clamped)
//   u = a2 - (b1.a2)b1: ga2 = gu - b1 (b1.gu),  gb1 += -(b1.a2) gu - (b1.gu) a2
//   b1 = a1 / |a1|:     ga1 = (gb1 - b1 (b1.gb1)) / |a1|    (ga1 = gb1 / eps when clamped)
OD_HD void sixd_to_mat_backward(const float* d6, const float* gR, float* g6) {
  float b1[3], b2[3], u[3], gb1[3], gb2[3], gb3[3], t[3];
  float n1raw = sqrtf(dot3(d6, d6));
  float n1 = fmaxf(n1raw, OD_NORM_EPS);
  for (int i = 0; i < 3; ++i) b1[i] = d6[i] / n1;
  const float* a2 = d6 + 3;
  float d = dot3(b1, a2);
  for (int i = 0; i < 3; ++i) u[i] = a2[i] - d * b1[i];
  float n2raw = sqrtf(dot3(u, u));
  float n2 = fmaxf(n2raw, OD_NORM_EPS);
  for (int i = 0; i < 3; ++i) b2[i] = u[i] / n2;
  for (int r = 0; r < 3; ++r) {
    gb1[r] = gR[r * 3 + 0];
    gb2[r] = gR[r * 3 + 1];
    gb3[r] = gR[r * 3 + 2];
  }
  cross3(b2, gb3, t);
  for (int i = 0; i < 3; ++i) gb1[i] += t[i];
  cross3(gb3, b1, t);
  for (int i = 0; i < 3; ++i) gb2[i] += t[i];
  float gu[3];
  if (n2raw > OD_NORM_EPS) {
    float s = dot3(b2, gb2);
    for (int i = 0; i < 3; ++i) gu[i] = (gb2[i] - b2[i] * s) / n2;
  } else {
    for (int i = 0; i < 3; ++i) gu[i] = gb2[i] / n2;
  }
  float b1gu = dot3(b1, gu);
  for (int i = 0; i < 3; ++i) {
    g6[3 + i] = gu[i] - b1[i] * b1gu;
    gb1[i] += -d * gu[i] - b1gu * a2[i];
  }
  if (n1raw > OD_NORM_EPS) {
    float s = dot3(b1, gb1);
    for (int i = 0; i < 3; ++i) g6[i] = (gb1[i] - b1[i] * s) / n1;
  } else {
    for (int i = 0; i < 3; ++i) g6[i] = gb1[i] / n1;
  }
}

// Local rotation of joint j as a matrix; `rot` points at one frame: (J, 6) or (J, 9).
template <bool SIXD>
OD_HD void load_local(const float* rot, int j, float* R) {
  if (SIXD) {
    sixd_to_mat(rot + j * 6, R);
  } else {
    for (int k = 0; k < 9; ++k) R[k] = rot[j * 9 + k];
  }
}

// One frame of forward kinematics.
//   rot: (J, 6|9) local rotations; trans: (3,) metres; offsets: (J, 3) metres;
//   G: (J, 9) world rotations out; P: (J, 3) world positions out (metres).
// Joints outside `need` are left untouched.
template <bool SIXD>
OD_HD void fk_frame_forward(const float* rot, const float* trans, const float* offsets, const int* parents,
                            int J, unsigned need, float* G, float* P) {
  for (int j = 0; j < J; ++j) {
    if (!((need >> j) & 1u)) continue;
    float R[9];
    load_local<SIXD>(rot, j, R);
    int p = parents[j];
    if (p < 0) {
      for (int k = 0; k < 9; ++k) G[j * 9 + k] = R[k];
      for (int k = 0; k < 3; ++k) P[j * 3 + k] = trans[k];
    } else {
      matmul3(G + p * 9, R, G + j * 9);
      const float* Gp = G + p * 9;
      const float* o = offsets + j * 3;
      for (int r = 0; r < 3; ++r)
        P[j * 3 + r] = P[p * 3 + r] + Gp[r * 3 + 0] * o[0] + Gp[r * 3 + 1] * o[1] + Gp[r * 3 + 2] * o[2];
    }
  }
}

// One frame of the backward pass of forward kinematics.
//   G: (J, 9) world rotations from fk_frame_forward; gP: (J, 3) dL/dp (modified: scratch);
//   gG: (J, 9) scratch, must be zero on entry; grot: (J, 6|9) out; gtrans: (3,) out.
// Reverse topological order: when joint j is reached all its children have pushed
//   gG_j += gG_c R_c^T + gp_c o_c^T   and   gp_j += gp_c
// (from G_c = G_j R_c and p_c = p_j + G_j o_c); then dL/dR_j = G_parent^T gG_j
// (dL/dR_root = gG_root, dL/dtrans = gp_root).
template <bool SIXD>
OD_HD void fk_frame_backward(const float* rot, const float* offsets, const int* parents, int J, unsigned need,
                             const float* G, float* gP, float* gG, float* grot, float* gtrans) {
  const int W = SIXD ? 6 : 9;
  for (int k = 0; k < 3; ++k) gtrans[k] = 0.f;
  for (int j = J - 1; j >= 0; --j) {
    float* gr = grot + j * W;
    if (!((need >> j) & 1u)) {
      for (int k = 0; k < W; ++k) gr[k] = 0.f;
      continue;
    }
    int p = parents[j];
    const float* gGj = gG + j * 9;
    const float* gpj = gP + j * 3;
    float gR[9];
    if (p < 0) {
      for (int k = 0; k < 9; ++k) gR[k] = gGj[k];
      for (int k = 0; k < 3; ++k) gtrans[k] += gpj[k];
    } else {
      const float* Gp = G + p * 9;
      // gR = Gp^T gGj
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c)
          gR[r * 3 + c] = Gp[0 * 3 + r] * gGj[0 * 3 + c] + Gp[1 * 3 + r] * gGj[1 * 3 + c] + Gp[2 * 3 + r] * gGj[2 * 3 + c];
      float R[9];
      load_local<SIXD>(rot, j, R);
      const float* o = offsets + j * 3;
      float* gGp = gG + p * 9;
      // gGp += gGj R^T + gpj o^T
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c)
          gGp[r * 3 + c] += gGj[r * 3 + 0] * R[c * 3 + 0] + gGj[r * 3 + 1] * R[c * 3 + 1] + gGj[r * 3 + 2] * R[c * 3 + 2]
                            + gpj[r] * o[c];
      for (int k = 0; k < 3; ++k) gP[p * 3 + k] += gpj[k];
    }
    if (SIXD) {
      sixd_to_mat_backward(rot + j * 6, gR, gr);
    } else {
      for (int k = 0; k < 9; ++k) gr[k] = gR[k];
    }
  }
}

// ------------------------------------------------------------------ foot-slide loss
// Same definition as opendance.kernels.fk.foot_slide_loss: for clip m, segment t (frames t
// and t+1) and foot f, v = (p[t+1] - p[t]) * fps (m/s); contact c = (y[t+1] - floor_m <
// contact_height_m) [and |v| < contact_speed_mps when that is > 0]; the loss is the mean
// over (m, t, f) of c * (vx^2 + vz^2). Contacts are constants (no gradient through them).
//
// joints: (M, T, JX, 3) float32 metres; feet: (F,) joint indices into JX.

struct FootSlideParams {
  int M, T, JX, F;
  float fps, contact_height_m, contact_speed_mps;  // speed <= 0: no speed test
};

OD_HD const float* foot_point(const float* joints, const FootSlideParams& q, const int* feet, int m, int t, int f) {
  return joints + (((long long)m * q.T + t) * q.JX + feet[f]) * 3;
}

// Contact weight and velocity of segment t (0 <= t < T-1) of foot f in clip m.
OD_HD float segment_contact(const float* joints, const FootSlideParams& q, const int* feet, float floor_y, int m,
                            int t, int f, float* v) {
  const float* a = foot_point(joints, q, feet, m, t, f);
  const float* b = foot_point(joints, q, feet, m, t + 1, f);
  for (int k = 0; k < 3; ++k) v[k] = (b[k] - a[k]) * q.fps;
  bool contact = (b[1] - floor_y) < q.contact_height_m;
  if (q.contact_speed_mps > 0.f) contact = contact && (sqrtf(dot3(v, v)) < q.contact_speed_mps);
  return contact ? 1.f : 0.f;
}

// Loss term of element e = ((m * (T-1)) + t) * F + f (not yet divided by the count).
OD_HD float foot_slide_term(const float* joints, const FootSlideParams& q, const int* feet, const float* floor_y,
                            long long e) {
  int f = (int)(e % q.F);
  long long mt = e / q.F;
  int t = (int)(mt % (q.T - 1));
  int m = (int)(mt / (q.T - 1));
  float v[3];
  float c = segment_contact(joints, q, feet, floor_y[m], m, t, f, v);
  return c * (v[0] * v[0] + v[2] * v[2]);
}

// dL/dp of foot f at frame t of clip m (x and z; y gets none), given scale = dL_out / count.
// Point p[t] enters segment t-1 as its end (+v) and segment t as its start (-v):
//   d/dp[t] = 2 fps (c[t-1] v[t-1] - c[t] v[t]) * scale   on x and z.
OD_HD void foot_slide_point_grad(const float* joints, const FootSlideParams& q, const int* feet,
                                 const float* floor_y, float scale, int m, int t, int f, float* g) {
  float v[3];
  g[0] = g[1] = g[2] = 0.f;
  if (t >= 1) {
    float c = segment_contact(joints, q, feet, floor_y[m], m, t - 1, f, v);
    g[0] += c * v[0];
    g[2] += c * v[2];
  }
  if (t < q.T - 1) {
    float c = segment_contact(joints, q, feet, floor_y[m], m, t, f, v);
    g[0] -= c * v[0];
    g[2] -= c * v[2];
  }
  float s = 2.f * q.fps * scale;
  g[0] *= s;
  g[2] *= s;
}

}  // namespace od
