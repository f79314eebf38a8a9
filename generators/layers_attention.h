// layers_attention.h — Swin transformer layers: windowed multi-head
// self-attention (W-MSA / SW-MSA) with the relative position bias and the
// shifted windows' mask, the maps' roll / pad / crop around it, and the whole
// Swin block. Part of layers.h (include that).
//
// Semantics and state_dict names are those of the Swin reference code
// (SwinTransformerBlock, WindowAttention): qkv = Linear(C, 3C), q scaled by
// head_dim^-0.5, attention + relative_position_bias_table[index] (a table
// of (2w−1)² × heads; the index is computed here, not loaded), + the mask
// (−100 between tokens of a window that came from different regions of the
// rolled map), softmax, proj = Linear(C, C). Maps are padded (zeros, after
// norm1) to whole windows, as the reference's detection variant does.
#pragma once

#include <cmath>

#ifndef LUMOS_LAYERS_CORE
#error "layers_attention.h is part of layers.h: include layers.h"
#endif

namespace lumos {

class AttentionLayers : public ResampleLayers {
public:
    using ResampleLayers::ResampleLayers;

    // torch.roll(m, shifts=(sy, sx), dims=(H, W)): out(x) = m((x − sx) mod W).
    Map roll(const Map &m, int sx, int sy) {
        Func f{"roll"};
        f(c, x, y) = m.f(c, (x - sx) % m.width, (y - sy) % m.height);
        return record({f, m.channels, m.width, m.height}, {m}, [=](Func g) {
            Func gi{"roll_grad"};
            gi(c, x, y) = g(c, (x + sx) % m.width, (y + sy) % m.height);
            return std::vector<Func>{gi};
        });
    }

    // Zeros after the map (right, bottom) to W × H, and its inverse.
    Map pad_to(const Map &m, Expr W, Expr H) {
        Func f{"pad_to"};
        f(c, x, y) = select(inside(m, x, y), read(m.f, m, c, x, y), 0.f);
        return record({f, m.channels, W, H}, {m}, [](Func g) { return std::vector<Func>{g}; });
    }
    Map crop(const Map &m, Expr W, Expr H) {
        Func f{"crop"};
        f(c, x, y) = m.f(c, x, y);
        Map out{f, m.channels, W, H};
        return record(out, {m}, [=](Func g) {
            Func gi{"crop_grad"};
            gi(c, x, y) = select(inside(out, x, y), read(g, out, c, x, y), 0.f);
            return std::vector<Func>{gi};
        });
    }

    // WindowAttention(C, window, heads) on a map of whole windows (sizes
    // multiples of `window`), already rolled by −shift when shift > 0 (the
    // mask then applies). Tensors: relative_position_bias_table, qkv, proj.
    Map window_attention(const Map &m, const std::string &name, int heads, int window, int shift) {
        const int T = 2 * window - 1;
        const int64_t t0 = take(name + ".relative_position_bias_table", {T * T, heads});
        Map qkv = linear(m, name + ".qkv", 3 * m.channels);
        Map att = attention_core(qkv, clean(name), heads, window, shift, t0);
        return linear(att, name + ".proj", m.channels);
    }

