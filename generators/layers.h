// layers.h — the layer vocabulary every lumos network is built from.
//
// A network is written once, as calls on a NetBuilder: it reads the
// parameters from the network's flat weight buffer in the order of
// isp_nets.def (checking names and shapes while the generator runs), builds
// each layer as Halide Funcs, and records what it made so the generator's
// schedule can place every layer without naming them one by one.
//
// Feature maps are Funcs f(c, x, y) over a spatial domain [0, width) ×
// [0, height). Padding layers see zeros outside it, as PyTorch's
// `padding=k/2` convolutions do; the domain sizes follow PyTorch's rules
// (floor for pooling and strided convs).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "Halide.h"

namespace lumos {

using Halide::Expr;
using Halide::Func;
using Halide::RDom;
using Halide::TailStrategy;
using Halide::Tuple;
using Halide::Var;

struct Map {
    Func f;          // f(c, x, y)
    int channels;
    Expr width, height;
    int node = -1;   // its place on the builder's tape (-1: not on it, no gradient)
};

// How a conv pads: PyTorch's padding=k/2 on every side, or TF/Keras
// "same" (total max((⌈n/s⌉ − 1)·s + k − n, 0), the odd pixel after: a
// stride-2 3×3 conv on an even size pads only bottom/right), for weights
// trained in TF (the MobileNetV2 of nsfwjs).
enum class Padding { Torch, TfSame };

// One tensor of isp_nets.def.
struct TensorSpec {
    const char *net;
    const char *name;
    int dims[4];
};

inline const std::vector<TensorSpec> &all_tensors() {
    static const std::vector<TensorSpec> specs = {
#define LUMOS_TENSOR(net, name, d0, d1, d2, d3) {#net, name, {d0, d1, d2, d3}},
#include "isp_nets.def"
#undef LUMOS_TENSOR
    };
    return specs;
}

// The mosaic as the learned ISPs take it, in network coordinates (u, v) =
// (x + cfa_x, y + cfa_y), where red sits at even (u, v): (raw − black[site])
// · scale[site], sites of the original 2×2 block; outside the mosaic a
// parity-keeping mirror. black and scale are 2×2 (x & 1, y & 1).
inline Func normalised_mosaic(Func raw, Expr W, Expr H, Expr cfa_x, Expr cfa_y, Func black,
                              Func scale) {
    Func mirrored = Halide::BoundaryConditions::mirror_interior(raw, {{0, W}, {0, H}});
    Var u{"u"}, v{"v"};
    Expr sx = u - cfa_x, sy = v - cfa_y;
    auto site = [&](Func t) {
        return select((sy & 1) == 0, select((sx & 1) == 0, t(0, 0), t(1, 0)),
                      select((sx & 1) == 0, t(0, 1), t(1, 1)));
    };
    Func norm{"norm"};
    norm(u, v) = (Halide::cast<float>(mirrored(sx, sy)) - site(black)) * site(scale);
    return norm;
}

// The reference 4-channel packing of a normalised RGGB mosaic, over whole
// 2×2 blocks covering the W×H mosaic shifted by (cfa_x, cfa_y):
// ch0 = [2v+1][2u+1], ch1 = [2v][2u+1], ch2 = [2v][2u], ch3 = [2v+1][2u].
inline Map packed_bayer(Func norm, Expr W, Expr H, Expr cfa_x, Expr cfa_y) {
    Var c{"c"}, u{"x"}, v{"y"};
    Func packed{"packed"};
    packed(c, u, v) = mux(c, {norm(2 * u + 1, 2 * v + 1), norm(2 * u + 1, 2 * v),
                              norm(2 * u, 2 * v), norm(2 * u, 2 * v + 1)});
    return {packed, 4, (W + cfa_x + 1) / 2, (H + cfa_y + 1) / 2};
}

class NetBuilder {
public:
    // `flat` is the network's weight buffer (all tensors of `net` back to back).
    NetBuilder(Func flat, const std::string &net) : flat_(flat) {
        for (const TensorSpec &t : all_tensors())
            if (net == t.net) specs_.push_back(t);
        if (specs_.empty()) throw std::runtime_error("no tensors for network " + net);
    }

    // A builder for weightless layers (a loss's preprocessing).
    NetBuilder() = default;

    // Read the convs' repacked weights from `other` (a second copy of the
    // same network in one pipeline, which must be scheduled too) instead of
    // repacking them again.
    void share_weights(const NetBuilder &other) { shared_ = &other; }

    // Maps of few channels (not a multiple of a vector, under two vectors:
    // the small ISPs' 3, 4 and 12) are vectorised over x; with this, they
    // are also stored x-innermost, so those vectors are dense loads instead
    // of gathers across the channels, and their convs' weight gradients are
    // vectorised over pixels too. For pipelines whose work is such maps
    // (the ISPs' gradients); set before schedule_at_root.
    void store_small_maps_planar() { planar_ = true; }

    // Convs without their biases (the tensors still consumed in order): the
    // network's tangent map, its directional derivative at fixed gates.
    void drop_biases() { no_bias_ = true; }

    // Each conv's bias gradient times s (weight gradients taken against
    // inputs other than the forward's, whose bias part is scaled apart).
    void scale_bias_grads(Expr s) { bias_grad_scale_ = s; }

