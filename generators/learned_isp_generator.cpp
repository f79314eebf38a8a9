// learned_isp_generator.cpp — the lightweight learned ISPs: Bayer mosaic -> sRGB.
//
// GeneratorParam `net` picks EfficientISP, RobustISP or RMFA-Net tiny, each
// written once with the layer vocabulary of layers.h, with the parameters of
// isp_nets.def in one flat buffer.
//
// Input, as the reference networks take it, for an RGGB mosaic:
//   efficient / robust: 4 channels at half resolution, packed
//     ch0 = raw[2y+1][2x+1], ch1 = raw[2y][2x+1], ch2 = raw[2y][2x],
//     ch3 = raw[2y+1][2x], each (raw - black[site]) / (white - black[site]);
//   rmfa: 3 channels at full resolution, each sample max(raw - black, 0) /
//     (white - black) at its own colour's plane, 1.0 elsewhere.
// Other Bayer patterns are shifted to RGGB first: with (cfa_x, cfa_y) as in
// the classical ISP, the networks run in coordinates u = x + cfa_x,
// v = y + cfa_y, where red sits at even (u, v); samples outside the mosaic
// come from a parity-keeping mirror.
//
// RMFA's channel attention pools each block's fused features over the whole
// image. Rather than keep a full-size 16-channel map, the network runs in
// passes (GeneratorParam `pass`): pass b < 2 outputs per-tile sums and
// maxima of block b's fused features, given the pooled statistics of the
// blocks before it (stages/learned_isp.c reduces the tiles); pass 2 runs the
// whole network with every block's statistics.

#include "Halide.h"
#include "isp_nets.h"

namespace {

using namespace Halide;
using lumos::Map;
using lumos::NetBuilder;

enum class Net { Efficient, Robust, Rmfa, LayerZoo };

class LearnedIsp : public Generator<LearnedIsp> {
public:
    GeneratorParam<Net> net{"net", Net::Efficient,
                            {{"efficient", Net::Efficient}, {"robust", Net::Robust}, {"rmfa", Net::Rmfa},
                             {"layer_zoo", Net::LayerZoo}}};
    GeneratorParam<int> pass{"pass", 2};  // rmfa only: 0, 1 statistics; 2 the image

    Input<Buffer<uint16_t>> raw{"raw", 2};
    Input<int> cfa_x{"cfa_x"};
    Input<int> cfa_y{"cfa_y"};
    Input<Buffer<float>> black{"black", 2};   // [2][2] per site, indexed (x & 1, y & 1)
    Input<Buffer<float>> scale{"scale", 2};   // [2][2]: 1 / (white - black)
    Input<Buffer<float>> weights{"weights", 1};
    Input<Buffer<float>> stats{"stats", 3};   // rmfa: (channel, 0 mean | 1 max, block)
    Output<Buffer<>> output{"output", 3};     // image: (x, y, c), c innermost;
                                              // statistics: (c, tile_x, tile_y) sums, then maxima in c + 16

    Var x{"x"}, y{"y"}, c{"c"};

