// classic_isp_generator.cpp — the classical ISP: Bayer mosaic -> interleaved RGB.
//
// Stages (all in one fused pipeline):
//   normalise  (raw - black[site]) * scale[site], clipped to 1: scale folds the
//              white level and the white-balance gains, normalised so the smallest
//              gain is 1, so a saturated site of any colour clips to the same
//              white: no magenta highlights
//   demosaic   ratio-corrected, edge-directed (after the RCD method of
//              L. Sanz Rodríguez): green from direction-weighted, low-pass-ratio
//              corrected neighbours; red/blue at blue/red sites along the better
//              diagonal; red/blue at green sites along the better axis, both
//              from colour differences
//   colour     3×3 matrix (white-balanced camera RGB -> linear sRGB), exposure
//   sharpen    optional unsharp mask
//   tone       optional S-curve on the sRGB-encoded value, after the transfer
//   output     8- or 16-bit, interleaved RGB, or float32 (the same 0..1
//              values before quantisation)
//
// GeneratorParam `half` builds the half-size variant: each 2×2 block becomes
// one pixel (no demosaic), as dcraw's -h.
//
// The CFA is given by (cfa_x, cfa_y): a site (x, y) is red when
// (x + cfa_x) and (y + cfa_y) are both even, blue when both are odd, green
// otherwise. So RGGB is (0,0), GRBG (1,0), GBRG (0,1), BGGR (1,1).
//
// The caller (stages/classic_isp.c) allocates the output rounded up to whole
// tiles; the input is read through a mirroring boundary condition.

#include "Halide.h"

namespace {

using namespace Halide;

Expr sq(Expr v) { return v * v; }

class ClassicIsp : public Generator<ClassicIsp> {
public:
    GeneratorParam<bool> half{"half", false};

    Input<Buffer<uint16_t>> raw{"raw", 2};
    Input<int> cfa_x{"cfa_x"};
    Input<int> cfa_y{"cfa_y"};
    Input<Buffer<float>> black{"black", 2};   // [2][2], indexed (x & 1, y & 1)
    Input<Buffer<float>> scale{"scale", 2};   // [2][2]: wb gain / (white - black)
    Input<Buffer<float>> matrix{"matrix", 2}; // matrix(in, out): out = sum_in m * rgb[in]
    Input<float> exposure{"exposure"};        // linear gain
    Input<float> tone{"tone"};                // 0 .. 1
    Input<float> sharpen{"sharpen"};          // 0 = off
    Input<bool> linear{"linear"};             // no transfer, no tone curve
    Output<Buffer<>> output{"output", 3};     // (x, y, c), c innermost in memory

    Var x{"x"}, y{"y"}, c{"c"};