    // Number of floats in the flat buffer.
    static int64_t flat_size(const std::string &net) {
        int64_t n = 0;
        for (const TensorSpec &t : all_tensors())
            if (net == t.net) n += elements(t);
        return n;
    }

    // Continue at tensor `name` (a pipeline that builds one part of a
    // network: a block of the feature network).
    void seek(const std::string &name) {
        int64_t at = 0;
        for (size_t i = 0; i < specs_.size(); i++) {
            if (name == specs_[i].name) {
                next_ = i;
                offset_ = at;
                return;
            }
            at += elements(specs_[i]);
        }
        throw std::runtime_error("no tensor " + name);
    }

    // Every tensor must have been consumed, in order.
    void finish() const {
        if (next_ != specs_.size())
            throw std::runtime_error(std::string("unused tensor ") + specs_[next_].name);
    }

    // A network input put on the tape, so that backward() can give its
    // gradient (a feature network's input image, a discriminator's).
    Map input(const Map &m) { return record({m.f, m.channels, m.width, m.height}, {}, nullptr); }

    // ------------------------------------------------------------- layers

    // Conv2d(in.channels, cout, k, stride, padding=k/2, groups), PyTorch
    // semantics; `groups == in.channels == cout` is a depthwise conv.
    Map conv2d(const Map &in, const std::string &name, int cout, int k, bool bias = true,
               int stride = 1, int groups = 1, Padding padding = Padding::Torch) {
        const int cin_g = in.channels / groups;
        int64_t w0 = take(name + ".weight", {cout, cin_g, k, k});
        int64_t b0 = bias ? take(name + ".bias", {cout}) : -1;
        std::pair<Func, Func> wb = conv_params(name, w0, b0, cin_g, k);
        if (no_bias_) {
            wb.second = Func{"no_bias_" + clean(name)};
            wb.second(co) = 0.f;
        }
        return conv_over(in, name, wb.first, wb.second, cout, k, stride, groups, padding, w0, b0);
    }

    // A Conv2d followed by BatchNorm2d in eval mode, the norm folded into the
    // conv's weights and bias once per call: w' = w·γ/√(σ²+ε),
    // b' = (b − μ)·γ/√(σ²+ε) + β. The norm's four tensors follow the conv's.
    // Frozen: backward() gives its input gradient, not its parameters'.
    Map conv2d_bn(const Map &in, const std::string &conv, const std::string &bn, int cout, int k,
                  bool bias = false, int stride = 1, int groups = 1, float eps = 1e-5f,
                  Padding padding = Padding::Torch) {
        const int cin_g = in.channels / groups;
        int64_t w0 = take(conv + ".weight", {cout, cin_g, k, k});
        int64_t b0 = bias ? take(conv + ".bias", {cout}) : -1;
        std::pair<Func, Func> wb = conv_params(conv, w0, b0, cin_g, k);
        int64_t g = take(bn + ".weight", {cout}), be = take(bn + ".bias", {cout});
        int64_t mu = take(bn + ".running_mean", {cout}), var = take(bn + ".running_var", {cout});
        Func gain{"gain_" + clean(bn)}, w{"wf_" + clean(conv)}, b{"bf_" + clean(conv)};
        gain(co) = flat_(Expr((int)g) + co) / Halide::sqrt(flat_(Expr((int)var) + co) + eps);
        w(co, kx, ky, ci) = wb.first(co, kx, ky, ci) * gain(co);
        b(co) = (wb.second(co) - flat_(Expr((int)mu) + co)) * gain(co) + flat_(Expr((int)be) + co);
        weights_.insert(weights_.end(), {gain, w, b});
        return conv_over(in, conv, w, b, cout, k, stride, groups, padding, -1, -1);
    }

    Map relu(const Map &m) {
        return pointwise(m, "relu", [](Expr v) { return max(v, 0.f); },
                         [](Expr v, Expr g) { return select(v > 0.f, g, 0.f); });
    }
    Map relu6(const Map &m) {
        return pointwise(m, "relu6", [](Expr v) { return clamp(v, 0.f, 6.f); },
                         [](Expr v, Expr g) { return select(v > 0.f && v < 6.f, g, 0.f); });
    }
    Map leaky_relu(const Map &m, float slope) {
        return pointwise(m, "leaky_relu", [=](Expr v) { return select(v > 0, v, slope * v); },
                         [=](Expr v, Expr g) { return select(v > 0, g, slope * g); });
    }
    // LeakyReLU with the slope chosen by the sign of `gate` (the same layer's
    // input at another point) instead of m's: the network linearised where
    // `gate` was computed. With drop_biases, a piecewise-linear network's
    // tangent map there (R1/R2's gradient, loss_generator.cpp's disc).
    Map leaky_relu_gated(const Map &m, const Map &gate, float slope) {
        Func f{"leaky_relu_gated"}, pre = m.f, gf = gate.f;
        f(c, x, y) = select(gf(c, x, y) > 0, pre(c, x, y), slope * pre(c, x, y));
        return record({f, m.channels, m.width, m.height}, {m}, [=](Func g) {
            Func gi{"leaky_relu_gated_grad"};
            gi(c, x, y) = select(gf(c, x, y) > 0, g(c, x, y), slope * g(c, x, y));
            return std::vector<Func>{gi};
        });
    }
    Map tanh(const Map &m) {
        return pointwise(m, "tanh", tanh_expr, [](Expr v, Expr g) {
            Expr t = tanh_expr(v);
            return g * (1.f - t * t);
        });
    }
    Map sigmoid(const Map &m) {
        return pointwise(m, "sigmoid", sigmoid_expr, [](Expr v, Expr g) {
            Expr s = sigmoid_expr(v);
            return g * s * (1.f - s);
        });
    }