    void generate() {
        NetBuilder b(weights, net_name());
        Expr W = raw.width(), H = raw.height();

        Func norm = lumos::normalised_mosaic(raw, W, H, cfa_x, cfa_y, black, scale);

        Map result;
        if (net != Net::Rmfa) {
            Map in = lumos::packed_bayer(norm, W, H, cfa_x, cfa_y);
            result = net == Net::Efficient ? lumos::efficient_isp(b, in)
                     : net == Net::Robust  ? lumos::robust_isp(b, in)
                                           : lumos::layer_zoo(b, in);
            b.finish();
        } else {
            Map in = lumos::rmfa_split(norm, W, H, cfa_x, cfa_y);
            // Each block's pooled statistics, from the passes before this one.
            lumos::RmfaPooling from_stats = [this](NetBuilder &, const Map &, int i) {
                Func mean{"mean" + std::to_string(i)}, mx{"max" + std::to_string(i)};
                mean(c, x, y) = stats(c, 0, i);
                mx(c, x, y) = stats(c, 1, i);
                return std::make_pair(Map{mean, 16, 1, 1}, Map{mx, 16, 1, 1});
            };
            Map fused;
            result = lumos::rmfa_tiny(b, in, pass, fused, from_stats);
            if (pass < 2) {
                statistics(fused);
                schedule_net(b, true);
                return;
            }
            b.finish();
        }

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
    std::string net_name() const {
        switch (net) {
        case Net::Efficient: return "efficient";
        case Net::Robust: return "robust";
        case Net::Rmfa: return "rmfa";
        default: return "layer_zoo";
        }
    }

    // Output tiles of every network and of RMFA's statistics (see the
    // schedule); stages/learned_isp.c rounds buffers up to them.
    static constexpr int kTileW = 256, kTileH = 128;

    // Per-tile sums (channels 0..15) and maxima (16..31) of `fused` over its
    // domain.
    void statistics(const Map &fused) {
        RDom r(0, kTileW, 0, kTileH);
        Expr fx = x * kTileW + r.x, fy = y * kTileH + r.y;
        r.where(fx < fused.width && fy < fused.height);
        Func sums{"sums"}, maxima{"maxima"};
        sums(c, x, y) = 0.f;
        sums(c, x, y) += fused.f(c, fx, fy);
        maxima(c, x, y) = Float(32).min();
        maxima(c, x, y) = max(maxima(c, x, y), fused.f(c, fx, fy));
        output(c, x, y) = select(c < 16, sums(min(c, 15), x, y), maxima(max(c - 16, 0), x, y));
        output.dim(0).set_bounds(0, 32);
        stat_funcs = {sums, maxima};
    }

    // ------------------------------------------------------------ schedule

    void schedule_net(NetBuilder &b, bool stats_pass) {
        raw.dim(0).set_min(0);
        raw.dim(1).set_min(0);
        black.dim(0).set_bounds(0, 2).dim(1).set_bounds(0, 2);
        scale.dim(0).set_bounds(0, 2).dim(1).set_bounds(0, 2);
        raw.set_estimates({{0, 4000}, {0, 3000}});
        black.set_estimates({{0, 2}, {0, 2}});
        scale.set_estimates({{0, 2}, {0, 2}});
        int64_t n = NetBuilder::flat_size(net_name());
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

        // Every conv is computed per output tile, over the tile plus the
        // apron its consumers need. Inside, a conv is evaluated in blocks of
        // `px` pixels × all its channels, channels vectorised: the block's
        // accumulators live in registers while the taps stream past.
        Var xo{"xo"}, yo{"yo"}, xi{"xi"}, yi{"yi"}, tile{"tile"};
        // Where the layers are stored and computed: per output tile, every
        // layer over the tile plus the apron its consumers need. 256×128
        // tiles: the packed nets' apron is a few pixels (0.34 -> 0.29 s for
        // EfficientISP at 12 MP against 128×64); RMFA's is ~45 pixels each
        // side (two pyramids and a 7×7 attention per block): 2.3×
        // recomputation at the first layers, against 3.9× at 128×64. A
        // sliding-window schedule (rows computed once) took Halide over 5
        // minutes per variant to compile, so it is not used.
        // 2026-12-01, Zen 3, 2 threads, 4000×3000: see the README benchmark.
        LoopLevel store, compute;
        if (stats_pass) {
            output.compute_root().reorder(c, x, y).parallel(y);
            for (Func f : stat_funcs) {
                f.compute_at(output, x);
                f.update().reorder(c, f.rvars(0)[0], f.rvars(0)[1]).vectorize(c, vec);
                f.vectorize(c, vec);
            }
            store = compute = LoopLevel(output, x);
        } else {
            output.reorder(c, x, y).unroll(c);
            output.tile(x, y, xo, yo, xi, yi, kTileW, kTileH, TailStrategy::RoundUp)
                .fuse(xo, yo, tile)
                .parallel(tile)
                .vectorize(xi, vec);
            store = compute = LoopLevel(output, tile);
        }
        auto place = [&](Func f) { f.store_at(store).compute_at(compute); };
        // Per conv, two tile-sized buffers: its zero-padded input (whatever
        // inline chain feeds it is evaluated once per value) and its output
        // (activated where an activation follows directly). The conv itself
        // is evaluated in blocks of `px` pixels × all output channels, the
        // channels one vector: the block's accumulators stay in registers
        // while the taps stream past (16 channels × 6 pixels = 12 ymm).
        // A conv with fewer than 3 outputs (spatial attention) vectorises
        // over pixels instead.
        const int px = 6;
        for (const NetBuilder::ConvRecord &cr : b.convs()) {
            Func conv = cr.out.f, input = cr.padded;
            const int cin = cr.in.channels, cout = cr.out.channels;
            place(input);
            input.bound(c, 0, cin);
            if (cin >= 3) input.vectorize(c, cin);
            else input.vectorize(x, vec, TailStrategy::GuardWithIf);

            Func tiled = b.activation_of(conv);
            if (!tiled.defined()) tiled = conv.in();
            place(tiled);
            tiled.bound(c, 0, cout);
            conv.bound(c, 0, cout);
            Var bx{"bx"}, bi{"bi"};
            if (cout >= 3) {
                tiled.split(x, bx, bi, px, TailStrategy::ShiftInwards).reorder(c, bi, bx, y).vectorize(c, cout);
                conv.compute_at(tiled, bx).vectorize(c, cout).unroll(x);
                conv.update()
                    .reorder(c, x, r_x(conv), r_y(conv), r_z(conv))
                    .vectorize(c, cout)
                    .unroll(x);
            } else {
                tiled.split(x, bx, bi, vec, TailStrategy::ShiftInwards).reorder(c, bi, bx, y).vectorize(bi);
                conv.compute_at(tiled, bx).vectorize(x);
                conv.update().reorder(c, x, r_x(conv), r_y(conv), r_z(conv)).vectorize(x);
            }
        }
        for (Func f : b.resamples()) {
            place(f);
            f.vectorize(c, vec, TailStrategy::GuardWithIf);
        }
        for (Func f : b.pointwise_maps()) {
            place(f);
            f.vectorize(x, vec);
        }
    }

    // The RDom variables of a Func's first update, by position.
    static RVar r_x(Func f) { return f.rvars(0)[0]; }
    static RVar r_y(Func f) { return f.rvars(0)[1]; }
    static RVar r_z(Func f) { return f.rvars(0)[2]; }

    std::vector<Func> stat_funcs;
};

}  // namespace

HALIDE_REGISTER_GENERATOR(LearnedIsp, learned_isp)
