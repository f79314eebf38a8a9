// layers.h — the layer vocabulary every lumos network is built from.
//
// A network is written once, as calls on a NetBuilder: it reads the
// parameters from the network's flat weight buffer in the order of
// its tensors.def (checking names and shapes while the generator runs), builds
// each layer as Halide Funcs, and records what it made so the generator's
// schedule can place every layer without naming them one by one.
//
// Feature maps are Funcs f(c, x, y) over a spatial domain [0, width) ×
// [0, height). Padding layers see zeros outside it, as PyTorch's
// `padding=k/2` convolutions do; the domain sizes follow PyTorch's rules
// (floor for pooling and strided convs).
#pragma once

// The vocabulary's records and backward() are in tape.h, its schedules in
// schedule.h; the layers beyond the ISPs' in layers_norm.h (norms, GELU,
// linear), layers_resample.h (transposed conv, resizes, pooling) and
// layers_attention.h (Swin windowed attention).

#include "schedule.h" /* and tape.h: Map, the tensors, Halide's names in lumos */

namespace lumos {

// How a conv pads: PyTorch's padding=k/2 on every side, or TF/Keras
// "same" (total max((⌈n/s⌉ − 1)·s + k − n, 0), the odd pixel after: a
// stride-2 3×3 conv on an even size pads only bottom/right), for weights
// trained in TF (the MobileNetV2 of nsfwjs).
enum class Padding { Torch, TfSame };


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

class CoreLayers : public Schedule {
public:
    using Schedule::Schedule;

    // Read the convs' repacked weights from `other` (a second copy of the
    // same network in one pipeline, which must be scheduled too) instead of
    // repacking them again.
    void share_weights(const Tape &other) { shared_ = &other; }

    // Convs without their biases (the tensors still consumed in order): the
    // network's tangent map, its directional derivative at fixed gates.
    void drop_biases() { no_bias_ = true; }

    // Each conv's bias gradient times s (weight gradients taken against
    // inputs other than the forward's, whose bias part is scaled apart).
    void scale_bias_grads(Expr s) { bias_grad_scale_ = s; }


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

    // m[:, c0:c0 + n] (channels sliced, as torch indexing)
    Map channels(const Map &m, int c0, int n) {
        Func f{"channels"};
        f(c, x, y) = m.f(c + c0, x, y);
        return record({f, n, m.width, m.height}, {m}, [=](Func g) {
            Func gi{"channels_grad"};
            gi(c, x, y) = select(c >= c0 && c < c0 + n, g(clamp(c - c0, 0, n - 1), x, y), 0.f);
            return std::vector<Func>{gi};
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
        Expr x0, x1, tx, y0, y1, ty;
        resize_axis(x, m.width, ow, x0, x1, tx);
        resize_axis(y, m.height, oh, y0, y1, ty);
        Map out = bilinear_blend(m, "resize", ow, oh, x0, x1, tx, y0, y1, ty);
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
        // The channel sum and maximum as reductions over a channel RDom, so
        // that a schedule can load a pixel's channels as one vector and
        // reduce across its lanes: written out per channel, a map stored
        // channel-innermost and vectorised over x read them as gathers.
        Func pooled{clean(name) + "_pooled"}, sum{clean(name) + "_sum"}, mx{clean(name) + "_max"};
        RDom rc(0, C, clean(name) + "_rc");
        sum(x, y) = 0.f;
        sum(x, y) += m.f(rc, x, y);
        mx(x, y) = m.f(0, x, y);
        mx(x, y) = max(mx(x, y), m.f(rc, x, y));
        channel_reductions_.push_back(sum);
        channel_reductions_.push_back(mx);
        pooled(c, x, y) = select(c == 0, sum(x, y) / float(C), mx(x, y));
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

protected:
    static Expr sigmoid_expr(Expr v) { return 1.f / (1.f + Halide::exp(-v)); }
    // tanh from Halide's vectorised exp (Halide::tanh is a scalar libm call
    // per element): within ~1e-7 of it, the cancellation near 0 included.
    static Expr tanh_expr(Expr v) {
        Expr e = Halide::exp(-2.f * Halide::abs(v)), t = (1.f - e) / (1.f + e);
        return select(v < 0.f, -t, t);
    }

    // The bilinear blend of m at taps (x0 | x1, weight tx) × (y0 | y1, ty):
    // the forward of both bilinear resizes, a resample stage of its own.
    Map bilinear_blend(const Map &m, const std::string &name, Expr ow, Expr oh, Expr x0, Expr x1,
                       Expr tx, Expr y0, Expr y1, Expr ty) {
        Func f{name};
        Expr top = m.f(c, x0, y0) * (1.f - tx) + m.f(c, x1, y0) * tx;
        Expr bottom = m.f(c, x0, y1) * (1.f - tx) + m.f(c, x1, y1) * tx;
        f(c, x, y) = top * (1.f - ty) + bottom * ty;
        resamples_.push_back(f);
        return {f, m.channels, ow, oh};
    }

    static void resize_axis(Expr dst, Expr in, Expr out, Expr &i0, Expr &i1, Expr &t) {
        Expr scale = Halide::cast<float>(in) / Halide::cast<float>(out);
        Expr src = max((Halide::cast<float>(dst) + 0.5f) * scale - 0.5f, 0.f);
        i0 = min(Halide::cast<int>(src), in - 1);
        i1 = min(i0 + 1, in - 1);
        t = src - Halide::cast<float>(i0);
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
        if (const std::pair<Func, Func> *s = shared_conv(name)) return *s;
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

    Func zero_outside(const Map &in) {
        Func f{"zero_padded"};
        f(c, x, y) = select(inside(in, x, y), read(in.f, in, c, x, y), 0.f);
        return f;
    }
};

}  // namespace lumos

// The layers grouped by concern, each set deriving from the one before
// (these headers are parts of this one: include layers.h).
#define LUMOS_LAYERS_CORE
#include "layers_norm.h"
#include "layers_resample.h"
#include "layers_attention.h"

namespace lumos {

class NetBuilder : public AttentionLayers {
public:
    using AttentionLayers::AttentionLayers;
};

}  // namespace lumos
