// schedule.h — schedules of what the layers (layers.h) recorded on the tape
// (tape.h): schedule_at_root for training pipelines over small crops, and
// the helpers a generator's own schedule uses (register-tiled sums, weight
// gradients, gathers).
#pragma once

#include <algorithm>
#include <vector>

#include "tape.h"

namespace lumos {

class Schedule : public Tape {
public:
    using Tape::Tape;

    // Maps of few channels (not a multiple of a vector, under two vectors:
    // the small ISPs' 3, 4 and 12) are vectorised over x; with this, they
    // are also stored x-innermost, so those vectors are dense loads instead
    // of gathers across the channels, and their convs' weight gradients are
    // vectorised over pixels too. For pipelines whose work is such maps
    // (the ISPs' gradients); set before schedule_at_root.
    void store_small_maps_planar() { planar_ = true; }

    // A schedule for training pipelines over small crops: every tape entry,
    // gradient and reduction computed once at root, in parallel over rows,
    // vectorised over channels (or pixels, for narrow maps).
    void schedule_at_root() {
        // (A Func may sit in several lists: schedule each once.)
        std::vector<Halide::Internal::Function> done;
        auto first_time = [&](Func f) {
            for (const auto &d : done)
                if (d.same_as(f.function())) return false;
            done.push_back(f.function());
            return true;
        };
        // The convolutions and their adjoints carry nearly all the work.
        for (const ConvRecord &cr : conv_records_)
            if (first_time(cr.out.f)) schedule_sum_tiled(cr.out.f, cr.out);
        for (const Map &m : sums_)
            if (first_time(m.f)) schedule_sum_tiled(m.f, m);
        for (ConvGrad cg : conv_grads_) {
            const ConvRecord &cr = conv_records_.at(cg.conv);
            if (first_time(cg.grad_out)) map_at_root(cg.grad_out, cr.out.channels);
            if (first_time(cg.w_transposed))
                cg.w_transposed.compute_root().vectorize(c, kVec, TailStrategy::GuardWithIf);
            if (first_time(cg.grad_in)) schedule_sum_tiled(cg.grad_in, cr.in);
            if (cg.grad_w.defined() && first_time(cg.grad_w)) schedule_weight_grad(cg.grad_w, cr);
        }
        for (const Node &n : nodes_)
            if (n.backward && first_time(n.out.f)) map_at_root(n.out.f, n.out.channels, &n.out);
        for (const ConvRecord &cr : conv_records_)
            if (first_time(cr.padded)) map_at_root(cr.padded, cr.in.channels);
        for (const Map &g : grad_maps_)
            if (first_time(g.f)) map_at_root(g.f, g.channels, &g);
        for (const auto &gc : gathers_)
            if (first_time(gc.first)) gather_at_root(gc.first, gc.second);
        for (Func f : backward_funcs_) {
            if (!first_time(f)) continue;
            f.compute_root();
            if (f.dimensions() != 3) continue;
            f.parallel(f.args()[2]);
            for (int u = 0; u < f.num_update_definitions(); u++) f.update(u).parallel(f.args()[2]);
        }
        for (Func f : weights_) {
            if (!first_time(f)) continue;
            f.compute_root();
            if (f.dimensions() == 4) f.vectorize(f.args()[0], kVec, TailStrategy::GuardWithIf);
        }
        for (Func f : reductions_)
            if (first_time(f)) f.compute_root();
        for (Func f : channel_reductions_)
            if (first_time(f)) schedule_channel_reduction(f, Halide::LoopLevel::root(), true);
        // (each tensor's gradient, p.value, is gathered straight into it)
        for (Func f : params_funcs_) {
            if (!first_time(f)) continue;
            f.compute_root().vectorize(f.args()[0], kVec, TailStrategy::GuardWithIf);
            for (int u = 0; u < f.num_update_definitions(); u++)
                f.update(u).vectorize(f.rvars(u)[0], kVec, TailStrategy::GuardWithIf);
        }
        for (WeightGrad w : weight_grads_)
            if (first_time(w.f)) schedule_weight_grad_plain(w.f);
        for (Func f : stages_)
            if (first_time(f)) schedule_stage(f);
    }

    // A reduction across channels (channel_reductions()) stored and
    // computed at `at`: a pixel's channels loaded as one vector and reduced
    // across its lanes (atomic: each pixel's sum is its own).
    static void schedule_channel_reduction(Func f, Halide::LoopLevel at, bool parallel_rows) {
        f.store_at(at).compute_at(at);
        Halide::Var fx = f.args()[0], fy = f.args()[1];
        f.vectorize(fx, kVec, TailStrategy::GuardWithIf);
        Halide::RVar r = f.rvars(0)[0];
        f.update().reorder(r, fx, fy).atomic().vectorize(r);
        if (parallel_rows) {
            f.parallel(fy);
            f.update().parallel(fy);
        }
    }

protected:
    static constexpr int kVec = 8;  // floats in an AVX2 register