    void generate() {
        // Mirroring about the edge sample (period 2(n-1), even) keeps every
        // coordinate's CFA parity.
        Expr W = raw.width(), H = raw.height();

        // ---- normalise: black, white, white balance, clip
        Func norm{"norm"};
        {
            Func mirrored = BoundaryConditions::mirror_interior(raw, {{0, W}, {0, H}});
            // Per-site constants chosen by parity: vector selects, not gathers.
            auto site = [&](const Input<Buffer<float>> &b) {
                return select((y & 1) == 0, select((x & 1) == 0, b(0, 0), b(1, 0)),
                              select((x & 1) == 0, b(0, 1), b(1, 1)));
            };
            Expr v = cast<float>(mirrored(x, y)) - site(black);
            norm(x, y) = min(max(v, 0.f) * site(scale), 1.f);
        }

        Func rgb_cam{"rgb_cam"};
        if (half) {
            rgb_cam = half_size(norm);
        } else {
            rgb_cam = demosaic(norm);
        }

        // ---- colour: camera RGB -> linear sRGB, exposure
        Func lin{"lin"};
        lin(x, y, c) = max(matrix(0, c) * rgb_cam(x, y, 0) + matrix(1, c) * rgb_cam(x, y, 1) +
                               matrix(2, c) * rgb_cam(x, y, 2),
                           0.f) *
                       exposure;

        // ---- sharpen: unsharp mask against a 3×3 binomial blur
        Func blur_x{"blur_x"}, sharp{"sharp"};
        // amount 0 gives lin exactly, so no branch is needed.
        blur_x(x, y, c) = lin(x - 1, y, c) + 2.f * lin(x, y, c) + lin(x + 1, y, c);
        Expr blur = (blur_x(x, y - 1, c) + 2.f * blur_x(x, y, c) + blur_x(x, y + 1, c)) / 16.f;
        sharp(x, y, c) = lin(x, y, c) + sharpen * (lin(x, y, c) - blur);

        // ---- transfer and tone
        Func encoded{"encoded"};
        {
            Expr v = clamp(sharp(x, y, c), 0.f, 1.f);
            Expr srgb = select(v <= 0.0031308f, 12.92f * v,
                               1.055f * pow(v, 1.f / 2.4f) - 0.055f);
            // A cubic S-curve e + a·e(1-e)(2e-1): fixed ends, monotonic for a < 1.
            Expr a = 0.6f * clamp(tone, 0.f, 1.f);
            Expr toned = srgb + a * srgb * (1.f - srgb) * (2.f * srgb - 1.f);
            encoded(x, y, c) = select(linear, v, toned);
        }

        Type t = output.type();
        Expr v = clamp(encoded(x, y, c), 0.f, 1.f);
        if (t.is_float()) {
            output(x, y, c) = cast(t, v);
        } else {  // round to nearest
            float top = t.bits() == 8 ? 255.f : 65535.f;
            output(x, y, c) = cast(t, v * top + 0.5f);
        }

        // ------------------------------------------------------------ schedule
        output.dim(0).set_stride(3);
        output.dim(2).set_stride(1).set_bounds(0, 3);
        raw.dim(0).set_min(0);
        raw.dim(1).set_min(0);
        black.dim(0).set_bounds(0, 2).dim(1).set_bounds(0, 2);
        scale.dim(0).set_bounds(0, 2).dim(1).set_bounds(0, 2);
        matrix.dim(0).set_bounds(0, 3).dim(1).set_bounds(0, 3);

        raw.set_estimates({{0, 4000}, {0, 3000}});
        black.set_estimates({{0, 2}, {0, 2}});
        scale.set_estimates({{0, 2}, {0, 2}});
        matrix.set_estimates({{0, 3}, {0, 3}});
        exposure.set_estimate(1.f);
        tone.set_estimate(0.5f);
        sharpen.set_estimate(0.f);
        linear.set_estimate(false);
        cfa_x.set_estimate(0);
        cfa_y.set_estimate(0);
        output.set_estimates({{0, half ? 2000 : 4000}, {0, half ? 1500 : 3000}, {0, 3}});

        if (get_auto_schedule()) return;

        // CPU: output tiles in parallel; inside a tile every stage slides down
        // with the output rows (store_at tile, compute_at row), so a stage
        // keeps only the few rows its consumers still need and rows are
        // computed once: the only recomputation is the apron at each tile's
        // top and sides. Channels unrolled, x vectorised.
        // 2026-12-01, Zen 3 2 threads, 3522×2348 CR2: 128×32 tiles, every
        // stage per tile: 82 ms; 512×128 sliding tiles: see README benchmark.
        const int vec = natural_vector_size<float>();
        Var xo{"xo"}, yo{"yo"}, xi{"xi"}, yi{"yi"}, tile{"tile"};
        output.reorder(c, x, y).unroll(c);
        // Tiles round up: the caller allocates the output with its width and
        // height rounded up to whole tiles (512 wide from 512 on, else 128,
        // by 128 rows), so every pixel is computed by exactly one tile and the
        // result cannot depend on which of two overlapping tiles wrote last.
        const TailStrategy round_up = TailStrategy::RoundUp;
        output.specialize(output.width() >= 512)
            .tile(x, y, xo, yo, xi, yi, 512, 128, round_up)
            .fuse(xo, yo, tile)
            .parallel(tile)
            .vectorize(xi, 2 * vec);
        output.tile(x, y, xo, yo, xi, yi, 128, 128, round_up)
            .fuse(xo, yo, tile)
            .parallel(tile)
            .vectorize(xi, 2 * vec);

        std::vector<Func> planes = stages;
        planes.push_back(norm);
        for (Func f : planes) {
            f.store_at(output, tile).compute_at(output, yi).vectorize(x, vec);
        }
        for (Func f : {rgb_cam, lin, blur_x}) {
            f.store_at(output, tile).compute_at(output, yi).reorder(c, x, y).unroll(c)
                .vectorize(x, vec);
        }
    }

private:
    Func half_size(Func norm) {
        Func h{"half"};
        // Offsets of red and blue inside each 2×2 block; the greens are the other two.
        Expr rx = cfa_x & 1, ry = cfa_y & 1;
        Expr r = norm(2 * x + rx, 2 * y + ry);
        Expr b = norm(2 * x + 1 - rx, 2 * y + 1 - ry);
        Expr g = 0.5f * (norm(2 * x + 1 - rx, 2 * y + ry) + norm(2 * x + rx, 2 * y + 1 - ry));
        h(x, y, c) = mux(c, {r, g, b});
        return h;
    }

