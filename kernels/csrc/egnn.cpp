// Compiled inference core for the EDM EGNN (CPU, C++17, OpenMP, float32).
//
// Design
// ------
// Molecules are packed without padding ("ragged"): molecule m owns atoms
// [offsets[m], offsets[m+1]). Per block, every ordered pair (i, j != i) of a
// molecule runs the edge MLP  m_ij = silu(W2 silu(W1 [h_i, h_j, r_ij, d0_ij] + b1) + b2).
// Two savings over the reference (edm_core/egnn.py):
//   1. W1 [h_i, h_j, r, d0] = (W1a h_i + b1) + (W1b h_j) + r w_r + d0 w_d: the two
//      nf x nf products are per-node GEMMs over all atoms (n work, not n^2);
//      per pair only the second layer (an nf x nf product) remains.
//   2. No padding: each molecule's n x (n - 1) pairs, nothing more.
// The per-edge hidden tensor never leaves a thread's cache: for one receiver i
// its (n - 1) x nf hidden rows are built, multiplied by W2, gated and summed
// into agg_i at once (an "online" reduction over j), then the buffer is reused.
// The coordinate MLP (W7, W6, w5) is handled the same way.
//
// Limits: attention and tanh on (every published EDM model), sum aggregation.
// Work is parallel over (molecule, receiver) pairs and over atom-row blocks.
// The inner product runs through a register-blocked micro-kernel (4 rows x 16
// columns) when nf is a multiple of 16, a plain loop otherwise.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef EDM_BENCH_OPENMP
#include <omp.h>
#endif
#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace nb = nanobind;

using Positions = nb::ndarray<const float, nb::shape<-1, 3>, nb::c_contig, nb::device::cpu>;
using Offsets = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Matrix = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using Vector = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using FloatOut1 = nb::ndarray<nb::numpy, float, nb::ndim<1>>;
using FloatOut2 = nb::ndarray<nb::numpy, float, nb::ndim<2>>;

namespace {

inline float silu(float v) { return v / (1.0f + std::exp(-v)); }
inline float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

#ifdef __AVX2__
// exp of 8 floats (Cephes' expf: range reduction by ln 2, degree-6 polynomial,
// scaling by 2^n through the exponent bits); within 2 ulp of std::exp.
inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3762626647949f));
    __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    const __m256 z = _mm256_mul_ps(x, x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_add_ps(_mm256_fmadd_ps(y, z, x), _mm256_set1_ps(1.0f));
    const __m256i n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(n));
}
#endif

// v <- silu(v) = v / (1 + exp(-v)) for n values (vectorised where AVX2 is available).
void silu_inplace(float* v, int64_t n) {
    int64_t k = 0;
#ifdef __AVX2__
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; k + 8 <= n; k += 8) {
        const __m256 x = _mm256_loadu_ps(v + k);
        const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        _mm256_storeu_ps(v + k, _mm256_div_ps(x, _mm256_add_ps(one, e)));
    }
#endif
    for (; k < n; ++k) v[k] = silu(v[k]);
}

void check_offsets(const int64_t* off, size_t n_off, int64_t n_atoms) {
    if (n_off < 1) throw std::invalid_argument("offsets must hold at least one entry (0)");
    if (off[0] != 0) throw std::invalid_argument("offsets[0] must be 0");
    for (size_t m = 1; m < n_off; ++m)
        if (off[m] < off[m - 1])
            throw std::invalid_argument("offsets must be non-decreasing (molecule " + std::to_string(m - 1) + ")");
    if (off[n_off - 1] != n_atoms)
        throw std::invalid_argument("offsets[-1] = " + std::to_string(off[n_off - 1]) + " but the inputs hold " +
                                    std::to_string(n_atoms) + " atoms");
}

// out[r, c] (+)= sum_k a[r, k] * bt[k, c] (+ bias[c]) for rows [0, rows); a has
// row stride lda, bt is (K x C) row-major, out has row stride ldo.
#if defined(__GNUC__)
typedef float v8f __attribute__((vector_size(32)));