    Map add(const Map &a, const Map &b) {
        Func f{"add"};
        f(c, x, y) = a.f(c, x, y) + b.f(c, x, y);
        return record({f, a.channels, a.width, a.height}, {a, b},
                      [](Func g) { return std::vector<Func>{g, g}; });
    }
    Map sub(const Map &a, const Map &b) {
        Func f{"sub"};
        f(c, x, y) = a.f(c, x, y) - b.f(c, x, y);
        return record({f, a.channels, a.width, a.height}, {a, b}, [this](Func g) {
            Func neg{"sub_grad"};
            neg(c, x, y) = -g(c, x, y);
            return std::vector<Func>{g, neg};
        });
    }

    // torch.cat([a, b], dim=1)
    Map concat(const Map &a, const Map &b) {
        Func f{"concat"};
        const int na = a.channels;
        f(c, x, y) = select(c < na, a.f(min(c, na - 1), x, y), b.f(max(c - na, 0), x, y));
        return record({f, na + b.channels, a.width, a.height}, {a, b}, [=](Func g) {
            Func ga{"concat_grad_a"}, gb{"concat_grad_b"};
            ga(c, x, y) = g(c, x, y);
            gb(c, x, y) = g(c + na, x, y);
            return std::vector<Func>{ga, gb};
        });
    }

    // AvgPool2d(2, 2) / MaxPool2d(2, 2): floor of the size. Max pooling's
    // gradient goes to the first maximum of each window in reading order,
    // as PyTorch's.
    Map avg_pool2(const Map &m) {
        Func f{"avg_pool2"};
        f(c, x, y) = 0.25f * (m.f(c, 2 * x, 2 * y) + m.f(c, 2 * x + 1, 2 * y) +
                              m.f(c, 2 * x, 2 * y + 1) + m.f(c, 2 * x + 1, 2 * y + 1));
        Map out{f, m.channels, m.width / 2, m.height / 2};
        return record(out, {m}, [=](Func g) {
            Func gi{"avg_pool2_grad"};
            gi(c, x, y) = select(inside(out, x / 2, y / 2), 0.25f * read(g, out, c, x / 2, y / 2), 0.f);
            return std::vector<Func>{gi};
        });
    }
    Map max_pool2(const Map &m) {
        Func f{"max_pool2"};
        f(c, x, y) = max(max(m.f(c, 2 * x, 2 * y), m.f(c, 2 * x + 1, 2 * y)),
                         max(m.f(c, 2 * x, 2 * y + 1), m.f(c, 2 * x + 1, 2 * y + 1)));
        Map out{f, m.channels, m.width / 2, m.height / 2};
        return record(out, {m}, [=](Func g) {
            // Index (0..3, reading order) of each window's first maximum.
            Func first{"max_pool2_argmax"};
            Expr best = m.f(c, 2 * x, 2 * y), at = 0;
            for (int k = 1; k < 4; k++) {
                Expr v = m.f(c, 2 * x + k % 2, 2 * y + k / 2);
                at = select(v > best, k, at);
                best = max(best, v);
            }
            first(c, x, y) = at;
            backward_funcs_.push_back(first);
            Func gi{"max_pool2_grad"};
            Expr px = x / 2, py = y / 2, k = (x % 2) + 2 * (y % 2);
            gi(c, x, y) = select(inside(out, px, py) && first(c, clamp(px, 0, out.width - 1),
                                                              clamp(py, 0, out.height - 1)) == k,
                                 read(g, out, c, px, py), 0.f);
            return std::vector<Func>{gi};
        });
    }

    // Global average and maximum per channel (AdaptiveAvgPool2d(1),
    // AdaptiveMaxPool2d(1)), as 1×1 maps. The maximum's gradient goes to
    // its first position in reading order, as PyTorch's.
    Map global_avg_pool(const Map &m) {
        Func sum{"global_sum"}, f{"global_avg"};
        RDom r(0, m.width, 0, m.height);
        sum(c) = 0.f;
        sum(c) += m.f(c, r.x, r.y);
        Expr area = Halide::cast<float>(m.width * m.height);
        f(c, x, y) = sum(c) / area;
        reductions_.push_back(sum);
        Map out{f, m.channels, 1, 1};
        return record(out, {m}, [=](Func g) {
            Func gi{"global_avg_grad"};
            gi(c, x, y) = g(c, 0, 0) / area;
            return std::vector<Func>{gi};
        });
    }
    Map global_max_pool(const Map &m) {
        Func best{"global_argmax"}, f{"global_max"};
        RDom r(0, m.width, 0, m.height);
        best(c) = Tuple(Halide::Float(32).min(), -1);
        Expr v = m.f(c, r.x, r.y), better = v > best(c)[0];
        best(c) = Tuple(select(better, v, best(c)[0]), select(better, r.x + r.y * m.width, best(c)[1]));
        f(c, x, y) = best(c)[0];
        reductions_.push_back(best);
        Map out{f, m.channels, 1, 1};
        return record(out, {m}, [=](Func g) {
            Func gi{"global_max_grad"};
            gi(c, x, y) = select(x + y * m.width == best(c)[1], g(c, 0, 0), 0.f);
            return std::vector<Func>{gi};
        });
    }

