// Compiled inference core for the EGNN denoiser (CPU, C++17, OpenMP).
//
// Layout: molecules are packed without padding ("ragged"); molecule m owns
// atoms [offsets[m], offsets[m+1]). Every pairwise quantity of molecule m is a
// dense n_m x n_m block, blocks stored one after another (block_offsets).
//
// This file currently holds the ragged pairwise-distance primitive that every
// EGNN layer starts from (r_ij = |x_i - x_j|^2). The fused layer of the
// kernels issue is built on the same layout.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace nb = nanobind;

using Positions = nb::ndarray<const float, nb::shape<-1, 3>, nb::c_contig, nb::device::cpu>;
using Offsets = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using FloatOut = nb::ndarray<nb::numpy, float, nb::ndim<1>>;

static void check_offsets(const int64_t* off, size_t n_off, int64_t n_atoms) {
    if (n_off < 1) throw std::invalid_argument("offsets must hold at least one entry (0)");
    if (off[0] != 0) throw std::invalid_argument("offsets[0] must be 0");
    for (size_t m = 1; m < n_off; ++m)
        if (off[m] < off[m - 1])
            throw std::invalid_argument("offsets must be non-decreasing (molecule " + std::to_string(m - 1) + ")");
    if (off[n_off - 1] != n_atoms)
        throw std::invalid_argument("offsets[-1] = " + std::to_string(off[n_off - 1]) +
                                    " but positions hold " + std::to_string(n_atoms) + " atoms");
}

// Squared distances of all ordered pairs inside each molecule, concatenated
// molecule by molecule (row-major n_m x n_m blocks).
static FloatOut pairwise_sq_dist(Positions x, Offsets offsets) {
    const int64_t n_atoms = static_cast<int64_t>(x.shape(0));
    const int64_t* off = offsets.data();
    const size_t n_mol = offsets.shape(0) - 1;
    check_offsets(off, offsets.shape(0), n_atoms);

    std::vector<int64_t> block(n_mol + 1, 0);
    for (size_t m = 0; m < n_mol; ++m) {
        const int64_t n = off[m + 1] - off[m];
        block[m + 1] = block[m] + n * n;
    }
    float* out = new float[block[n_mol] > 0 ? block[n_mol] : 1];
    nb::capsule owner(out, [](void* p) noexcept { delete[] static_cast<float*>(p); });
    const float* xp = x.data();

#pragma omp parallel for schedule(dynamic, 4) if (n_mol > 8)
    for (int64_t m = 0; m < static_cast<int64_t>(n_mol); ++m) {
        const int64_t a0 = off[m], n = off[m + 1] - off[m];
        float* o = out + block[m];
        for (int64_t i = 0; i < n; ++i) {
            const float* xi = xp + 3 * (a0 + i);
            for (int64_t j = 0; j < n; ++j) {
                const float* xj = xp + 3 * (a0 + j);
                const float dx = xi[0] - xj[0], dy = xi[1] - xj[1], dz = xi[2] - xj[2];
                o[i * n + j] = dx * dx + dy * dy + dz * dz;
            }
        }
    }
    return FloatOut(out, {static_cast<size_t>(block[n_mol])}, owner);
}

static bool openmp_enabled() {
#ifdef EDM_BENCH_OPENMP
    return true;
#else
    return false;
#endif
}

NB_MODULE(_egnn_cpp, m) {
    m.doc() = "edm-bench compiled inference core (C++17, OpenMP)";
    m.def("pairwise_sq_dist", &pairwise_sq_dist, nb::arg("positions"), nb::arg("offsets"),
          "Squared distances of all ordered atom pairs per molecule of a ragged batch.\n\n"
          "positions: (n_atoms, 3) float32, C-contiguous; offsets: (n_molecules + 1,) int64.\n"
          "Returns the n_m x n_m blocks concatenated, float32.");
    m.def("openmp_enabled", &openmp_enabled, "Whether the extension was compiled with OpenMP.");
}