// R rows x 16 columns of out, accumulated in registers over all of K.
template <int R>
inline void gemm_tile(const float* a, int64_t lda, const float* bt, int64_t K, int64_t C, int64_t c, float* out,
                      int64_t ldo, const float* bias, bool accumulate) {
    v8f acc[R][2] = {};
    for (int64_t k = 0; k < K; ++k) {
        v8f b0, b1;
        std::memcpy(&b0, bt + k * C + c, 32);
        std::memcpy(&b1, bt + k * C + c + 8, 32);
        for (int q = 0; q < R; ++q) {
            const float s = a[q * lda + k];
            acc[q][0] += s * b0;
            acc[q][1] += s * b1;
        }
    }
    for (int q = 0; q < R; ++q) {
        float* o = out + q * ldo + c;
        for (int h = 0; h < 2; ++h) {
            v8f prev = {};
            if (accumulate)
                std::memcpy(&prev, o + 8 * h, 32);
            else if (bias)
                std::memcpy(&prev, bias + c + 8 * h, 32);
            const v8f v = acc[q][h] + prev;
            std::memcpy(o + 8 * h, &v, 32);
        }
    }
}

template <int R>
inline void gemm_rows(const float* a, int64_t lda, const float* bt, int64_t K, int64_t C, float* out, int64_t ldo,
                      const float* bias, bool accumulate) {
    for (int64_t c = 0; c < C; c += 16) gemm_tile<R>(a, lda, bt, K, C, c, out, ldo, bias, accumulate);
}
#endif

void gemm(const float* a, int64_t lda, int64_t rows, const float* bt, int64_t K, int64_t C, float* out,
          int64_t ldo, const float* bias, bool accumulate) {
#if defined(__GNUC__)
    if (C % 16 == 0) {
        // 6 x 16 register tiles (12 accumulators + 2 loads + 1 broadcast of the
        // 16 AVX registers), then the remaining rows.
        int64_t r = 0;
        for (; r + 6 <= rows; r += 6) gemm_rows<6>(a + r * lda, lda, bt, K, C, out + r * ldo, ldo, bias, accumulate);
        const int64_t left = rows - r;
        const float* ar = a + r * lda;
        float* orow = out + r * ldo;
        switch (left) {
            case 5: gemm_rows<5>(ar, lda, bt, K, C, orow, ldo, bias, accumulate); break;
            case 4: gemm_rows<4>(ar, lda, bt, K, C, orow, ldo, bias, accumulate); break;
            case 3: gemm_rows<3>(ar, lda, bt, K, C, orow, ldo, bias, accumulate); break;
            case 2: gemm_rows<2>(ar, lda, bt, K, C, orow, ldo, bias, accumulate); break;
            case 1: gemm_rows<1>(ar, lda, bt, K, C, orow, ldo, bias, accumulate); break;
            default: break;
        }
        return;
    }
#endif
    for (int64_t r = 0; r < rows; ++r) {
        float* o = out + r * ldo;
        if (!accumulate)
            for (int64_t c = 0; c < C; ++c) o[c] = bias ? bias[c] : 0.0f;
        for (int64_t k = 0; k < K; ++k) {
            const float s = a[r * lda + k];
            const float* b = bt + k * C;
            for (int64_t c = 0; c < C; ++c) o[c] += s * b[c];
        }
    }
}

// Row-parallel GEMM over many rows (the per-node products).
void gemm_parallel(const float* a, int64_t lda, int64_t rows, const float* bt, int64_t K, int64_t C, float* out,
                   int64_t ldo, const float* bias, bool accumulate) {
    const int64_t block = 8;  // small: a single molecule's per-node products still use every thread
#pragma omp parallel for schedule(static) if (rows > block)
    for (int64_t r0 = 0; r0 < rows; r0 += block) {
        const int64_t nr = std::min(block, rows - r0);
        gemm(a + r0 * lda, lda, nr, bt, K, C, out + r0 * ldo, ldo, bias, accumulate);
    }
}

