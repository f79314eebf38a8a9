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

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "Halide.h"

namespace lumos {

using Halide::Expr;
using Halide::Func;
using Halide::RDom;
using Halide::Var;

struct Map {
    Func f;          // f(c, x, y)
    int channels;
    Expr width, height;
};

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

    // Number of floats in the flat buffer.
    static int64_t flat_size(const std::string &net) {
        int64_t n = 0;
        for (const TensorSpec &t : all_tensors())
            if (net == t.net) n += elements(t);
        return n;
    }

    // Every tensor must have been consumed, in order.
    void finish() const {
        if (next_ != specs_.size())
            throw std::runtime_error(std::string("unused tensor ") + specs_[next_].name);
    }

    // ------------------------------------------------------------- layers

    // Conv2d(in.channels, cout, k, stride, padding=k/2, groups), PyTorch
    // semantics; `groups == in.channels == cout` is a depthwise conv.
    Map conv2d(const Map &in, const std::string &name, int cout, int k, bool bias = true,
               int stride = 1, int groups = 1) {
        std::pair<Func, Func> wb = conv_params(in, name, cout, k, bias, groups);
        return conv_over(in, name, wb.first, wb.second, cout, k, stride, groups);
    }

    // A Conv2d followed by BatchNorm2d in eval mode, the norm folded into the
    // conv's weights and bias once per call: w' = w·γ/√(σ²+ε),
    // b' = (b − μ)·γ/√(σ²+ε) + β. The norm's four tensors follow the conv's.
    Map conv2d_bn(const Map &in, const std::string &conv, const std::string &bn, int cout, int k,
                  bool bias = false, int stride = 1, int groups = 1, float eps = 1e-5f) {
        std::pair<Func, Func> wb = conv_params(in, conv, cout, k, bias, groups);
        int64_t g = take(bn + ".weight", {cout}), be = take(bn + ".bias", {cout});
        int64_t mu = take(bn + ".running_mean", {cout}), var = take(bn + ".running_var", {cout});
        Func gain{"gain_" + clean(bn)}, w{"wf_" + clean(conv)}, b{"bf_" + clean(conv)};
        gain(co) = flat_(Expr((int)g) + co) / Halide::sqrt(flat_(Expr((int)var) + co) + eps);
        w(co, kx, ky, ci) = wb.first(co, kx, ky, ci) * gain(co);
        b(co) = (wb.second(co) - flat_(Expr((int)mu) + co)) * gain(co) + flat_(Expr((int)be) + co);
        weights_.insert(weights_.end(), {gain, w, b});
        return conv_over(in, conv, w, b, cout, k, stride, groups);
    }

    // ------------------------------------------------------------- adjoints
    //
    // Hand-written gradients of a conv made by this builder, from dL/d(out)
    // given as a Map over the conv's output domain. They are written (and
    // scheduled) like the forward, rather than left to Halide's
    // propagate_adjoints, which is wrong through pixel shuffle and slow here
    // (halide14-notes.md).
    struct ConvGrads {
        Map input;     // dL/d(in), over the input's domain
        Func weight;   // dL/dw(co, kx, ky, ci), the layout of the repacked weights
        Func bias;     // dL/db(co)
    };