    // F.interpolate(mode='bilinear', align_corners=False) to (ow, oh); with
    // ow = 2w it is nn.Upsample(scale_factor=2). Source coordinates as
    // PyTorch computes them: (dst + 0.5)·in/out − 0.5, clamped below at 0.
    Map resize_bilinear(const Map &m, Expr ow, Expr oh) {
        Func f{"resize"};
        Expr x0, x1, tx, y0, y1, ty;
        resize_axis(x, m.width, ow, x0, x1, tx);
        resize_axis(y, m.height, oh, y0, y1, ty);
        Expr top = m.f(c, x0, y0) * (1.f - tx) + m.f(c, x1, y0) * tx;
        Expr bottom = m.f(c, x0, y1) * (1.f - tx) + m.f(c, x1, y1) * tx;
        f(c, x, y) = top * (1.f - ty) + bottom * ty;
        resamples_.push_back(f);
        Map out{f, m.channels, ow, oh};
        return record(out, {m}, [=](Func g) {
            // The adjoint gathers, per source row (then column), the
            // destinations whose taps reach it, with their weights.
            Func rows{"resize_grad_rows"}, gi{"resize_grad"};
            auto gather = [&](Func dst, Func src, Expr s, Expr in, Expr out_n, bool along_y) {
                Expr ratio = Halide::cast<float>(out_n) / Halide::cast<float>(in);
                Expr lo = Halide::cast<int>(Halide::floor((Halide::cast<float>(s) - 0.5f) * ratio)) - 2;
                RDom r(0, Halide::cast<int>(Halide::ceil(2.f * ratio)) + 5);
                Expr d = lo + r;
                Expr i0, i1, t;
                resize_axis(d, in, out_n, i0, i1, t);
                Expr wgt = select(i0 == s, 1.f - t, 0.f) + select(i1 == s, t, 0.f);
                Expr dc = clamp(d, 0, out_n - 1);
                Expr v = along_y ? src(c, x, dc) : src(c, dc, y);
                dst(c, x, y) = 0.f;
                dst(c, x, y) += select(d >= 0 && d < out_n, wgt * v, 0.f);
                gathers_.push_back({dst, m.channels});
            };
            Func gz{"resize_grad_in"};
            gz(c, x, y) = read(g, out, c, x, y);
            gather(rows, gz, y, m.height, oh, true);    // (c, dst x, src y)
            gather(gi, rows, x, m.width, ow, false);    // (c, src x, src y)
            return std::vector<Func>{gi};
        });
    }

    // F.pixel_shuffle(m, r): channel c·r² + i·r + j goes to (r·x + j, r·y + i);
    // F.pixel_unshuffle(m, r), its inverse. Each one's adjoint is the other.
    Map pixel_shuffle(const Map &m, int r) {
        Func f{"pixel_shuffle"};
        f(c, x, y) = m.f(c * r * r + (y % r) * r + (x % r), x / r, y / r);
        Map out{f, m.channels / (r * r), m.width * r, m.height * r};
        return record(out, {m}, [=](Func g) {
            Func gi{"pixel_shuffle_grad"};
            gi(c, x, y) = g(c / (r * r), x * r + c % r, y * r + (c / r) % r);
            return std::vector<Func>{gi};
        });
    }
    Map pixel_unshuffle(const Map &m, int r) {
        Func f{"pixel_unshuffle"};
        f(c, x, y) = m.f(c / (r * r), x * r + c % r, y * r + (c / r) % r);
        Map out{f, m.channels * r * r, m.width / r, m.height / r};
        return record(out, {m}, [=](Func g) {
            Func gi{"pixel_unshuffle_grad"};
            Expr px = x / r, py = y / r;
            gi(c, x, y) = select(inside(out, px, py),
                                 read(g, out, c * r * r + (y % r) * r + (x % r), px, py), 0.f);
            return std::vector<Func>{gi};
        });
    }