    // SwinTransformerBlock(C, heads, window, shift, mlp_ratio):
    // x + attention(norm1 x), then + mlp(norm2 ·), the MLP fc1 → GELU → fc2.
    Map swin_block(const Map &in, const std::string &name, int heads, int window, int shift,
                   float mlp_ratio) {
        const int C = in.channels, hidden = int(C * mlp_ratio);
        Expr W = in.width, H = in.height;
        Expr Wp = (W + window - 1) / window * window, Hp = (H + window - 1) / window * window;
        Map h = pad_to(layer_norm(in, name + ".norm1"), Wp, Hp);
        if (shift > 0) h = roll(h, -shift, -shift);
        Map a = window_attention(h, name + ".attn", heads, window, shift);
        if (shift > 0) a = roll(a, shift, shift);
        Map x1 = add(in, crop(a, W, H));
        Map mlp = layer_norm(x1, name + ".norm2");
        mlp = gelu(linear(mlp, name + ".mlp.fc1", hidden));
        mlp = linear(mlp, name + ".mlp.fc2", C);
        return add(x1, mlp);
    }

protected:
    // softmax(q·k·scale + bias + mask)·v per window and head, from the qkv
    // map (3C channels: q, k, v, each heads × head_dim); (C, W, H) out.
    // Token (x, y) is index n = (y mod w)·w + x mod w of its window; the
    // attention stages are (m, head, x, y) over the window's keys m.
    Map attention_core(const Map &qkv, const std::string &t, int heads, int w, int shift, int64_t t0) {
        const int C = qkv.channels / 3, d = C / heads, N = w * w, T = 2 * w - 1;
        if (C % heads != 0) throw std::runtime_error(t + ": channels not divisible by heads");
        const float scale = float(1.0 / std::sqrt(double(d)));
        const Expr W = qkv.width, H = qkv.height;
        Func Q = qkv.f;
        Var mm{"m"}, hh{"h"};
        // key m of the window holding (u, v)
        auto kx_of = [=](Expr m_, Expr u) { return u / w * w + m_ % w; };
        auto ky_of = [=](Expr m_, Expr v) { return v / w * w + m_ / w; };
        // relative_position_index of query (u, v) and key m
        auto rel = [=](Expr u, Expr v, Expr m_) {
            return (v % w - m_ / w + (w - 1)) * T + (u % w - m_ % w + (w - 1));
        };
        // shifted windows: region 0 / 1 / 2 of each axis of the rolled map
        auto region = [=](Expr p, Expr n) { return select(p < n - w, 0, select(p < n - shift, 1, 2)); };
        auto label = [=](Expr u, Expr v) { return region(u, W) * 3 + region(v, H); };

        Func table{t + "_rel_table"};
        table(mm, hh) = flat_(Expr((int)t0) + mm * heads + hh);
        weights_.push_back(table);

        Func S{t + "_scores"}, mx{t + "_max"}, e{t + "_exp"}, den{t + "_den"}, A{t + "_attn"}, O{t};
        Expr kx_ = kx_of(mm, x), ky_ = ky_of(mm, y);
        Expr bias = table(rel(x, y, mm), hh);
        if (shift > 0) bias += select(label(x, y) != label(kx_, ky_), -100.f, 0.f);
        RDom ri(0, d), rm(0, N);
        S(mm, hh, x, y) = bias;
        S(mm, hh, x, y) += Q(hh * d + ri, x, y) * Q(C + hh * d + ri, kx_, ky_) * scale;
        mx(hh, x, y) = Halide::Float(32).min();
        mx(hh, x, y) = max(mx(hh, x, y), S(rm, hh, x, y));
        e(mm, hh, x, y) = Halide::exp(S(mm, hh, x, y) - mx(hh, x, y));
        den(hh, x, y) = 0.f;
        den(hh, x, y) += e(rm, hh, x, y);
        A(mm, hh, x, y) = e(mm, hh, x, y) / den(hh, x, y);
        O(c, x, y) = 0.f;
        O(c, x, y) += A(rm, c / d, x, y) * Q(2 * C + c, kx_of(rm, x), ky_of(rm, y));
        stages_.insert(stages_.end(), {S, mx, e, den, A});
        Map out{O, C, W, H};
        return record(out, {qkv}, [=](Func g) {
            // dA = g·v; dS = A·(dA − Σ_m A·dA); dq = scale·Σ_m dS·k;
            // dk, dv gathered over the queries of the key's window.
            Func gA{t + "_grad_attn"}, dot{t + "_grad_dot"}, gS{t + "_grad_scores"};
            Func gq{t + "_grad_q"}, gk{t + "_grad_k"}, gv{t + "_grad_v"}, gqkv{t + "_grad"};
            gA(mm, hh, x, y) = 0.f;
            gA(mm, hh, x, y) += g(hh * d + ri, x, y) * Q(2 * C + hh * d + ri, kx_of(mm, x), ky_of(mm, y));
            dot(hh, x, y) = 0.f;
            dot(hh, x, y) += A(rm, hh, x, y) * gA(rm, hh, x, y);
            gS(mm, hh, x, y) = A(mm, hh, x, y) * (gA(mm, hh, x, y) - dot(hh, x, y));
            gq(c, x, y) = 0.f;
            gq(c, x, y) += gS(rm, c / d, x, y) * Q(C + c, kx_of(rm, x), ky_of(rm, y)) * scale;
            // (x, y) as a key: its index, and the window's queries n
            Expr me = (y % w) * w + x % w, qx = kx_of(rm, x), qy = ky_of(rm, y);
            gk(c, x, y) = 0.f;
            gk(c, x, y) += gS(me, c / d, qx, qy) * Q(c, qx, qy) * scale;
            gv(c, x, y) = 0.f;
            gv(c, x, y) += A(me, c / d, qx, qy) * g(c, qx, qy);
            gqkv(c, x, y) = select(c < C, gq(min(c, C - 1), x, y),
                                   c < 2 * C, gk(clamp(c - C, 0, C - 1), x, y),
                                   gv(clamp(c - 2 * C, 0, C - 1), x, y));
            stages_.insert(stages_.end(), {gA, dot, gS, gq, gk, gv});
            if (want_params_) {
                // dL/dtable(r, head) = Σ over (query, key) pairs at offset r
                Func gt{t + "_grad_table"}, flat_t{t + "_grad_table_flat"};
                RDom p(0, N, 0, W, 0, H);
                gt(mm, hh) = 0.f;
                gt(rel(p.y, p.z, p.x), hh) += gS(p.x, hh, p.y, p.z);
                reductions_.push_back(gt);
                Var j{"j"};
                flat_t(j) = gt(j / heads, j % heads);
                param_grads_.push_back({t0, (int64_t)T * T * heads, flat_t});
            }
            return std::vector<Func>{gqkv};
        });
    }
};

}  // namespace lumos