    ConvGrads conv2d_backward(size_t index, const Map &grad_out) {
        const ConvRecord &cr = conv_records_.at(index);
        const int cin = cr.in.channels, cout = cr.out.channels, k = cr.k, s = cr.stride, pad = k / 2;
        const int cin_g = cin / cr.groups, cout_g = cout / cr.groups;
        Func g{"grad_out_zero"};
        g(c, x, y) = select(x >= 0 && x < cr.out.width && y >= 0 && y < cr.out.height,
                            grad_out.f(c, clamp(x, 0, cr.out.width - 1), clamp(y, 0, cr.out.height - 1)),
                            0.f);
        // dL/d(in)(ci, x, y) = Σ w(co, kx, ky, ci) · g(co, (x + pad − kx)/s, ...)
        // over taps where s divides x + pad − kx: a transposed convolution.
        Func gin{"grad_in"};
        RDom r(0, cout_g, 0, k, 0, k);
        Expr o = (c / cin_g) * cout_g + r.x;
        Expr ux = x + pad - r.y, uy = y + pad - r.z;
        Expr hit = (ux % s == 0) && (uy % s == 0);
        gin(c, x, y) = 0.f;
        gin(c, x, y) += select(hit, cr.w(o, r.y, r.z, c % cin_g) * g(o, ux / s, uy / s), 0.f);
        // dL/dw(co, kx, ky, ci) = Σ_{x,y} g(co, x, y) · in(ci', x·s + kx − pad, ...)
        Func padded = zero_outside(cr.in);
        Func gw{"grad_w"}, gb{"grad_b"};
        RDom p(0, cr.out.width, 0, cr.out.height);
        Expr src_c = (co / cout_g) * cin_g + ci;
        gw(co, kx, ky, ci) = 0.f;
        gw(co, kx, ky, ci) += g(co, p.x, p.y) *
                                     padded(src_c, p.x * s + kx - pad, p.y * s + ky - pad);
        gb(co) = 0.f;
        gb(co) += g(co, p.x, p.y);
        return {{gin, cin, cr.in.width, cr.in.height}, gw, gb};
    }

    // Adjoints of the pointwise layers, given the layer's input `pre` and
    // dL/d(output) `g`. (Pixel shuffle's adjoint is pixel_unshuffle.)
    Map relu_backward(const Map &pre, const Map &g) {
        Func f{"relu_grad"};
        f(c, x, y) = select(pre.f(c, x, y) > 0.f, g.f(c, x, y), 0.f);
        return {f, g.channels, g.width, g.height};
    }
    Map tanh_backward(const Map &pre, const Map &g) {
        Func f{"tanh_grad"};
        Expr t = Halide::tanh(pre.f(c, x, y));
        f(c, x, y) = g.f(c, x, y) * (1.f - t * t);
        return {f, g.channels, g.width, g.height};
    }

    Map relu(const Map &m) { return pointwise(m, "relu", [](Expr v) { return max(v, 0.f); }); }
    Map relu6(const Map &m) { return pointwise(m, "relu6", [](Expr v) { return clamp(v, 0.f, 6.f); }); }
    Map leaky_relu(const Map &m, float slope) {
        return pointwise(m, "leaky_relu", [=](Expr v) { return select(v > 0, v, slope * v); });
    }
    Map tanh(const Map &m) { return pointwise(m, "tanh", [](Expr v) { return Halide::tanh(v); }); }
    Map sigmoid(const Map &m) { return pointwise(m, "sigmoid", sigmoid_expr); }

    Map add(const Map &a, const Map &b) {
        Func f{"add"};
        f(c, x, y) = a.f(c, x, y) + b.f(c, x, y);
        return {f, a.channels, a.width, a.height};
    }
    Map sub(const Map &a, const Map &b) {
        Func f{"sub"};
        f(c, x, y) = a.f(c, x, y) - b.f(c, x, y);
        return {f, a.channels, a.width, a.height};
    }

    // torch.cat([a, b], dim=1)
    Map concat(const Map &a, const Map &b) {
        Func f{"concat"};
        f(c, x, y) = select(c < a.channels, a.f(min(c, a.channels - 1), x, y),
                            b.f(max(c - a.channels, 0), x, y));
        return {f, a.channels + b.channels, a.width, a.height};
    }

    // AvgPool2d(2, 2) / MaxPool2d(2, 2): floor of the size.
    Map avg_pool2(const Map &m) {
        Func f{"avg_pool2"};
        f(c, x, y) = 0.25f * (m.f(c, 2 * x, 2 * y) + m.f(c, 2 * x + 1, 2 * y) +
                              m.f(c, 2 * x, 2 * y + 1) + m.f(c, 2 * x + 1, 2 * y + 1));
        return {f, m.channels, m.width / 2, m.height / 2};
    }
    Map max_pool2(const Map &m) {
        Func f{"max_pool2"};
        f(c, x, y) = max(max(m.f(c, 2 * x, 2 * y), m.f(c, 2 * x + 1, 2 * y)),
                         max(m.f(c, 2 * x, 2 * y + 1), m.f(c, 2 * x + 1, 2 * y + 1)));
        return {f, m.channels, m.width / 2, m.height / 2};
    }