    // CBAM channel attention with the global average and maximum of `m` per
    // channel (1×1 maps: global_avg_pool / global_max_pool, or statistics
    // computed elsewhere): sigmoid(fc(avg) + fc(max)) · m, fc = 1×1 conv
    // C→C/reduction, ReLU, 1×1 conv back, no biases.
    Map channel_attention(const Map &m, const std::string &name, int reduction, const Map &avg,
                          const Map &mx) {
        const int C = m.channels, hidden = C / reduction;
        const int64_t w1 = take(name + ".fc.0.weight", {hidden, C, 1, 1});
        const int64_t w2 = take(name + ".fc.2.weight", {C, hidden, 1, 1});
        Func W1{clean(name) + "_w1"}, W2{clean(name) + "_w2"};
        Var h{"h"}, i{"i"};
        W1(h, i) = flat_(Expr((int)w1) + h * C + i);
        W2(i, h) = flat_(Expr((int)w2) + i * hidden + h);
        struct Branch { Func pre, out; };
        auto fc = [&](const Map &v, const std::string &tag) {
            Func pre{clean(name) + "_hidden_" + tag}, out{clean(name) + "_fc_" + tag};
            RDom ri(0, C), rh(0, hidden);
            pre(h) = 0.f;
            pre(h) += W1(h, ri) * v.f(ri, 0, 0);
            out(c) = 0.f;
            out(c) += W2(c, rh) * max(pre(rh), 0.f);
            weights_.push_back(pre);
            weights_.push_back(out);
            return Branch{pre, out};
        };
        Branch fa = fc(avg, "avg"), fm = fc(mx, "max");
        Func scale{clean(name) + "_scale"};
        scale(c) = sigmoid_expr(fa.out(c) + fm.out(c));
        weights_.push_back(scale);
        Func f{clean(name)};
        f(c, x, y) = scale(c) * m.f(c, x, y);
        return record({f, C, m.width, m.height}, {m, avg, mx}, [=](Func g) {
            // d scale(c) = Σ_xy g·m; through the sigmoid to z = fa + fm; then
            // each branch's fc backwards, to its pooled input and weights.
            Func ds{clean(name) + "_grad_scale"}, dz{clean(name) + "_grad_z"};
            RDom p(0, m.width, 0, m.height);
            ds(c) = 0.f;
            ds(c) += g(c, p.x, p.y) * m.f(c, p.x, p.y);
            dz(c) = ds(c) * scale(c) * (1.f - scale(c));
            reductions_.insert(reductions_.end(), {ds, dz});
            RDom rc(0, C), rh(0, hidden);
            auto branch_back = [&](const Branch &b, const std::string &tag, Func &dpre) {
                dpre = Func{clean(name) + "_grad_hidden_" + tag};
                dpre(h) = 0.f;
                dpre(h) += W2(rc, h) * dz(rc);
                Func gated{clean(name) + "_grad_gated_" + tag};
                gated(h) = select(b.pre(h) > 0.f, dpre(h), 0.f);
                Func dv{clean(name) + "_grad_pool_" + tag};
                dv(c, x, y) = 0.f;
                dv(c, x, y) += W1(rh, c) * gated(rh);
                reductions_.insert(reductions_.end(), {dpre, gated});
                backward_funcs_.push_back(dv);
                dpre = gated;
                return dv;
            };
            Func dpa, dpm;
            Func da = branch_back(fa, "avg", dpa), dm = branch_back(fm, "max", dpm);
            if (want_params_) {
                // fc.0: [hidden][C], fc.2: [C][hidden], flat j row-major.
                Func g1{clean(name) + "_grad_w1"}, g2{clean(name) + "_grad_w2"};
                Expr j = i;
                g1(i) = dpa(j / C) * avg.f(j % C, 0, 0) + dpm(j / C) * mx.f(j % C, 0, 0);
                g2(i) = dz(j / hidden) * (max(fa.pre(j % hidden), 0.f) + max(fm.pre(j % hidden), 0.f));
                param_grads_.push_back({w1, (int64_t)hidden * C, g1});
                param_grads_.push_back({w2, (int64_t)C * hidden, g2});
            }
            Func gm{clean(name) + "_grad"};
            gm(c, x, y) = scale(c) * g(c, x, y);
            return std::vector<Func>{gm, da, dm};
        });
    }

    // CBAM spatial attention: sigmoid(conv_k×k([mean_c m, max_c m])) · m.
    Map spatial_attention(const Map &m, const std::string &name, int k) {
        const int C = m.channels;
        Func pooled{clean(name) + "_pooled"};
        Expr sum = 0.f, mx = m.f(0, x, y);
        for (int i = 0; i < C; i++) sum += m.f(i, x, y);
        for (int i = 1; i < C; i++) mx = max(mx, m.f(i, x, y));
        pooled(c, x, y) = select(c == 0, sum / float(C), mx);
        pointwise_.push_back(pooled);
        Map pool = record({pooled, 2, m.width, m.height}, {m}, [=](Func g) {
            // The maximum's gradient goes to its first channel, as torch.max's.
            Func first{clean(name) + "_argmax"};
            Expr best = m.f(0, x, y), at = 0;
            for (int i = 1; i < C; i++) {
                at = select(m.f(i, x, y) > best, i, at);
                best = max(best, m.f(i, x, y));
            }
            first(x, y) = at;
            backward_funcs_.push_back(first);
            Func gi{clean(name) + "_pooled_grad"};
            gi(c, x, y) = g(0, x, y) / float(C) + select(first(x, y) == c, g(1, x, y), 0.f);
            return std::vector<Func>{gi};
        });
        Map att = sigmoid(conv2d(pool, name + ".conv", 1, k, false));
        Func f{clean(name)};
        f(c, x, y) = att.f(0, x, y) * m.f(c, x, y);
        return record({f, C, m.width, m.height}, {att, m}, [=](Func g) {
            Func ga{clean(name) + "_grad_att"}, gm{clean(name) + "_grad"};
            Expr s = 0.f;
            for (int i = 0; i < C; i++) s += g(i, x, y) * m.f(i, x, y);
            ga(c, x, y) = s;
            gm(c, x, y) = att.f(0, x, y) * g(c, x, y);
            return std::vector<Func>{ga, gm};
        });
    }

    // A layer written outside this file (a loss's preprocessing, say): its
    // output over its inputs, and its adjoint (dL/d(out) → dL/d(each input),
    // undefined Funcs for none), put on the tape like any other.
    using Backward = std::function<std::vector<Func>(Func)>;
    Map custom(const Map &out, const std::vector<Map> &inputs, Backward backward) {
        return record(out, inputs, backward);
    }

