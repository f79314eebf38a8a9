// learned_isp_generator.cpp — the learned-ISP task's inference: Bayer
// mosaic -> sRGB, for any network of the registry (GeneratorParam `net`: its
// folder under generators/nets/), each written once with the layer
// vocabulary, with the parameters of its tensors.def in one flat buffer.
//
// The network's input (nets/isp.h) comes from the normalised mosaic. Other
// Bayer patterns are shifted to RGGB first: with (cfa_x, cfa_y) as in the
// classical ISP, the networks run in coordinates u = x + cfa_x,
// v = y + cfa_y, where red sits at even (u, v); samples outside the mosaic
// come from a parity-keeping mirror.
//
// A network with global statistics (RMFA's channel attention pools each
// block's fused features over the whole image) runs in passes rather than
// keep a full-size map: pass b (GeneratorParam `pass`, b < its statistics
// points) outputs per-tile sums and maxima of the map pooled at point b,
// given the pooled statistics of the points before it (stages/learned_isp.c
// reduces the tiles); the image pass (pass -1) runs the whole network with
// every point's statistics.
//
// learned_isp_piece (below) runs such a network as a chain of pieces
// instead (nets/isp.h: build_from; stages/chain.c): each block input it
// pools from is stored once, so nothing but the tiles' aprons is computed
// twice.

#include "Halide.h"
#include "lumos_isp_nets.h"
#include "tile_schedule.h"

namespace {

using namespace Halide;
using lumos::Map;
using lumos::NetBuilder;
using lumos::place_layers;

// Output tiles of every network and of the statistics (see the schedule);
// stages/learned_isp.c rounds buffers up to them.
constexpr int kTileW = 256, kTileH = 128;

// Per-tile sums (channels 0..C-1) and maxima (C..2C-1) of the C-channel
// map `pooled` over its domain, into out(c, tile_x, tile_y); returns the
// two reductions, for the schedule.
std::vector<Func> tile_statistics(GeneratorOutput<Buffer<>> &out, const Map &pooled, Var c, Var x, Var y) {
    const int n = pooled.channels;
    RDom r(0, kTileW, 0, kTileH);
    Expr fx = x * kTileW + r.x, fy = y * kTileH + r.y;
    r.where(fx < pooled.width && fy < pooled.height);
    Func sums{"sums"}, maxima{"maxima"};
    sums(c, x, y) = 0.f;
    sums(c, x, y) += pooled.f(c, fx, fy);
    maxima(c, x, y) = Float(32).min();
    maxima(c, x, y) = max(maxima(c, x, y), pooled.f(c, fx, fy));
    out(c, x, y) = select(c < n, sums(min(c, n - 1), x, y), maxima(max(c - n, 0), x, y));
    out.dim(0).set_bounds(0, 2 * n);
    return {sums, maxima};
}

// The statistics output's loops: a tile per iteration, rows in parallel;
// returns where its layers go.
LoopLevel schedule_statistics(GeneratorOutput<Buffer<>> &out, const std::vector<Func> &stat_funcs, Var c,
                              Var x, Var y, int vec) {
    out.compute_root().reorder(c, x, y).parallel(y);
    for (Func f : stat_funcs) {
        f.compute_at(out, x);
        f.update().reorder(c, f.rvars(0)[0], f.rvars(0)[1]).vectorize(c, vec);
        f.vectorize(c, vec);
    }
    return LoopLevel(out, x);
}

class LearnedIsp : public Generator<LearnedIsp> {
public:
    GeneratorParam<std::string> net{"net", "efficient"};  // a folder of generators/nets/
    GeneratorParam<int> pass{"pass", -1};  // < the net's statistics points: that pass; else the image

    Input<Buffer<uint16_t>> raw{"raw", 2};
    Input<int> cfa_x{"cfa_x"};
    Input<int> cfa_y{"cfa_y"};
    Input<Buffer<float>> black{"black", 2};   // [2][2] per site, indexed (x & 1, y & 1)
    Input<Buffer<float>> scale{"scale", 2};   // [2][2]: 1 / (white - black)
    Input<Buffer<float>> weights{"weights", 1};
    Input<Buffer<float>> stats{"stats", 3};   // (channel, 0 mean | 1 max, statistics point)
    Output<Buffer<>> output{"output", 3};     // image: (x, y, c), c innermost; statistics:
                                              // (c, tile_x, tile_y), C sums then C maxima

    Var x{"x"}, y{"y"}, c{"c"};

