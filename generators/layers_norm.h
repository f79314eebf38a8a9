// layers_norm.h — per-token and per-map layers of the transformer and U-Net
// networks: linear (nn.Linear per pixel), GELU (exact, erf), LayerNorm over
// channels, GroupNorm and InstanceNorm2d. Part of layers.h (include that).
//
// Every layer has PyTorch's semantics and state_dict names (`weight`,
// `bias`); the norms' statistics are biased variances, as PyTorch's.
#pragma once

#ifndef LUMOS_LAYERS_CORE
#error "layers_norm.h is part of layers.h: include layers.h"
#endif

namespace lumos {

class NormLayers : public CoreLayers {
public:
    using CoreLayers::CoreLayers;

    // nn.Linear(in.channels, cout) on every pixel (token): a 1×1 conv whose
    // weight is PyTorch's [cout][cin], so it shares the conv's adjoint and
    // schedules.
    Map linear(const Map &in, const std::string &name, int cout, bool bias = true) {
        int64_t w0 = take(name + ".weight", {cout, in.channels});
        int64_t b0 = bias ? take(name + ".bias", {cout}) : -1;
        std::pair<Func, Func> wb = conv_params(name, w0, b0, in.channels, 1);
        if (no_bias_) {
            wb.second = Func{"no_bias_" + clean(name)};
            wb.second(co) = 0.f;
        }
        return conv_over(in, name, wb.first, wb.second, cout, 1, 1, 1, Padding::Torch, w0, b0);
    }

    // nn.GELU(): x·Φ(x), Φ the normal CDF through erfc (no tanh
    // approximation).
    Map gelu(const Map &m) {
        return pointwise(m, "gelu", [](Expr v) { return v * normal_cdf(v); },
                         [](Expr v, Expr g) {
                             // Φ(x) + x·φ(x)
                             const float inv_sqrt_2pi = 0.3989422804014327f;
                             return g * (normal_cdf(v) + v * inv_sqrt_2pi * Halide::exp(-0.5f * v * v));
                         });
    }

    // nn.LayerNorm(C) of every token over its channels, affine.
    Map layer_norm(const Map &m, const std::string &name, float eps = 1e-5f) {
        const int C = m.channels;
        const std::string t = clean(name);
        const int64_t w0 = take(name + ".weight", {C}), b0 = take(name + ".bias", {C});
        Func gamma = param_vector(w0, t + "_gamma"), beta = param_vector(b0, t + "_beta");
        Func mean{t + "_mean"}, var{t + "_var"}, rstd{t + "_rstd"}, xhat{t + "_xhat"}, f{t};
        RDom r(0, C);
        mean(x, y) = 0.f;
        mean(x, y) += m.f(r, x, y);
        Func mu{t + "_mu"};
        mu(x, y) = mean(x, y) / float(C);
        var(x, y) = 0.f;
        Expr d = m.f(r, x, y) - mu(x, y);
        var(x, y) += d * d;
        rstd(x, y) = 1.f / Halide::sqrt(var(x, y) / float(C) + eps);
        xhat(c, x, y) = (m.f(c, x, y) - mu(x, y)) * rstd(x, y);
        f(c, x, y) = xhat(c, x, y) * gamma(c) + beta(c);
        stages_.insert(stages_.end(), {mean, mu, var, rstd, xhat});
        Map out{f, C, m.width, m.height};
        return record(out, {m}, [=](Func g) {
            // dx = rstd·(ĝ − mean_c ĝ − x̂·mean_c(ĝ·x̂)), ĝ = g·γ
            Func gh{t + "_grad_hat"}, a{t + "_grad_mean"}, b{t + "_grad_proj"}, gi{t + "_grad"};
            gh(c, x, y) = g(c, x, y) * gamma(c);
            RDom rc(0, C);
            a(x, y) = 0.f;
            a(x, y) += gh(rc, x, y);
            b(x, y) = 0.f;
            b(x, y) += gh(rc, x, y) * xhat(rc, x, y);
            gi(c, x, y) = rstd(x, y) * (gh(c, x, y) - (a(x, y) + xhat(c, x, y) * b(x, y)) / float(C));
            stages_.insert(stages_.end(), {gh, a, b});
            if (want_params_) affine_grads(g, xhat, out, w0, b0, t);
            return std::vector<Func>{gi};
        });
    }

    // nn.GroupNorm(groups, C): statistics over each group's channels and
    // all pixels, then a per-channel affine.
    Map group_norm(const Map &m, const std::string &name, int groups, float eps = 1e-5f) {
        return norm_over_groups(m, name, groups, eps, true);
    }

