// dereflect_classic_generator.cpp — the per-pixel parts of the classical
// single-image reflection suppression (after Arvanitopoulos, Achanta and
// Süsstrunk, "Single Image Reflection Suppression", CVPR 2017), one channel
// of an interleaved RGB image at a time. stages/dereflect_classic.c runs
//
//   dereflect_classic_residual  g = div(τ_h(∇I) − ∇I): the divergence of the
//                               gradients the threshold removes, negated
//   (C, FFTW)                   X = the screened Poisson correction from g
//   dereflect_classic_finish    T = clamp(I + X, 0, 1) into the output channel
//
// and derives the formula (see there). The discrete operators, which the
// DCT-II diagonalises (Neumann boundaries, no wrap-around):
//   ∇u(x, y)   = (u(x+1, y) − u(x, y), u(x, y+1) − u(x, y)), each component 0
//                past the last column / row (the input read with repeat-edge
//                gives exactly that)
//   div(p)     = p_x(x, y) − p_x(x−1, y) + p_y(x, y) − p_y(x, y−1), with
//                p(−1) = 0 (= −∇ᵀ, so div ∇ is the 5-point Neumann Laplacian)
//   τ_h(p)     = p where |p|² ≥ h², else 0 (per pixel, per channel)

#include "Halide.h"

namespace {

using namespace Halide;

// Interleaved (x, y, c) float RGB: c innermost in memory.
void interleaved(GeneratorInput<Buffer<float>> &rgb) {
    rgb.dim(0).set_stride(3);
    rgb.dim(2).set_stride(1).set_bounds(0, 3);
}

class DereflectResidual : public Generator<DereflectResidual> {
public:
    Input<Buffer<float>> rgb{"rgb", 3};            // (x, y, c) interleaved, c = 0..2
    Input<int> channel{"channel"};                 // which c
    Input<float> h{"h"};                           // gradient threshold, >= 0
    Output<Buffer<float>> residual{"residual", 2}; // planar, the size of rgb

    Var x{"x"}, y{"y"};

    void generate() {
        Expr W = rgb.width(), H = rgb.height();
        Func u{"u"};
        u(x, y) = rgb(clamp(x, 0, W - 1), clamp(y, 0, H - 1), channel);

        // The small gradients, which the threshold removes: forward
        // differences, zero one past the edge by the repeat-edge read. Kept
        // (so not here) when |∇I| ≥ h: h = 0 removes nothing at all.
        Func removed{"removed"};
        {
            Expr gx = u(x + 1, y) - u(x, y), gy = u(x, y + 1) - u(x, y);
            Expr small = gx * gx + gy * gy < h * h;
            removed(x, y) = Tuple(select(small, gx, 0.f), select(small, gy, 0.f));
        }
        // div(τ_h(∇I) − ∇I) = −div(removed). removed(−1, y)[0] and
        // removed(x, −1)[1] read differences across the repeated edge: 0.
        residual(x, y) = (removed(x - 1, y)[0] - removed(x, y)[0]) +
                         (removed(x, y - 1)[1] - removed(x, y)[1]);

        // ------------------------------------------------------------ schedule
        interleaved(rgb);
        rgb.set_estimates({{0, 7680}, {0, 4320}, {0, 3}});
        channel.set_estimate(0);
        h.set_estimate(0.03f);
        residual.set_estimates({{0, 7680}, {0, 4320}});

        if (get_auto_schedule()) return;

        // Bands of rows in parallel; `removed` slides down each band (stored
        // per band, computed per row), so each is computed once but for a
        // band's first row. Narrow images (1×N, the tests' small sizes) run
        // scalar: a vector wider than the output would be shifted outside it.
        // 2026-12, Zen 3, 2 threads on a loaded machine, 7680×4320: 53 ms a
        // channel (the DCT solve around it: ~0.85 s).
        const int vec = natural_vector_size<float>();
        Var yo{"yo"}, yi{"yi"};
        residual.split(y, yo, yi, 64, TailStrategy::GuardWithIf).parallel(yo);
        residual.specialize(residual.width() >= vec).vectorize(x, vec);
        removed.store_at(residual, yo).compute_at(residual, yi).vectorize(x, vec);
    }
};

class DereflectFinish : public Generator<DereflectFinish> {
public:
    Input<Buffer<float>> rgb{"rgb", 3};               // the input image, (x, y, c) interleaved
    Input<Buffer<float>> correction{"correction", 2}; // X, planar
    Input<int> channel{"channel"};
    Output<Buffer<float>> output{"output", 2};        // channel `channel` of an interleaved image

    Var x{"x"}, y{"y"};

    void generate() {
        output(x, y) = clamp(rgb(x, y, channel) + correction(x, y), 0.f, 1.f);

        // ------------------------------------------------------------ schedule
        interleaved(rgb);
        output.dim(0).set_stride(3);
        rgb.set_estimates({{0, 7680}, {0, 4320}, {0, 3}});
        correction.set_estimates({{0, 7680}, {0, 4320}});
        channel.set_estimate(0);
        output.set_estimates({{0, 7680}, {0, 4320}});

        if (get_auto_schedule()) return;

        // Pointwise, and every pixel read before it is written with no
        // overlapping vectors (GuardWithIf, not ShiftInwards): the output may
        // be the input image itself. 2026-12, same machine: 23 ms a channel.
        const int vec = natural_vector_size<float>();
        Var yo{"yo"}, yi{"yi"};
        output.split(y, yo, yi, 64, TailStrategy::GuardWithIf).parallel(yo)
            .vectorize(x, vec, TailStrategy::GuardWithIf);
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(DereflectResidual, dereflect_classic_residual)
HALIDE_REGISTER_GENERATOR(DereflectFinish, dereflect_classic_finish)