    // F.interpolate(mode='bilinear', align_corners=False) to (ow, oh); with
    // ow = 2w it is nn.Upsample(scale_factor=2). Source coordinates as
    // PyTorch computes them: (dst + 0.5)·in/out − 0.5, clamped below at 0.
    Map resize_bilinear(const Map &m, Expr ow, Expr oh) {
        Func f{"resize"};
        auto axis = [](Expr dst, Expr in, Expr out, Expr &i0, Expr &i1, Expr &t) {
            Expr scale = Halide::cast<float>(in) / Halide::cast<float>(out);
            Expr src = max((Halide::cast<float>(dst) + 0.5f) * scale - 0.5f, 0.f);
            i0 = min(Halide::cast<int>(src), in - 1);
            i1 = min(i0 + 1, in - 1);
            t = src - Halide::cast<float>(i0);
        };
        Expr x0, x1, tx, y0, y1, ty;
        axis(x, m.width, ow, x0, x1, tx);
        axis(y, m.height, oh, y0, y1, ty);
        Expr top = m.f(c, x0, y0) * (1.f - tx) + m.f(c, x1, y0) * tx;
        Expr bottom = m.f(c, x0, y1) * (1.f - tx) + m.f(c, x1, y1) * tx;
        f(c, x, y) = top * (1.f - ty) + bottom * ty;
        resamples_.push_back(f);
        return {f, m.channels, ow, oh};
    }

    // F.pixel_shuffle(m, r): channel c·r² + i·r + j goes to (r·x + j, r·y + i).
    Map pixel_shuffle(const Map &m, int r) {
        Func f{"pixel_shuffle"};
        f(c, x, y) = m.f(c * r * r + (y % r) * r + (x % r), x / r, y / r);
        return {f, m.channels / (r * r), m.width * r, m.height * r};
    }
    // F.pixel_unshuffle(m, r), its inverse.
    Map pixel_unshuffle(const Map &m, int r) {
        Func f{"pixel_unshuffle"};
        f(c, x, y) = m.f(c / (r * r), x * r + c % r, y * r + (c / r) % r);
        return {f, m.channels * r * r, m.width / r, m.height / r};
    }

    // CBAM channel attention with the global average and maximum of `m`
    // given per channel (avg(c), max(c)): sigmoid(fc(avg) + fc(max)) · m,
    // fc = 1×1 conv C→C/reduction, ReLU, 1×1 conv back, no biases.
    Map channel_attention(const Map &m, const std::string &name, int reduction, Func avg,
                          Func mx) {
        const int C = m.channels, hidden = C / reduction;
        int64_t w1 = take(name + ".fc.0.weight", {hidden, C, 1, 1});
        int64_t w2 = take(name + ".fc.2.weight", {C, hidden, 1, 1});
        Var h{"h"};
        auto fc = [&](Func v, const std::string &tag) {
            Func hid{clean(name) + "_hidden_" + tag}, out{clean(name) + "_fc_" + tag};
            RDom ri(0, C), rh(0, hidden);
            hid(h) = 0.f;
            hid(h) += flat_(Expr((int)w1) + h * C + ri) * v(ri);
            out(c) = 0.f;
            out(c) += flat_(Expr((int)w2) + c * hidden + rh) * max(hid(rh), 0.f);
            weights_.push_back(hid);
            weights_.push_back(out);
            return out;
        };
        Func fa = fc(avg, "avg"), fm = fc(mx, "max");
        Func scale{clean(name) + "_scale"};
        scale(c) = sigmoid_expr(fa(c) + fm(c));
        weights_.push_back(scale);
        Func f{clean(name)};
        f(c, x, y) = scale(c) * m.f(c, x, y);
        return {f, C, m.width, m.height};
    }