    // nn.InstanceNorm2d(C, affine): each channel over its own pixels (no
    // running statistics: the same in training and inference).
    Map instance_norm(const Map &m, const std::string &name, bool affine = true, float eps = 1e-5f) {
        return norm_over_groups(m, name, m.channels, eps, affine);
    }

protected:
    // Φ(x) = erfc(−x/√2)/2, erfc by its Chebyshev fit (fractional error
    // under 1.2e-7 everywhere, so the far negative tail keeps its digits).
    static Expr normal_cdf(Expr v) {
        Expr z = -v * 0.7071067811865476f, a = Halide::abs(z);
        Expr t = 1.f / (1.f + 0.5f * a);
        const float k[10] = {-1.26551223f, 1.00002368f, 0.37409196f, 0.09678418f, -0.18628806f,
                             0.27886807f, -1.13520398f, 1.48851587f, -0.82215223f, 0.17087277f};
        Expr poly = k[9];
        for (int i = 8; i >= 0; i--) poly = k[i] + t * poly;
        Expr erfc_a = t * Halide::exp(-a * a + poly);
        return 0.5f * select(z >= 0.f, erfc_a, 2.f - erfc_a);
    }

    // A parameter vector read from the flat buffer.
    Func param_vector(int64_t at, const std::string &tag) {
        Func p{tag};
        p(c) = flat_(Expr((int)at) + c);
        weights_.push_back(p);
        return p;
    }

    // dL/dγ(c) = Σ_xy g·x̂, dL/dβ(c) = Σ_xy g, into the flat gradient.
    void affine_grads(Func g, Func xhat, const Map &out, int64_t w0, int64_t b0,
                      const std::string &t) {
        Func gg{t + "_grad_gamma"}, gb{t + "_grad_beta"};
        RDom p(0, out.width, 0, out.height);
        gg(c) = 0.f;
        gg(c) += g(c, p.x, p.y) * xhat(c, p.x, p.y);
        gb(c) = 0.f;
        gb(c) += g(c, p.x, p.y);
        reductions_.insert(reductions_.end(), {gg, gb});
        param_grads_.push_back({w0, (int64_t)out.channels, gg});
        param_grads_.push_back({b0, (int64_t)out.channels, gb});
    }

    Map norm_over_groups(const Map &m, const std::string &name, int groups, float eps, bool affine) {
        const int C = m.channels, cg = C / groups;
        if (C % groups != 0) throw std::runtime_error(name + ": channels not divisible by groups");
        const std::string t = clean(name);
        Func gamma, beta;
        int64_t w0 = -1, b0 = -1;
        if (affine) {
            w0 = take(name + ".weight", {C});
            b0 = take(name + ".bias", {C});
            gamma = param_vector(w0, t + "_gamma");
            beta = param_vector(b0, t + "_beta");
        }
        Var k{"k"};
        Func sum{t + "_sum"}, mu{t + "_mu"}, var{t + "_var"}, rstd{t + "_rstd"}, xhat{t + "_xhat"}, f{t};
        RDom r(0, cg, 0, m.width, 0, m.height);
        Expr count = Halide::cast<float>(cg * m.width * m.height);
        sum(k) = 0.f;
        sum(k) += m.f(k * cg + r.x, r.y, r.z);
        mu(k) = sum(k) / count;
        var(k) = 0.f;
        Expr d = m.f(k * cg + r.x, r.y, r.z) - mu(k);
        var(k) += d * d;
        rstd(k) = 1.f / Halide::sqrt(var(k) / count + eps);
        xhat(c, x, y) = (m.f(c, x, y) - mu(c / cg)) * rstd(c / cg);
        f(c, x, y) = affine ? xhat(c, x, y) * gamma(c) + beta(c) : xhat(c, x, y);
        reductions_.insert(reductions_.end(), {sum, mu, var, rstd});
        stages_.push_back(xhat);
        Map out{f, C, m.width, m.height};
        return record(out, {m}, [=](Func g) {
            Func gh{t + "_grad_hat"}, a{t + "_grad_mean"}, b{t + "_grad_proj"}, gi{t + "_grad"};
            gh(c, x, y) = affine ? g(c, x, y) * gamma(c) : g(c, x, y);
            a(k) = 0.f;
            a(k) += gh(k * cg + r.x, r.y, r.z);
            b(k) = 0.f;
            b(k) += gh(k * cg + r.x, r.y, r.z) * xhat(k * cg + r.x, r.y, r.z);
            Expr grp = c / cg;
            gi(c, x, y) = rstd(grp) * (gh(c, x, y) - (a(grp) + xhat(c, x, y) * b(grp)) / count);
            stages_.push_back(gh);
            reductions_.insert(reductions_.end(), {a, b});
            if (want_params_ && affine) affine_grads(g, xhat, out, w0, b0, t);
            return std::vector<Func>{gi};
        });
    }
};

}  // namespace lumos