    // ------------------------------------------------------------- backward
    //
    // Reverse mode over the tape every layer above writes: each layer's
    // adjoint is written by hand next to its forward (Halide's
    // propagate_adjoints is wrong through pixel shuffle and slow here,
    // halide14-notes.md), so a network defined once for inference is
    // differentiated from the very same definition.
    struct Gradients {
        std::vector<Map> of_node;  // dL/d(each tape entry's output); f undefined if none
        Func params;               // dL/dθ(i) over the flat buffer (zero for frozen layers)
        const Map &of(const Map &m) const { return of_node.at(m.node); }
    };

    // Gradients of L given dL/d(out) = grad_out (a Func over out's domain).
    // with_params: also the parameters' gradient (costs the weight
    // reductions); else only maps' gradients (a frozen feature network).
    Gradients backward(const Map &out, Func grad_out, bool with_params) {
        return backward({{out, grad_out}}, with_params);
    }
    // The same from several outputs at once (feature maps a loss taps at
    // several depths): L's gradient with respect to each is given.
    Gradients backward(const std::vector<std::pair<Map, Func>> &seeds, bool with_params) {
        want_params_ = with_params;
        std::vector<std::vector<Func>> parts(nodes_.size());
        int last = -1;
        for (const auto &s : seeds) {
            if (s.first.node < 0) throw std::runtime_error("backward: output is not on the tape");
            parts[s.first.node].push_back(s.second);
            last = std::max(last, s.first.node);
        }
        Gradients gr;
        gr.of_node.resize(nodes_.size());
        for (int id = last; id >= 0; id--) {
            if (parts[id].empty()) continue;
            const Node &n = nodes_[id];
            Func total = parts[id][0];
            if (parts[id].size() > 1) {
                total = Func{"grad_sum"};
                Expr e = 0.f;
                for (Func p : parts[id]) e += p(c, x, y);
                total(c, x, y) = e;
            }
            grad_maps_.push_back({total, n.out.channels, n.out.width, n.out.height});
            gr.of_node[id] = grad_maps_.back();
            if (!n.backward) continue;
            std::vector<Func> in = n.backward(total);
            for (size_t k = 0; k < n.inputs.size(); k++)
                if (n.inputs[k] >= 0 && in[k].defined()) parts[n.inputs[k]].push_back(in[k]);
        }
        // Each parameter tensor's gradient written into its own range of the
        // flat buffer (an update per tensor, not a select over all of them
        // for every element).
        Var i{"i"};
        gr.params = Func{"grad_params"};
        gr.params(i) = 0.f;
        for (const ParamGrad &p : param_grads_) {
            RDom j(0, (int)p.count);
            gr.params(Expr((int)p.offset) + j) = p.value(j);
        }
        params_funcs_.push_back(gr.params);
        return gr;
    }

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
        // (each tensor's gradient, p.value, is gathered straight into it)
        for (Func f : params_funcs_) {
            if (!first_time(f)) continue;
            f.compute_root().vectorize(f.args()[0], kVec, TailStrategy::GuardWithIf);
            for (int u = 0; u < f.num_update_definitions(); u++)
                f.update(u).vectorize(f.rvars(u)[0], kVec, TailStrategy::GuardWithIf);
        }
        for (WeightGrad w : weight_grads_)
            if (first_time(w.f)) schedule_weight_grad_plain(w.f);
    }

    // ------------------------------------------------- for the schedule
    // Every conv this builder made, in order: its input and output maps
    // (out.f is the conv's Func), zero-padded input and repacked weights.
    struct ConvRecord {
        Map in, out;
        Func padded;
        Func w;  // (co, kx, ky, ci)
        int k, stride, groups;
        Expr pad_x, pad_y;           // padding before (left, top)
        int64_t w_offset, b_offset;  // in the flat buffer; -1: none / frozen
    };
    const std::vector<ConvRecord> &convs() const { return conv_records_; }
    const std::vector<Func> &weights() const { return weights_; }
    const std::vector<Func> &resamples() const { return resamples_; }
    const std::vector<Func> &pointwise_maps() const { return pointwise_; }
    // The activation applied directly to a conv's output, if any (undefined
    // Func otherwise): the schedule computes the two together.
    Func activation_of(const Func &conv) const {
        for (const auto &a : activations_)
            if (a.first.name() == conv.name()) return a.second;
        return Func();
    }

    Var c{"c"}, x{"x"}, y{"y"};
    Var co{"co"}, kx{"kx"}, ky{"ky"}, ci{"ci"};

private:
    struct Node {
        std::vector<int> inputs;  // tape ids (-1: not on the tape)
        Map out;
        Backward backward;        // dL/d(out) -> dL/d(each input); empty for inputs
    };
    struct ParamGrad {
        int64_t offset, count;
        Func value;  // (j), j < count, in the tensor's PyTorch layout
    };
    struct WeightGrad {
        Func f;  // (co, kx, ky, ci)
    };
    // What a conv's adjoint made, for its schedule.
    struct ConvGrad {
        size_t conv;        // index into convs()
        Func grad_out;      // dL/d(out), zero outside the output (c, x, y)
        Func w_transposed;  // (ci, kx, ky, co)
        Func grad_in;       // (c, x, y)
        Func grad_w;        // (co, kx, ky, ci); undefined without parameters
    };

    static int64_t elements(const TensorSpec &t) {
        int64_t n = 1;
        for (int d : t.dims)
            if (d) n *= d;
        return n;
    }