    Func demosaic(Func cfa) {
        const float eps = 1e-5f, eps2 = 1e-10f;
        Expr px = (x + cfa_x) & 1, py = (y + cfa_y) & 1;
        Expr is_green = px != py;
        Expr is_red = px == 0 && py == 0;

        // 1. Axis discrimination: energy of a zero-DC 7-tap high pass along
        //    each axis, summed over 3 samples; vh = V/(V+H) is the weight of
        //    the horizontal estimate.
        Func hp_v{"hp_v"}, hp_h{"hp_h"}, vh{"vh"};
        hp_v(x, y) = sq(cfa(x, y - 3) - cfa(x, y - 1) - cfa(x, y + 1) + cfa(x, y + 3) -
                        3.f * (cfa(x, y - 2) + cfa(x, y + 2)) + 6.f * cfa(x, y));
        hp_h(x, y) = sq(cfa(x - 3, y) - cfa(x - 1, y) - cfa(x + 1, y) + cfa(x + 3, y) -
                        3.f * (cfa(x - 2, y) + cfa(x + 2, y)) + 6.f * cfa(x, y));
        {
            Expr v = max(eps2, hp_v(x, y - 1) + hp_v(x, y) + hp_v(x, y + 1));
            Expr h = max(eps2, hp_h(x - 1, y) + hp_h(x, y) + hp_h(x + 1, y));
            vh(x, y) = v / (v + h);
        }
        // Refine with the diagonal neighbours when they are more decided.
        Func vh_disc{"vh_disc"};
        {
            Expr centre = vh(x, y);
            Expr around = 0.25f * (vh(x - 1, y - 1) + vh(x + 1, y - 1) + vh(x - 1, y + 1) +
                                   vh(x + 1, y + 1));
            vh_disc(x, y) = select(abs(0.5f - centre) < abs(0.5f - around), around, centre);
        }

        // 2. Low pass of the mosaic, used for the ratio correction at red/blue sites.
        Func lpf{"lpf"};
        lpf(x, y) = cfa(x, y) +
                    0.5f * (cfa(x, y - 1) + cfa(x, y + 1) + cfa(x - 1, y) + cfa(x + 1, y)) +
                    0.25f * (cfa(x - 1, y - 1) + cfa(x + 1, y - 1) + cfa(x - 1, y + 1) +
                             cfa(x + 1, y + 1));

        // 3. Green at red/blue sites.
        Func green{"green"};
        {
            Expr d_v = abs(cfa(x, y - 1) - cfa(x, y + 1));
            Expr d_h = abs(cfa(x - 1, y) - cfa(x + 1, y));
            Expr n_grad = eps + d_v + abs(cfa(x, y) - cfa(x, y - 2)) +
                          abs(cfa(x, y - 1) - cfa(x, y - 3)) + abs(cfa(x, y - 2) - cfa(x, y - 4));
            Expr s_grad = eps + d_v + abs(cfa(x, y) - cfa(x, y + 2)) +
                          abs(cfa(x, y + 1) - cfa(x, y + 3)) + abs(cfa(x, y + 2) - cfa(x, y + 4));
            Expr w_grad = eps + d_h + abs(cfa(x, y) - cfa(x - 2, y)) +
                          abs(cfa(x - 1, y) - cfa(x - 3, y)) + abs(cfa(x - 2, y) - cfa(x - 4, y));
            Expr e_grad = eps + d_h + abs(cfa(x, y) - cfa(x + 2, y)) +
                          abs(cfa(x + 1, y) - cfa(x + 3, y)) + abs(cfa(x + 2, y) - cfa(x + 4, y));
            Expr l0 = lpf(x, y);
            auto ratio = [&](Expr neighbour, Expr l) { return neighbour * 2.f * l0 / (eps + l0 + l); };
            Expr n_est = ratio(cfa(x, y - 1), lpf(x, y - 2));
            Expr s_est = ratio(cfa(x, y + 1), lpf(x, y + 2));
            Expr w_est = ratio(cfa(x - 1, y), lpf(x - 2, y));
            Expr e_est = ratio(cfa(x + 1, y), lpf(x + 2, y));
            Expr v_est = (s_grad * n_est + n_grad * s_est) / (n_grad + s_grad);
            Expr h_est = (w_grad * e_est + e_grad * w_est) / (e_grad + w_grad);
            Expr g = clamp(v_est + vh_disc(x, y) * (h_est - v_est), 0.f, 1.f);
            green(x, y) = select(is_green, cfa(x, y), g);
        }

        // 4. Diagonal discrimination, then the missing one of red/blue at
        //    blue/red sites, from colour differences along the better diagonal.
        Func hp_p{"hp_p"}, hp_q{"hp_q"}, pq{"pq"}, pq_disc{"pq_disc"};
        hp_p(x, y) = sq(cfa(x - 3, y - 3) - cfa(x - 1, y - 1) - cfa(x + 1, y + 1) +
                        cfa(x + 3, y + 3) - 3.f * (cfa(x - 2, y - 2) + cfa(x + 2, y + 2)) +
                        6.f * cfa(x, y));
        hp_q(x, y) = sq(cfa(x + 3, y - 3) - cfa(x + 1, y - 1) - cfa(x - 1, y + 1) +
                        cfa(x - 3, y + 3) - 3.f * (cfa(x + 2, y - 2) + cfa(x - 2, y + 2)) +
                        6.f * cfa(x, y));
        {
            Expr p = max(eps2, hp_p(x - 1, y - 1) + hp_p(x, y) + hp_p(x + 1, y + 1));
            Expr q = max(eps2, hp_q(x + 1, y - 1) + hp_q(x, y) + hp_q(x - 1, y + 1));
            pq(x, y) = p / (p + q);
            Expr centre = pq(x, y);
            Expr around = 0.25f * (pq(x - 1, y - 1) + pq(x + 1, y - 1) + pq(x - 1, y + 1) +
                                   pq(x + 1, y + 1));
            pq_disc(x, y) = select(abs(0.5f - centre) < abs(0.5f - around), around, centre);
        }
        Func other{"other"};  // at red sites: blue; at blue sites: red
        {
            Expr g0 = green(x, y);
            auto diag_grad = [&](int dx, int dy) {
                return eps + abs(cfa(x + dx, y + dy) - cfa(x - dx, y - dy)) +
                       abs(cfa(x + dx, y + dy) - cfa(x + 3 * dx, y + 3 * dy)) +
                       abs(g0 - green(x + 2 * dx, y + 2 * dy));
            };
            auto diff = [&](int dx, int dy) { return cfa(x + dx, y + dy) - green(x + dx, y + dy); };
            Expr nw_g = diag_grad(-1, -1), ne_g = diag_grad(1, -1);
            Expr sw_g = diag_grad(-1, 1), se_g = diag_grad(1, 1);
            Expr p_est = (nw_g * diff(1, 1) + se_g * diff(-1, -1)) / (nw_g + se_g);
            Expr q_est = (ne_g * diff(-1, 1) + sw_g * diff(1, -1)) / (ne_g + sw_g);
            other(x, y) = clamp(g0 + p_est + pq_disc(x, y) * (q_est - p_est), 0.f, 1.f);
        }
        // Red and blue planes, valid at every red/blue site.
        Func red_rb{"red_rb"}, blue_rb{"blue_rb"};
        red_rb(x, y) = select(is_red, cfa(x, y), other(x, y));
        blue_rb(x, y) = select(is_red, other(x, y), cfa(x, y));

        // 5. Red and blue at green sites, along the better axis.
        auto at_green = [&](Func plane) {
            Expr g0 = green(x, y);
            auto axis_grad = [&](int dx, int dy) {
                return eps + abs(g0 - green(x + 2 * dx, y + 2 * dy)) +
                       abs(plane(x + dx, y + dy) - plane(x - dx, y - dy)) +
                       abs(plane(x + dx, y + dy) - plane(x + 3 * dx, y + 3 * dy));
            };
            auto diff = [&](int dx, int dy) { return plane(x + dx, y + dy) - green(x + dx, y + dy); };
            Expr n_g = axis_grad(0, -1), s_g = axis_grad(0, 1);
            Expr w_g = axis_grad(-1, 0), e_g = axis_grad(1, 0);
            Expr v_est = (n_g * diff(0, 1) + s_g * diff(0, -1)) / (n_g + s_g);
            Expr h_est = (w_g * diff(1, 0) + e_g * diff(-1, 0)) / (w_g + e_g);
            return clamp(g0 + v_est + vh_disc(x, y) * (h_est - v_est), 0.f, 1.f);
        };
        Func rgb{"demosaiced"};
        rgb(x, y, c) = mux(c, {select(is_green, at_green(red_rb), red_rb(x, y)), green(x, y),
                               select(is_green, at_green(blue_rb), blue_rb(x, y))});
        stages = {hp_v, hp_h, vh, vh_disc, lpf, green, hp_p, hp_q, pq, pq_disc, other, red_rb,
                  blue_rb};
        return rgb;
    }

    std::vector<Func> stages;
};

}  // namespace

HALIDE_REGISTER_GENERATOR(ClassicIsp, classic_isp)