// The weights of one GCL sublayer, pre-split and transposed by the Python side.
struct GCLWeights {
    const float *w1a_t, *w1b_t, *w1r, *w1d, *b1, *w2_t, *b2, *wa, *ba, *w3a_t, *w3b_t, *b3, *w4_t, *b4;
};
struct CoordWeights {
    const float *w7a_t, *w7b_t, *w7r, *w7d, *b7, *w6_t, *b6, *w5;
};

struct Geometry {
    std::vector<float> r;    // |x_i - x_j|^2 at the block input, per pair block
    std::vector<float> d0;   // the same at the network input
    std::vector<float> dir;  // (x_i - x_j) / (sqrt(r + 1e-8) + norm_constant), 3 per pair
};

struct Layout {
    const int64_t* off;
    int64_t n_mol;
    std::vector<int64_t> pair_off;  // start of molecule m's n_m x n_m pair block
    std::vector<int64_t> rows;      // (molecule, receiver) work items: global atom index of i
    std::vector<int64_t> mol_of;    // molecule of each atom
    int64_t n_max;
};

Layout make_layout(const int64_t* off, int64_t n_mol) {
    Layout L{off, n_mol, std::vector<int64_t>(n_mol + 1, 0), {}, {}, 0};
    for (int64_t m = 0; m < n_mol; ++m) {
        const int64_t n = off[m + 1] - off[m];
        L.pair_off[m + 1] = L.pair_off[m] + n * n;
        L.n_max = std::max(L.n_max, n);
        for (int64_t i = 0; i < n; ++i) L.mol_of.push_back(m);
    }
    return L;
}

void pair_distances(const float* x, const Layout& L, std::vector<float>& r, std::vector<float>* dir,
                    float norm_constant) {
    r.assign(L.pair_off[L.n_mol], 0.0f);
    if (dir) dir->assign(3 * L.pair_off[L.n_mol], 0.0f);
#pragma omp parallel for schedule(dynamic, 4) if (L.n_mol > 8)
    for (int64_t m = 0; m < L.n_mol; ++m) {
        const int64_t a0 = L.off[m], n = L.off[m + 1] - L.off[m];
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < n; ++j) {
                const float* xi = x + 3 * (a0 + i);
                const float* xj = x + 3 * (a0 + j);
                const float dx = xi[0] - xj[0], dy = xi[1] - xj[1], dz = xi[2] - xj[2];
                const float rr = dx * dx + dy * dy + dz * dz;
                const int64_t p = L.pair_off[m] + i * n + j;
                r[p] = rr;
                if (dir) {
                    const float inv = 1.0f / (std::sqrt(rr + 1e-8f) + norm_constant);
                    (*dir)[3 * p] = dx * inv;
                    (*dir)[3 * p + 1] = dy * inv;
                    (*dir)[3 * p + 2] = dz * inv;
                }
            }
    }
}

// For receiver i: hidden rows e_j = silu(P_i + Q_j + r_ij w_r + d0_ij w_d) for j != i,
// then m_j = silu(e_j W^T + b) into `m` (rows in j order, i skipped). Returns n - 1.
int64_t edge_hidden(int64_t i, int64_t a0, int64_t n, int64_t pair0, const float* P, const float* Q,
                    const float* wr, const float* wd, const float* w_t, const float* b, const float* r,
                    const float* d0, int64_t nf, float* e, float* m) {
    int64_t row = 0;
    const float* pi = P + (a0 + i) * nf;
    for (int64_t j = 0; j < n; ++j) {
        if (j == i) continue;
        const float* qj = Q + (a0 + j) * nf;
        const float rij = r[pair0 + i * n + j], dij = d0[pair0 + i * n + j];
        float* ej = e + row * nf;
#pragma omp simd
        for (int64_t c = 0; c < nf; ++c) ej[c] = pi[c] + qj[c] + rij * wr[c] + dij * wd[c];
        ++row;
    }
    silu_inplace(e, row * nf);
    gemm(e, nf, row, w_t, nf, nf, m, nf, b, false);
    silu_inplace(m, row * nf);
    return row;
}