    static std::string clean(std::string s) {
        for (char &ch : s)
            if (ch == '.') ch = '_';
        return s;
    }

    static Expr sigmoid_expr(Expr v) { return 1.f / (1.f + Halide::exp(-v)); }
    // tanh from Halide's vectorised exp (Halide::tanh is a scalar libm call
    // per element): within ~1e-7 of it, the cancellation near 0 included.
    static Expr tanh_expr(Expr v) {
        Expr e = Halide::exp(-2.f * Halide::abs(v)), t = (1.f - e) / (1.f + e);
        return select(v < 0.f, -t, t);
    }

    static Expr inside(const Map &m, Expr px, Expr py) {
        return px >= 0 && px < m.width && py >= 0 && py < m.height;
    }
    // g over m's domain at (ch, px, py), clamped into it (callers select).
    static Expr read(Func g, const Map &m, Expr ch, Expr px, Expr py) {
        return g(ch, clamp(px, 0, m.width - 1), clamp(py, 0, m.height - 1));
    }

    static void resize_axis(Expr dst, Expr in, Expr out, Expr &i0, Expr &i1, Expr &t) {
        Expr scale = Halide::cast<float>(in) / Halide::cast<float>(out);
        Expr src = max((Halide::cast<float>(dst) + 0.5f) * scale - 0.5f, 0.f);
        i0 = min(Halide::cast<int>(src), in - 1);
        i1 = min(i0 + 1, in - 1);
        t = src - Halide::cast<float>(i0);
    }

    Map record(Map out, const std::vector<Map> &inputs, Backward backward) {
        Node n;
        for (const Map &m : inputs) n.inputs.push_back(m.node);
        out.node = (int)nodes_.size();
        n.out = out;
        n.backward = backward;
        nodes_.push_back(n);
        return out;
    }

    // The offset of the next tensor, which must be `name` with `shape`.
    int64_t take(const std::string &name, std::vector<int> shape) {
        if (next_ >= specs_.size()) throw std::runtime_error("no tensor left for " + name);
        const TensorSpec &t = specs_[next_];
        shape.resize(4, 0);
        if (name != t.name) throw std::runtime_error("expected " + name + ", isp_nets.def has " + t.name);
        for (int i = 0; i < 4; i++)
            if (shape[i] != t.dims[i]) throw std::runtime_error("shape mismatch for " + name);
        int64_t at = offset_;
        offset_ += elements(t);
        next_++;
        return at;
    }

    template <typename F, typename D>
    Map pointwise(const Map &m, const std::string &tag, F fn, D derivative) {
        Func f{tag};
        f(c, x, y) = fn(m.f(c, x, y));
        for (const ConvRecord &conv : conv_records_)
            if (conv.out.f.name() == m.f.name() && !activation_of(conv.out.f).defined())
                activations_.push_back({conv.out.f, f});
        Func pre = m.f;
        return record({f, m.channels, m.width, m.height}, {m}, [=](Func g) {
            Func gi{tag + "_grad"};
            gi(c, x, y) = derivative(pre(c, x, y), g(c, x, y));
            return std::vector<Func>{gi};
        });
    }

    // A conv's weights (repacked, output channel innermost: one vector load
    // per tap) and bias (b0 < 0: none), read from the flat buffer.
    std::pair<Func, Func> conv_params(const std::string &name, int64_t w0, int64_t b0, int cin_g,
                                      int k) {
        if (shared_ && shared_->repacked_.count(name)) return shared_->repacked_.at(name);
        Func w{"w_" + clean(name)}, b{"b_" + clean(name)};
        w(co, kx, ky, ci) = flat_(Expr((int)w0) + ((co * cin_g + ci) * k + ky) * k + kx);
        if (b0 >= 0) b(co) = flat_(Expr((int)b0) + co);
        else b(co) = 0.f;
        weights_.insert(weights_.end(), {w, b});
        repacked_[name] = {w, b};
        return {w, b};
    }

    Map conv_over(const Map &in, const std::string &name, Func w, Func b, int cout, int k,
                  int stride, int groups, Padding padding, int64_t w0, int64_t b0) {
        const int cin_g = in.channels / groups, cout_g = cout / groups;
        // Padding before (left / top) and the output size, per axis.
        auto axis = [&](Expr n, Expr &before, Expr &out_n) {
            if (padding == Padding::Torch) {
                before = k / 2;
                out_n = (n + 2 * (k / 2) - k) / stride + 1;
            } else {
                out_n = (n + stride - 1) / stride;
                Expr total = max((out_n - 1) * stride + k - n, 0);
                before = total / 2;
            }
        };
        Expr pad_x, pad_y, ow, oh;
        axis(in.width, pad_x, ow);
        axis(in.height, pad_y, oh);
        Func padded = zero_outside(in);
        Func out{clean(name)};
        RDom r(0, cin_g, 0, k, 0, k);
        Expr ci_in = groups == 1 ? Expr(r.x) : (c / cout_g) * cin_g + r.x;
        out(c, x, y) = b(c);
        out(c, x, y) += w(c, r.y, r.z, r.x) *
                        padded(ci_in, x * stride + r.y - pad_x, y * stride + r.z - pad_y);
        Map result{out, cout, ow, oh};
        const size_t index = conv_records_.size();
        conv_records_.push_back({in, result, padded, w, k, stride, groups, pad_x, pad_y, w0, b0});
        return record(result, {in}, [=](Func g) { return std::vector<Func>{conv_backward(index, g)}; });
    }