    void generate() {
        const std::string name = net;
        const lumos::IspNet &spec = lumos::isp_net(name);
        NetBuilder b(weights, name);
        Expr W = raw.width(), H = raw.height();

        Func norm = lumos::normalised_mosaic(raw, W, H, cfa_x, cfa_y, black, scale);
        Map in = spec.input(norm, W, H, cfa_x, cfa_y);
        // Each statistics point's pooled (mean, max), from the passes before this one.
        lumos::GlobalPooling from_stats = [this](NetBuilder &, const Map &m, int i) {
            Func mean{"mean" + std::to_string(i)}, mx{"max" + std::to_string(i)};
            mean(c, x, y) = stats(c, 0, i);
            mx(c, x, y) = stats(c, 1, i);
            return std::make_pair(Map{mean, m.channels, 1, 1}, Map{mx, m.channels, 1, 1});
        };
        const bool stats_pass = pass >= 0 && pass < spec.stat_points;
        Map pooled;
        Map result = spec.build(b, in, stats_pass ? (int)pass : spec.stat_points, pooled, from_stats);
        if (stats_pass) {
            stat_funcs = tile_statistics(output, pooled, c, x, y);
            schedule_net(b, true);
            return;
        }
        b.finish();

        Type t = output.type();
        Expr value = result.f(c, x + cfa_x, y + cfa_y);
        if (t.is_float()) {
            output(x, y, c) = value;  // the network's own output, for tests
        } else {
            float top = t.bits() == 8 ? 255.f : 65535.f;
            output(x, y, c) = cast(t, clamp(value, 0.f, 1.f) * top + 0.5f);
        }
        output.dim(0).set_stride(3);
        output.dim(2).set_stride(1).set_bounds(0, 3);
        schedule_net(b, false);
    }

private:
    // ------------------------------------------------------------ schedule

    void schedule_net(NetBuilder &b, bool stats_pass) {
        raw.dim(0).set_min(0);
        raw.dim(1).set_min(0);
        black.dim(0).set_bounds(0, 2).dim(1).set_bounds(0, 2);
        scale.dim(0).set_bounds(0, 2).dim(1).set_bounds(0, 2);
        raw.set_estimates({{0, 4000}, {0, 3000}});
        black.set_estimates({{0, 2}, {0, 2}});
        scale.set_estimates({{0, 2}, {0, 2}});
        int64_t n = NetBuilder::flat_size(net);
        weights.dim(0).set_bounds(0, (int)n);
        weights.set_estimates({{0, (int)n}});
        stats.set_estimates({{0, 16}, {0, 2}, {0, 2}});
        cfa_x.set_estimate(0);
        cfa_y.set_estimate(0);
        if (stats_pass) {
            output.set_estimates({{0, 32}, {0, 63}, {0, 47}});
        } else {
            output.set_estimates({{0, 4000}, {0, 3000}, {0, 3}});
        }
        if (get_auto_schedule()) return;

        const int vec = natural_vector_size<float>();
        // Weights and attention scales: tiny, computed once per call.
        for (Func f : b.weights()) f.compute_root();

        // Where the layers are stored and computed: per output tile, every
        // layer over the tile plus the apron its consumers need. 256×128
        // tiles: the packed nets' apron is a few pixels (0.34 -> 0.29 s for
        // EfficientISP at 12 MP against 128×64); RMFA's is ~45 pixels each
        // side (two pyramids and a 7×7 attention per block): 2.3×
        // recomputation at the first layers, against 3.9× at 128×64. A
        // sliding-window schedule (rows computed once) took Halide over 5
        // minutes per variant to compile, so it is not used.
        // 2026-12-01, Zen 3, 2 threads, 4000×3000: see the README benchmark.
        Var xo{"xo"}, yo{"yo"}, xi{"xi"}, yi{"yi"}, tile{"tile"};
        LoopLevel at;
        if (stats_pass) {
            at = schedule_statistics(output, stat_funcs, c, x, y, vec);
        } else {
            output.reorder(c, x, y).unroll(c);
            output.tile(x, y, xo, yo, xi, yi, kTileW, kTileH, TailStrategy::RoundUp)
                .fuse(xo, yo, tile)
                .parallel(tile)
                .vectorize(xi, vec);
            at = LoopLevel(output, tile);
        }
        place_layers(b, at, c, x, y, vec);
    }

    std::vector<Func> stat_funcs;
};

// One piece of a network's chain (nets/isp.h: build_from): from the mosaic
// (`from` < 0) or the stored state at point `from` (`xin`), to the state at
// point `to` (`to` >= 0, stored by stages/chain.c), to per-tile statistics
// of the map pooled at point `from` (`statistics`), or to the image
// (otherwise). Every piece takes the same arguments; `raw` gives the size
// when it is not read. The state is stored as xin.type: float32, or
// float16 (half the memory; converted a whole vector at a time).
class LearnedIspPiece : public Generator<LearnedIspPiece> {
public:
    GeneratorParam<std::string> net{"net", "rmfa_tiny"};
    GeneratorParam<int> from{"from", -1};
    GeneratorParam<int> to{"to", -1};
    GeneratorParam<bool> stats_pass{"statistics", false};
    // whole: the state at `to`; carry: its carried part only; derive: its
    // derived part from its carried part (stored at from = to), nets/isp.h.
    GeneratorParam<std::string> part{"part", "whole"};