// The edge pass of one MLP (first layer split as P_i + Q_j + r w_r + d0 w_d,
// second layer w_t, b): for every atom a (in parallel), build its receiver's
// hidden rows m_aj (j != a, in j order) in thread-local scratch and hand them to
// reduce(a, i, n, pair0, rows, m) at once, so they never outlive the receiver.
template <class Reduce>
void for_each_receiver(const Layout& L, int64_t N, int64_t nf, const float* P, const float* Q, const float* wr,
                       const float* wd, const float* w_t, const float* b, const Geometry& g, Reduce reduce) {
#pragma omp parallel
    {
        std::vector<float> e(L.n_max * nf), mh(L.n_max * nf);
#pragma omp for schedule(dynamic, 1)
        for (int64_t a = 0; a < N; ++a) {
            const int64_t mol = L.mol_of[a], a0 = L.off[mol], n = L.off[mol + 1] - a0, i = a - a0;
            const int64_t pair0 = L.pair_off[mol];
            const int64_t rows = edge_hidden(i, a0, n, pair0, P, Q, wr, wd, w_t, b, g.r.data(), g.d0.data(), nf,
                                             e.data(), mh.data());
            reduce(a, i, n, pair0, rows, mh.data());
        }
    }
}

}  // namespace

// The whole EGNN of EDM on a ragged batch. See edm_core/backends.py for the
// weight layout (pack_egnn_weights) and the Python-side pre/post-processing.
static std::pair<FloatOut2, FloatOut2> egnn_forward(
    Matrix h0, Positions x0, Offsets offsets, Matrix emb_w_t, Vector emb_b, Matrix out_w_t, Vector out_b,
    std::vector<Matrix> gcl, std::vector<Vector> gcl_vec, std::vector<Matrix> coord, std::vector<Vector> coord_vec,
    int64_t n_layers, int64_t inv_sublayers, float coords_range, float norm_constant, float normalization_factor) {
    const int64_t N = static_cast<int64_t>(h0.shape(0));
    const int64_t F = static_cast<int64_t>(h0.shape(1));
    const int64_t nf = static_cast<int64_t>(emb_w_t.shape(1));
    if (x0.shape(0) != static_cast<size_t>(N)) throw std::invalid_argument("h0 and x0 hold different atom counts");
    if (emb_w_t.shape(0) != static_cast<size_t>(F) || out_w_t.shape(0) != static_cast<size_t>(nf) ||
        out_w_t.shape(1) != static_cast<size_t>(F))
        throw std::invalid_argument("embedding weights do not match h0 (F) and nf");
    if (gcl.size() != static_cast<size_t>(6 * n_layers * inv_sublayers) ||
        gcl_vec.size() != static_cast<size_t>(8 * n_layers * inv_sublayers) ||
        coord.size() != static_cast<size_t>(3 * n_layers) || coord_vec.size() != static_cast<size_t>(5 * n_layers))
        throw std::invalid_argument("wrong number of layer weight arrays for n_layers / inv_sublayers");
    for (const auto& w : gcl)
        if (w.shape(1) != static_cast<size_t>(nf)) throw std::invalid_argument("layer matrices must have nf columns");
    for (const auto& w : coord)
        if (w.shape(1) != static_cast<size_t>(nf)) throw std::invalid_argument("layer matrices must have nf columns");
    const int64_t* off = offsets.data();
    check_offsets(off, offsets.shape(0), N);
    const Layout L = make_layout(off, static_cast<int64_t>(offsets.shape(0)) - 1);

    std::vector<float> x(x0.data(), x0.data() + 3 * N), x_next(3 * N);
    std::vector<float> h(N * nf), P(N * nf), Q(N * nf), agg(N * nf), tmp(N * nf);
    Geometry g;
    pair_distances(x.data(), L, g.d0, nullptr, norm_constant);
    gemm_parallel(h0.data(), F, N, emb_w_t.data(), F, nf, h.data(), nf, emb_b.data(), false);

    const float inv_norm = 1.0f / normalization_factor;
    for (int64_t layer = 0; layer < n_layers; ++layer) {
        pair_distances(x.data(), L, g.r, &g.dir, norm_constant);
        for (int64_t s = 0; s < inv_sublayers; ++s) {
            const int64_t k = layer * inv_sublayers + s;
            const Matrix* M = &gcl[6 * k];
            const Vector* V = &gcl_vec[8 * k];
            // M: w1a_t, w1b_t, w2_t, w3a_t, w3b_t, w4_t;  V: w1r, w1d, b1, b2, wa, ba, b3, b4
            gemm_parallel(h.data(), nf, N, M[0].data(), nf, nf, P.data(), nf, V[2].data(), false);
            gemm_parallel(h.data(), nf, N, M[1].data(), nf, nf, Q.data(), nf, nullptr, false);
            const float* wa = V[4].data();
            const float ba = V[5].data()[0];
            for_each_receiver(L, N, nf, P.data(), Q.data(), V[0].data(), V[1].data(), M[2].data(), V[3].data(), g,
                              [&](int64_t a, int64_t, int64_t, int64_t, int64_t rows, const float* mh) {
                float* ag = agg.data() + a * nf;
                std::fill(ag, ag + nf, 0.0f);
                for (int64_t j = 0; j < rows; ++j) {
                    const float* mj = mh + j * nf;
                    float dot = ba;
                    for (int64_t c = 0; c < nf; ++c) dot += mj[c] * wa[c];
                    const float gate = sigmoid(dot) * inv_norm;
#pragma omp simd
                    for (int64_t c = 0; c < nf; ++c) ag[c] += mj[c] * gate;
                }
            });
            // h <- h + W4 silu(W3a h + W3b agg + b3) + b4
            gemm_parallel(h.data(), nf, N, M[3].data(), nf, nf, tmp.data(), nf, V[6].data(), false);
            gemm_parallel(agg.data(), nf, N, M[4].data(), nf, nf, tmp.data(), nf, nullptr, true);
            silu_inplace(tmp.data(), N * nf);
            gemm_parallel(tmp.data(), nf, N, M[5].data(), nf, nf, h.data(), nf, nullptr, true);
            const float* b4 = V[7].data();
            for (int64_t a = 0; a < N; ++a)
                for (int64_t c = 0; c < nf; ++c) h[a * nf + c] += b4[c];
        }
        // coordinate update with the block's h
        const Matrix* M = &coord[3 * layer];      // w7a_t, w7b_t, w6_t
        const Vector* V = &coord_vec[5 * layer];  // w7r, w7d, b7, b6, w5
        gemm_parallel(h.data(), nf, N, M[0].data(), nf, nf, P.data(), nf, V[2].data(), false);
        gemm_parallel(h.data(), nf, N, M[1].data(), nf, nf, Q.data(), nf, nullptr, false);
        const float* w5 = V[4].data();
        for_each_receiver(L, N, nf, P.data(), Q.data(), V[0].data(), V[1].data(), M[2].data(), V[3].data(), g,
                          [&](int64_t a, int64_t i, int64_t n, int64_t pair0, int64_t, const float* mh) {
            float dx = 0.0f, dy = 0.0f, dz = 0.0f;
            int64_t row = 0;
            for (int64_t j = 0; j < n; ++j) {
                if (j == i) continue;
                const float* mj = mh + row * nf;
                float dot = 0.0f;
                for (int64_t c = 0; c < nf; ++c) dot += mj[c] * w5[c];
                const float sc = std::tanh(dot) * coords_range * inv_norm;
                const float* u = g.dir.data() + 3 * (pair0 + i * n + j);
                dx += u[0] * sc;
                dy += u[1] * sc;
                dz += u[2] * sc;
                ++row;
            }
            x_next[3 * a] = x[3 * a] + dx;
            x_next[3 * a + 1] = x[3 * a + 1] + dy;
            x_next[3 * a + 2] = x[3 * a + 2] + dz;
        });
        x.swap(x_next);
    }

    float* h_out = new float[N * F > 0 ? N * F : 1];
    nb::capsule h_owner(h_out, [](void* p) noexcept { delete[] static_cast<float*>(p); });
    gemm_parallel(h.data(), nf, N, out_w_t.data(), nf, F, h_out, F, out_b.data(), false);
    float* x_out = new float[3 * N > 0 ? 3 * N : 1];
    nb::capsule x_owner(x_out, [](void* p) noexcept { delete[] static_cast<float*>(p); });
    std::copy(x.begin(), x.end(), x_out);
    return {FloatOut2(h_out, {static_cast<size_t>(N), static_cast<size_t>(F)}, h_owner),
            FloatOut2(x_out, {static_cast<size_t>(N), 3}, x_owner)};
}

