// tile_schedule.h — the inference schedule of a network computed an output
// tile at a time (learned_isp_generator.cpp, dereflect_generator.cpp).
#pragma once

#include "layers.h"

namespace lumos {

using Halide::Func;
using Halide::LoopLevel;
using Halide::RVar;
using Halide::TailStrategy;
using Halide::Var;

// Every layer of `b` stored and computed at `at` (an output tile), over the
// tile plus the apron its consumers need. Per conv, two tile-sized buffers:
// its zero-padded input (whatever inline chain feeds it is evaluated once
// per value) and its output (activated where an activation follows
// directly). The conv itself is evaluated in blocks of `px` pixels × all
// output channels, the channels one vector: the block's accumulators stay
// in registers while the taps stream past (16 channels × 6 pixels = 12
// ymm). A conv with fewer than 3 outputs (spatial attention) vectorises
// over pixels instead.
inline void place_layers(NetBuilder &b, LoopLevel at, Var c, Var x, Var y, int vec) {
    auto place = [&](Func f) { f.store_at(at).compute_at(at); };
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
        RVar rx = conv.rvars(0)[0], ry = conv.rvars(0)[1], rz = conv.rvars(0)[2];
        if (cout >= 3) {
            tiled.split(x, bx, bi, px, TailStrategy::ShiftInwards).reorder(c, bi, bx, y).vectorize(c, cout);
            conv.compute_at(tiled, bx).vectorize(c, cout).unroll(x);
            conv.update().reorder(c, x, rx, ry, rz).vectorize(c, cout).unroll(x);
        } else {
            tiled.split(x, bx, bi, vec, TailStrategy::ShiftInwards).reorder(c, bi, bx, y).vectorize(bi);
            conv.compute_at(tiled, bx).vectorize(x);
            conv.update().reorder(c, x, rx, ry, rz).vectorize(x);
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
    for (Func f : b.channel_reductions()) NetBuilder::schedule_channel_reduction(f, at, false);
}

}  // namespace lumos