    // CBAM spatial attention: sigmoid(conv_k×k([mean_c m, max_c m])) · m.
    Map spatial_attention(const Map &m, const std::string &name, int k) {
        Func pooled{clean(name) + "_pooled"};
        Expr sum = 0.f, mx = m.f(0, x, y);
        for (int i = 0; i < m.channels; i++) sum += m.f(i, x, y);
        for (int i = 1; i < m.channels; i++) mx = max(mx, m.f(i, x, y));
        pooled(c, x, y) = select(c == 0, sum / float(m.channels), mx);
        pointwise_.push_back(pooled);
        Map att = sigmoid(conv2d({pooled, 2, m.width, m.height}, name + ".conv", 1, k, false));
        Func f{clean(name)};
        f(c, x, y) = att.f(0, x, y) * m.f(c, x, y);
        return {f, m.channels, m.width, m.height};
    }

    // ------------------------------------------------- for the schedule
    // Every conv this builder made, in order: its input and output maps
    // (out.f is the conv's Func), zero-padded input and repacked weights.
    struct ConvRecord {
        Map in, out;
        Func padded;
        Func w;  // (co, kx, ky, ci)
        int k, stride, groups;
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

    template <typename F>
    Map pointwise(const Map &m, const std::string &tag, F fn) {
        Func f{tag};
        f(c, x, y) = fn(m.f(c, x, y));
        for (const ConvRecord &conv : conv_records_)
            if (conv.out.f.name() == m.f.name() && !activation_of(conv.out.f).defined())
                activations_.push_back({conv.out.f, f});
        return {f, m.channels, m.width, m.height};
    }

    // A conv's weights (repacked, output channel innermost: one vector load
    // per tap) and bias, read from the flat buffer.
    std::pair<Func, Func> conv_params(const Map &in, const std::string &name, int cout, int k,
                                      bool bias, int groups) {
        const int cin_g = in.channels / groups;
        int64_t w0 = take(name + ".weight", {cout, cin_g, k, k});
        Func w{"w_" + clean(name)}, b{"b_" + clean(name)};
        w(co, kx, ky, ci) = flat_(Expr((int)w0) + ((co * cin_g + ci) * k + ky) * k + kx);
        if (bias) {
            int64_t b0 = take(name + ".bias", {cout});
            b(co) = flat_(Expr((int)b0) + co);
        } else {
            b(co) = 0.f;
        }
        weights_.insert(weights_.end(), {w, b});
        return {w, b};
    }

    Map conv_over(const Map &in, const std::string &name, Func w, Func b, int cout, int k,
                  int stride, int groups) {
        const int cin_g = in.channels / groups, cout_g = cout / groups, pad = k / 2;
        Func padded = zero_outside(in);
        Func out{clean(name)};
        RDom r(0, cin_g, 0, k, 0, k);
        Expr ci_in = groups == 1 ? Expr(r.x) : (c / cout_g) * cin_g + r.x;
        out(c, x, y) = b(c);
        out(c, x, y) += w(c, r.y, r.z, r.x) *
                        padded(ci_in, x * stride + r.y - pad, y * stride + r.z - pad);
        Map result{out, cout, (in.width + 2 * pad - k) / stride + 1,
                   (in.height + 2 * pad - k) / stride + 1};
        conv_records_.push_back({in, result, padded, w, k, stride, groups});
        return result;
    }

    Func zero_outside(const Map &in) {
        Func f{"zero_padded"};
        Expr inside = x >= 0 && x < in.width && y >= 0 && y < in.height;
        f(c, x, y) = select(inside, in.f(c, clamp(x, 0, in.width - 1), clamp(y, 0, in.height - 1)), 0.f);
        return f;
    }

    Func flat_;
    std::vector<TensorSpec> specs_;
    size_t next_ = 0;
    int64_t offset_ = 0;
    std::vector<Func> weights_, resamples_, pointwise_;
    std::vector<std::pair<Func, Func>> activations_;  // (conv, its activation)
    std::vector<ConvRecord> conv_records_;
};

}  // namespace lumos