// Squared distances of all ordered pairs inside each molecule, concatenated
// molecule by molecule (row-major n_m x n_m blocks).
static FloatOut1 pairwise_sq_dist(Positions x, Offsets offsets) {
    const int64_t n_atoms = static_cast<int64_t>(x.shape(0));
    check_offsets(offsets.data(), offsets.shape(0), n_atoms);
    const Layout L = make_layout(offsets.data(), static_cast<int64_t>(offsets.shape(0)) - 1);
    std::vector<float> r;
    pair_distances(x.data(), L, r, nullptr, 1.0f);
    float* out = new float[r.size() > 0 ? r.size() : 1];
    nb::capsule owner(out, [](void* p) noexcept { delete[] static_cast<float*>(p); });
    std::copy(r.begin(), r.end(), out);
    return FloatOut1(out, {r.size()}, owner);
}

static bool openmp_enabled() {
#ifdef EDM_BENCH_OPENMP
    return true;
#else
    return false;
#endif
}

static int max_threads() {
#ifdef EDM_BENCH_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

NB_MODULE(_egnn_cpp, m) {
    m.doc() = "edm-bench compiled inference core (C++17, OpenMP)";
    m.def("pairwise_sq_dist", &pairwise_sq_dist, nb::arg("positions"), nb::arg("offsets"),
          "Squared distances of all ordered atom pairs per molecule of a ragged batch.\n\n"
          "positions: (n_atoms, 3) float32, C-contiguous; offsets: (n_molecules + 1,) int64.\n"
          "Returns the n_m x n_m blocks concatenated, float32.");
    m.def("egnn_forward", &egnn_forward, nb::arg("h0"), nb::arg("x0"), nb::arg("offsets"), nb::arg("emb_w_t"),
          nb::arg("emb_b"), nb::arg("out_w_t"), nb::arg("out_b"), nb::arg("gcl"), nb::arg("gcl_vec"),
          nb::arg("coord"), nb::arg("coord_vec"), nb::arg("n_layers"), nb::arg("inv_sublayers"),
          nb::arg("coords_range"), nb::arg("norm_constant"), nb::arg("normalization_factor"),
          "The EDM EGNN on a ragged batch (weights from edm_core.backends.pack_egnn_weights).\n"
          "Returns (h_out (N, F), x_out (N, 3)).");
    m.def("openmp_enabled", &openmp_enabled, "Whether the extension was compiled with OpenMP.");
    m.def("max_threads", &max_threads, "OpenMP's thread count for the next parallel region.");
}