    Input<Buffer<uint16_t>> raw{"raw", 2};
    Input<int> cfa_x{"cfa_x"};
    Input<int> cfa_y{"cfa_y"};
    Input<Buffer<float>> black{"black", 2};
    Input<Buffer<float>> scale{"scale", 2};
    Input<Buffer<float>> weights{"weights", 1};
    Input<Buffer<float>> stats{"stats", 3};  // (channel, 0 mean | 1 max, statistics point)
    Input<Buffer<>> xin{"xin", 3};           // the state: (c, u, v), c innermost, network coordinates
    Output<Buffer<>> output{"output", 3};    // state: (c, u, v) as xin; statistics: as
                                             // learned_isp's; image: (x, y, c) as learned_isp's

    Var x{"x"}, y{"y"}, c{"c"};

    void generate() {
        const std::string name = net;
        const lumos::IspNet &spec = lumos::isp_net(name);
        if (!spec.chain_channels || !spec.build_from) throw std::runtime_error(name + " has no chain");
        const int C = spec.chain_channels;
        const std::string which = part;
        const bool carry = which == "carry", derive = which == "derive";
        if (!carry && !derive && which != "whole") throw std::runtime_error("part: " + which);
        if ((carry || derive) && (!spec.derive || to < 0))
            throw std::runtime_error(name + ": no " + which + " piece");
        const int in_channels = derive ? spec.carried_channels : C;
        const int out_channels = carry ? spec.carried_channels : derive ? C - spec.carried_channels : C;
        NetBuilder b(weights, name);
        Expr W = raw.width(), H = raw.height(), FW = W + cfa_x, FH = H + cfa_y;

        Map in;
        if (from < 0) {
            Func norm = lumos::normalised_mosaic(raw, W, H, cfa_x, cfa_y, black, scale);
            in = spec.input(norm, W, H, cfa_x, cfa_y);
        } else {
            // Clamped: the pointwise layers read it over whole output tiles.
            Func stored{"stored"};
            stored(c, x, y) = cast<float>(xin(c, clamp(x, 0, FW - 1), clamp(y, 0, FH - 1)));
            in = Map{stored, in_channels, FW, FH};
            xin.dim(0).set_bounds(0, in_channels).set_stride(1);
        }
        lumos::GlobalPooling from_stats = [this](NetBuilder &, const Map &m, int i) {
            Func mean{"mean" + std::to_string(i)}, mx{"max" + std::to_string(i)};
            mean(c, x, y) = stats(c, 0, i);
            mx(c, x, y) = stats(c, 1, i);
            return std::make_pair(Map{mean, m.channels, 1, 1}, Map{mx, m.channels, 1, 1});
        };
        const int stop = to >= 0 ? (int)to : stats_pass ? (int)from : spec.stat_points;
        Map pooled;
        Map result = derive ? spec.derive(b, in, to)
                            : spec.build_from(b, in, from, stop, carry, pooled, from_stats);

        const int vec = natural_vector_size<float>();
        Var xo{"xo"}, yo{"yo"}, xi{"xi"}, yi{"yi"}, tile{"tile"}, co{"co"}, ci{"ci"};
        LoopLevel at;
        if (stats_pass) {
            at = schedule_statistics(output, tile_statistics(output, pooled, c, x, y), c, x, y, vec);
        } else {
            if (to >= 0) {
                output(c, x, y) = cast(output.type(), result.f(c, x, y));
                output.dim(0).set_bounds(0, out_channels).set_stride(1);
                // Vectors of channels, unrolled: each one reads one part of the state.
                output.bound(c, 0, out_channels).reorder(c, x, y).split(c, co, ci, vec).unroll(co).vectorize(ci);
            } else {
                b.finish();
                Type t = output.type();
                Expr value = result.f(c, x + cfa_x, y + cfa_y);
                if (t.is_float()) {
                    output(x, y, c) = value;
                } else {
                    float top = t.bits() == 8 ? 255.f : 65535.f;
                    output(x, y, c) = cast(t, clamp(value, 0.f, 1.f) * top + 0.5f);
                }
                output.dim(0).set_stride(3);
                output.dim(2).set_stride(1).set_bounds(0, 3);
                output.reorder(c, x, y).unroll(c);
            }
            output.tile(x, y, xo, yo, xi, yi, kTileW, kTileH, TailStrategy::RoundUp)
                .fuse(xo, yo, tile)
                .parallel(tile);
            if (to < 0) output.vectorize(xi, vec);
            at = LoopLevel(output, tile);
        }
        raw.dim(0).set_min(0);
        raw.dim(1).set_min(0);
        black.dim(0).set_bounds(0, 2).dim(1).set_bounds(0, 2);
        scale.dim(0).set_bounds(0, 2).dim(1).set_bounds(0, 2);
        weights.dim(0).set_bounds(0, (int)NetBuilder::flat_size(net));
        for (Func f : b.weights()) f.compute_root();
        place_layers(b, at, c, x, y, vec);
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(LearnedIsp, learned_isp)
HALIDE_REGISTER_GENERATOR(LearnedIspPiece, learned_isp_piece)