    // At root, parallel over rows, vectorised over channels (or pixels, for
    // maps narrower than a vector). With `domain`, over exactly the map's
    // domain (every reader clamps into it): the bounds of the maps before it
    // then stay short expressions instead of growing through the network.
    bool planar(int channels) const {
        return planar_ && channels % kVec != 0 && channels < 2 * kVec;
    }

    void map_at_root(Func f, int channels, const Map *domain = nullptr) {
        f.compute_root();
        if (domain) bound_to(f, *domain);
        const bool by_x = channels < kVec || planar(channels);
        if (planar(channels)) f.reorder_storage(x, c, y);
        for (int u = -1; u < f.num_update_definitions(); u++) {
            Halide::Stage s = u < 0 ? Halide::Stage(f) : f.update(u);
            if (!by_x) s.vectorize(c, kVec, TailStrategy::GuardWithIf);
            else s.vectorize(x, kVec, TailStrategy::GuardWithIf);
            s.parallel(y);
        }
    }

    // A convolution-shaped sum f(c, x, y) = init; f += Σ_r ... (a conv, or
    // its input gradient): stored at root through a wrapper, and computed a
    // register tile at a time, the whole reduction inside the tile, so the
    // accumulators never leave the registers. Tiles: 16 (or 8) channels ×
    // 4 (or 8) pixels; maps of fewer channels, all channels × up to 4
    // vectors of pixels. Other widths keep the plain schedule.
    void bound_to(Func f, const Map &m) {
        f.bound(c, 0, m.channels).bound(x, 0, m.width).bound(y, 0, m.height);
    }

    void schedule_sum_tiled(Func f, const Map &m) {
        const int channels = m.channels;
        Var xo{"xo"}, xi{"xi"}, c_o{"c_o"}, c_i{"c_i"}, c_v{"c_v"}, x_o{"x_o"}, x_v{"x_v"};
        std::vector<Halide::VarOrRVar> inner;
        auto with_rvars = [&](std::vector<Halide::VarOrRVar> order) {
            for (const Halide::RVar &r : f.rvars(0)) order.push_back(r);
            order.push_back(y);
            return order;
        };
        if (channels % kVec == 0) {
            const int tc = channels % (2 * kVec) == 0 ? 2 * kVec : kVec, tx = tc == kVec ? 8 : 4;
            Func out = f.in();
            out.compute_root();
            bound_to(out, m);
            out.split(c, c_o, c_i, tc).split(x, xo, xi, tx, TailStrategy::GuardWithIf);
            out.reorder(c_i, xi, xo, c_o, y).vectorize(c_i, kVec).parallel(y);
            f.compute_at(out, xo).store_in(Halide::MemoryType::Stack);
            f.split(c, c_o, c_v, kVec).vectorize(c_v).unroll(c_o).unroll(x);
            f.update().split(c, c_o, c_v, kVec).reorder(with_rvars({c_v, c_o, x}));
            f.update().vectorize(c_v).unroll(c_o).unroll(x);
        } else if (channels < 2 * kVec) {
            const int vectors = std::max(1, std::min(4, 12 / channels)), tx = kVec * vectors;
            Func out = f.in();
            out.compute_root();
            if (planar(channels)) out.reorder_storage(x, c, y);
            bound_to(out, m);
            out.split(x, xo, xi, tx, TailStrategy::GuardWithIf);
            out.reorder(c, xi, xo, y).vectorize(xi, kVec).parallel(y);
            // the tile x-innermost: each accumulator a dense vector, which
            // LLVM keeps in a register (interleaved, every update was a
            // strided gather and scatter)
            f.compute_at(out, xo).store_in(Halide::MemoryType::Stack).reorder_storage(x, c, y);
            f.split(x, x_o, x_v, kVec).vectorize(x_v).unroll(x_o).unroll(c);
            f.update().split(x, x_o, x_v, kVec).reorder(with_rvars({x_v, x_o, c}));
            f.update().vectorize(x_v).unroll(x_o).unroll(c);
        } else {
            map_at_root(f, channels, &m);
        }
    }