    // A conv's adjoint given dL/d(out) over its output domain: dL/d(in), and
    // when parameters are wanted and trainable, dL/dw and dL/db.
    Func conv_backward(size_t index, Func grad_out) {
        const ConvRecord &cr = conv_records_.at(index);
        const int cin = cr.in.channels, cout = cr.out.channels, k = cr.k, s = cr.stride;
        const int cin_g = cin / cr.groups, cout_g = cout / cr.groups;
        Expr pad_x = cr.pad_x, pad_y = cr.pad_y;
        Func g{"grad_out_zero"};
        g(c, x, y) = select(inside(cr.out, x, y), read(grad_out, cr.out, c, x, y), 0.f);
        // dL/d(in)(ci, x, y) = Σ w(co, kx, ky, ci) · g(co, (x + pad − kx)/s, ...)
        // over the taps where s divides x + pad − kx: a transposed
        // convolution. With a stride, only the taps of x's phase are visited
        // (kx = (x + pad) mod s + s·j), not all k² with most of them masked.
        Func gin{"grad_in"};
        const int taps = (k + s - 1) / s;
        RDom r(0, cout_g, 0, taps, 0, taps);
        Expr o = (c / cin_g) * cout_g + r.x;
        Expr tap_x = (x + pad_x) % s + s * r.y, tap_y = (y + pad_y) % s + s * r.z;
        auto zero_past_k = [&](Expr kx_, Expr ky_, Expr v) {
            return select(kx_ < k && ky_ < k, v, 0.f);
        };
        // Dense convs read the weights as (ci, kx, ky, co), zero past k: one
        // vector load per tap when the schedule vectorises over input
        // channels. Grouped ones (depthwise) already have theirs that way.
        Func wt{"w_transposed"};
        wt(c, kx, ky, co) = zero_past_k(kx, ky, cr.w(co, min(kx, k - 1), min(ky, k - 1), c));
        Expr weight = cr.groups == 1
                          ? wt(c, tap_x, tap_y, o)
                          : zero_past_k(tap_x, tap_y,
                                        cr.w(o, min(tap_x, k - 1), min(tap_y, k - 1), c % cin_g));
        gin(c, x, y) = 0.f;
        gin(c, x, y) += weight * g(o, (x + pad_x - tap_x) / s, (y + pad_y - tap_y) / s);
        conv_grads_.push_back({index, g, wt, gin, Func()});
        grad_maps_.push_back({gin, cin, cr.in.width, cr.in.height});
        if (want_params_ && cr.w_offset >= 0) {
            // dL/dw(co, kx, ky, ci) = Σ_{x,y} g(co, x, y) · in(ci', x·s + kx − pad, ...)
            Func gw{"grad_w"}, gb{"grad_b"};
            RDom p(0, cr.out.width, 0, cr.out.height);
            Expr src_c = (co / cout_g) * cin_g + ci;
            gw(co, kx, ky, ci) = 0.f;
            gw(co, kx, ky, ci) += g(co, p.x, p.y) * cr.padded(src_c, p.x * s + kx - pad_x, p.y * s + ky - pad_y);
            weight_grads_.push_back({gw});
            conv_grads_.back().grad_w = gw;
            Var j{"j"};
            Func flat_w{"grad_w_flat"};  // [co][ci][ky][kx]
            flat_w(j) = gw(j / (cin_g * k * k), j % k, (j / k) % k, (j / (k * k)) % cin_g);
            param_grads_.push_back({cr.w_offset, (int64_t)cout * cin_g * k * k, flat_w});
            if (cr.b_offset >= 0) {
                gb(co) = 0.f;
                gb(co) += bias_grad_scale_.defined() ? g(co, p.x, p.y) * bias_grad_scale_ : g(co, p.x, p.y);
                reductions_.push_back(gb);
                Func flat_b{"grad_b_flat"};
                flat_b(j) = gb(j);
                param_grads_.push_back({cr.b_offset, (int64_t)cout, flat_b});
            }
        }
        return gin;
    }

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

    Func zero_outside(const Map &in) {
        Func f{"zero_padded"};
        f(c, x, y) = select(inside(in, x, y), read(in.f, in, c, x, y), 0.f);
        return f;
    }

    Func flat_;
    std::vector<TensorSpec> specs_;
    size_t next_ = 0;
    int64_t offset_ = 0;
    std::vector<Func> weights_, resamples_, pointwise_;
    std::vector<std::pair<Func, Func>> activations_;  // (conv, its activation)
    std::vector<ConvRecord> conv_records_;
    std::vector<Node> nodes_;
    bool want_params_ = false, planar_ = false, no_bias_ = false;
    Expr bias_grad_scale_;  // undefined: 1
    std::vector<ParamGrad> param_grads_;
    std::vector<WeightGrad> weight_grads_;
    std::vector<ConvGrad> conv_grads_;
    std::vector<Map> grad_maps_;
    std::vector<Func> backward_funcs_, reductions_, params_funcs_;
    std::vector<std::pair<Func, int>> gathers_;  // (a resampling's adjoint, its channels)
    std::map<std::string, std::pair<Func, Func>> repacked_;  // conv name -> (w, b)
    const NetBuilder *shared_ = nullptr;
};

}  // namespace lumos