    // A conv's weight gradient gw(co, kx, ky, ci) += g(co, p) · in(ci, p·s + k):
    // a tile of 16 (or 8) output channels × all kx × some input channels
    // accumulated in registers over every output pixel.
    void schedule_weight_grad(Func gw, const ConvRecord &cr) {
        const int cout = cr.out.channels, cin_g = cr.in.channels / cr.groups, k = cr.k;
        if (planar(cout)) {
            schedule_weight_grad_by_pixels(gw, cr);
            return;
        }
        if (cout % kVec != 0) {
            schedule_weight_grad_plain(gw);
            return;
        }
        const int tc = cout % (2 * kVec) == 0 ? 2 * kVec : kVec;
        const int room = std::max(1, 12 / ((tc / kVec) * k));
        int tci = 1;
        for (int d = std::min(room, cin_g); d >= 1; d--)
            if (cin_g % d == 0) {
                tci = d;
                break;
            }
        Var co_o{"co_o"}, co_i{"co_i"}, co_v{"co_v"}, ci_o{"ci_o"}, ci_i{"ci_i"};
        Func out = gw.in();
        out.compute_root().bound(co, 0, cout).bound(kx, 0, k).bound(ky, 0, k).bound(ci, 0, cin_g);
        out.split(co, co_o, co_i, tc).split(ci, ci_o, ci_i, tci);
        out.reorder(co_i, kx, ci_i, co_o, ky, ci_o).vectorize(co_i, kVec);
        if (cin_g / tci >= 2) out.parallel(ci_o);
        else if (k >= 2) out.parallel(ky);
        else out.parallel(co_o);
        gw.compute_at(out, co_o).store_in(Halide::MemoryType::Stack);
        gw.split(co, co_o, co_v, kVec).vectorize(co_v).unroll(co_o).unroll(kx).unroll(ci);
        std::vector<Halide::VarOrRVar> order = {co_v, co_o, kx, ci};
        for (const Halide::RVar &r : gw.rvars(0)) order.push_back(r);
        order.push_back(ky);
        gw.update().split(co, co_o, co_v, kVec).reorder(order);
        gw.update().vectorize(co_v).unroll(co_o).unroll(kx).unroll(ci);
    }

    // The same sum with its output channels few and their maps planar: the
    // pixel sum split into vector lanes (rfactor), a tile of tc output
    // channels × all kx accumulated a vector of pixels at a time, lanes
    // added at the end.
    void schedule_weight_grad_by_pixels(Func gw, const ConvRecord &cr) {
        const int cout = cr.out.channels, cin_g = cr.in.channels / cr.groups, k = cr.k;
        int tc = 1;
        for (int d = std::max(1, 12 / k); d >= 1; d--)
            if (cout % d == 0) {
                tc = d;
                break;
            }
        Var co_o{"co_o"}, co_i{"co_i"}, u{"u"};
        Halide::RVar rx = gw.rvars(0)[0], ry = gw.rvars(0)[1], rxo{"rxo"}, rxi{"rxi"};
        Func out = gw.in();
        out.compute_root().bound(co, 0, cout).bound(kx, 0, k).bound(ky, 0, k).bound(ci, 0, cin_g);
        out.split(co, co_o, co_i, tc).reorder(co_i, kx, co_o, ky, ci).parallel(ci);
        gw.compute_at(out, co_o).store_in(Halide::MemoryType::Stack);
        gw.update().split(rx, rxo, rxi, kVec, TailStrategy::GuardWithIf);
        Func lanes = gw.update().rfactor(rxi, u);
        gw.unroll(co).unroll(kx);
        gw.update().unroll(co).unroll(kx);
        lanes.compute_at(out, co_o).store_in(Halide::MemoryType::Stack);
        lanes.vectorize(u).unroll(co).unroll(kx);
        lanes.update().reorder(u, co, kx, rxo, ry).vectorize(u).unroll(co).unroll(kx);
    }

    // A gather f(c, x, y) = 0; f += Σ_r (an adjoint of a resampling):
    // vectorised over channels when they fill vectors, else over x (planar
    // when planar(channels)), the sum inside each vector of outputs.
    void gather_at_root(Func f, int channels) {
        f.compute_root();
        const bool by_c = channels % kVec == 0;
        if (!by_c && planar(channels)) f.reorder_storage(x, c, y);
        Var o{"o"}, i{"i"};
        for (int u = -1; u < f.num_update_definitions(); u++) {
            Halide::Stage s = u < 0 ? Halide::Stage(f) : f.update(u);
            s.split(by_c ? c : x, o, i, kVec, TailStrategy::GuardWithIf);
            std::vector<Halide::VarOrRVar> order = {i};
            if (u >= 0)
                for (const Halide::RVar &r : f.rvars(u)) order.push_back(r);
            order.push_back(o);
            order.push_back(by_c ? x : c);
            order.push_back(y);
            s.reorder(order).vectorize(i).parallel(y);
        }
    }

    void schedule_weight_grad_plain(Func gw) {
        gw.compute_root().vectorize(co, kVec, TailStrategy::GuardWithIf).parallel(ci);
        gw.update().vectorize(co, kVec, TailStrategy::GuardWithIf).parallel(ci);
    }

    // A stage of a layer outside layers.h at root: parallel over its last
    // pure dimension, vectorised over its first when that is not the last.
    void schedule_stage(Func f) {
        f.compute_root();
        const std::vector<Var> args = f.args();
        for (int u = -1; u < f.num_update_definitions(); u++) {
            Halide::Stage s = u < 0 ? Halide::Stage(f) : f.update(u);
            if (args.size() >= 2) s.vectorize(args[0], kVec, TailStrategy::GuardWithIf);
            s.parallel(args.back());
        }
    }
};

}  // namespace lumos
