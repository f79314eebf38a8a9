// layers_resample.h — layers that change a map's size: transposed conv,
// nearest and bilinear resizes by any factor or to any size, average
// pooling of any window, and global mean / max as a two-level reduction.
// Part of layers.h (include that). PyTorch semantics throughout.
#pragma once

#ifndef LUMOS_LAYERS_CORE
#error "layers_resample.h is part of layers.h: include layers.h"
#endif

namespace lumos {

class ResampleLayers : public NormLayers {
public:
    using NormLayers::NormLayers;

    // nn.ConvTranspose2d(in.channels, cout, k, stride, padding,
    // output_padding): out = (n − 1)·s − 2p + k + output_padding; weight
    // [cin][cout][k][k]. Written as a gather: output pixel X takes the taps
    // kx ≡ X + p (mod s) from input (X + p − kx)/s.
    Map conv_transpose2d(const Map &in, const std::string &name, int cout, int k, int stride = 1,
                         int padding = 0, int output_padding = 0, bool bias = true) {
        const int cin = in.channels, s = stride, p = padding, taps = (k + s - 1) / s;
        const std::string t = clean(name);
        const int64_t w0 = take(name + ".weight", {cin, cout, k, k});
        const int64_t b0 = bias ? take(name + ".bias", {cout}) : -1;
        auto w_at = [=](Expr ci_, Expr co_, Expr kx_, Expr ky_) {
            return flat_(Expr((int)w0) + ((ci_ * cout + co_) * k + ky_) * k + kx_);
        };
        // (co, kx, ky, ci), zero past k: the forward's vector load per tap
        Func wt{"wt_" + t}, b{"b_" + t};
        wt(co, kx, ky, ci) = select(kx < k && ky < k,
                                    w_at(ci, co, min(kx, k - 1), min(ky, k - 1)), 0.f);
        if (b0 >= 0 && !no_bias_) b(co) = flat_(Expr((int)b0) + co);
        else b(co) = 0.f;
        weights_.insert(weights_.end(), {wt, b});
        Func padded = zero_outside(in);
        stages_.push_back(padded);
        Func f{t};
        RDom r(0, cin, 0, taps, 0, taps);
        Expr tx = (x + p) % s + s * r.y, ty = (y + p) % s + s * r.z;
        f(c, x, y) = b(c);
        f(c, x, y) += wt(c, tx, ty, r.x) * padded(r.x, (x + p - tx) / s, (y + p - ty) / s);
        Map out{f, cout, (in.width - 1) * s - 2 * p + k + output_padding,
                (in.height - 1) * s - 2 * p + k + output_padding};
        sums_.push_back(out);
        return record(out, {in}, [=](Func g) {
            Func gz{t + "_grad_out"};
            gz(c, x, y) = select(inside(out, x, y), read(g, out, c, x, y), 0.f);
            stages_.push_back(gz);
            // dL/d(in)(ci, x) = Σ_{co, kx} w(ci, co, kx)·g(co, x·s − p + kx): a strided conv
            Func wi{"wi_" + t}, gi{t + "_grad"};
            wi(ci, kx, ky, co) = w_at(ci, co, kx, ky);
            weights_.push_back(wi);
            RDom q(0, cout, 0, k, 0, k);
            gi(c, x, y) = 0.f;
            gi(c, x, y) += wi(c, q.y, q.z, q.x) * gz(q.x, x * s - p + q.y, y * s - p + q.z);
            sums_.push_back({gi, cin, in.width, in.height});
            if (want_params_) {
                // dL/dw(ci, co, kx, ky) = Σ_x in(ci, x)·g(co, x·s − p + kx)
                Func gw{t + "_grad_w"}, gb{t + "_grad_b"}, flat_w{t + "_grad_w_flat"};
                RDom px(0, in.width, 0, in.height);
                gw(co, kx, ky, ci) = 0.f;
                gw(co, kx, ky, ci) += padded(ci, px.x, px.y) * gz(co, px.x * s - p + kx, px.y * s - p + ky);
                weight_grads_.push_back({gw});
                Var j{"j"};
                flat_w(j) = gw((j / (k * k)) % cout, j % k, (j / k) % k, j / (cout * k * k));
                param_grads_.push_back({w0, (int64_t)cin * cout * k * k, flat_w});
                if (b0 >= 0) {
                    RDom po(0, out.width, 0, out.height);
                    gb(co) = 0.f;
                    gb(co) += gz(co, po.x, po.y);
                    reductions_.push_back(gb);
                    param_grads_.push_back({b0, (int64_t)cout, gb});
                }
            }
            return std::vector<Func>{gi};
        });
    }

    // F.interpolate(mode='nearest'): to (ow, oh), source floor(dst·in/out);
    // _by a scale factor, PyTorch's scale_factor semantics: size
    // floor(in·scale), source floor(dst / scale).
    Map resize_nearest(const Map &m, Expr ow, Expr oh) {
        return nearest(m, ow, oh, ratio(m.width, ow), ratio(m.height, oh));
    }
    Map resize_nearest_by(const Map &m, float scale_x, float scale_y) {
        return nearest(m, scaled(m.width, scale_x), scaled(m.height, scale_y),
                       float(1.0 / scale_x), float(1.0 / scale_y));
    }

    // F.interpolate(mode='bilinear', align_corners=False, scale_factor=…):
    // size floor(in·scale), source (dst + 0.5)/scale − 0.5 (to a size:
    // resize_bilinear).
    Map resize_bilinear_by(const Map &m, float scale_x, float scale_y) {
        Expr ow = scaled(m.width, scale_x), oh = scaled(m.height, scale_y);
        Expr sx = float(1.0 / scale_x), sy = float(1.0 / scale_y);
        Expr x0, x1, tx, y0, y1, ty;
        bilinear_axis(x, m.width, sx, x0, x1, tx);
        bilinear_axis(y, m.height, sy, y0, y1, ty);
        Map out = bilinear_blend(m, "resize_scaled", ow, oh, x0, x1, tx, y0, y1, ty);
        return record(out, {m}, [=](Func g) {
            // Per source row, then column: the destinations whose taps reach
            // it, ⌈2·scale⌉ + 5 candidates around it, with their weights.
            auto weight = [=](Expr d, Expr src, Expr in, Expr step) {
                Expr i0, i1, t;
                bilinear_axis(d, in, step, i0, i1, t);
                return select(i0 == src, 1.f - t, 0.f) + select(i1 == src, t, 0.f);
            };
            Func gi = separable_adjoint(m, out, g, "resize_scaled", [=](Expr d, Expr src, bool along_y) {
                return along_y ? weight(d, src, m.height, sy) : weight(d, src, m.width, sx);
            }, scale_x, scale_y, 0.5f);
            return std::vector<Func>{gi};
        });
    }

    // nn.AvgPool2d(k, stride, padding) (ceil_mode False, count_include_pad:
    // every window divided by k²).
    Map avg_pool(const Map &m, int k, int stride = 0, int padding = 0) {
        const int s = stride > 0 ? stride : k, p = padding, taps = (k + s - 1) / s;
        const float inv = 1.f / float(k * k);
        Func padded = zero_outside(m);
        stages_.push_back(padded);
        Func f{"avg_pool"};
        RDom r(0, k, 0, k);
        f(c, x, y) = 0.f;
        f(c, x, y) += padded(c, x * s - p + r.x, y * s - p + r.y) * inv;
        Map out{f, m.channels, (m.width + 2 * p - k) / s + 1, (m.height + 2 * p - k) / s + 1};
        sums_.push_back(out);
        return record(out, {m}, [=](Func g) {
            // Each input pixel gathers the windows that hold it: taps
            // kx ≡ x + p (mod s), window (x + p − kx)/s.
            Func gi{"avg_pool_grad"};
            RDom q(0, taps, 0, taps);
            Expr tx = (x + p) % s + s * q.x, ty = (y + p) % s + s * q.y;
            Expr ox = (x + p - tx) / s, oy = (y + p - ty) / s;
            gi(c, x, y) = 0.f;
            gi(c, x, y) += select(tx < k && ty < k && inside(out, ox, oy), read(g, out, c, ox, oy) * inv, 0.f);
            sums_.push_back({gi, m.channels, m.width, m.height});
            return std::vector<Func>{gi};
        });
    }

    // Global mean and maximum per channel as a reduction stage of its own,
    // 1×1 maps: each row reduced in parallel, then the rows. The maximum's
    // gradient goes to its first position in reading order (PyTorch's
    // AdaptiveMaxPool2d(1)).
    Map global_mean(const Map &m) {
        Func rows{"global_mean_rows"}, f{"global_mean"};
        RDom rx(0, m.width), ry(0, m.height);
        rows(c, y) = 0.f;
        rows(c, y) += m.f(c, rx, y);
        Func total{"global_mean_total"};
        total(c) = 0.f;
        total(c) += rows(c, ry);
        Expr area = Halide::cast<float>(m.width * m.height);
        f(c, x, y) = total(c) / area;
        stages_.push_back(rows);
        reductions_.push_back(total);
        Map out{f, m.channels, 1, 1};
        return record(out, {m}, [=](Func g) {
            Func gi{"global_mean_grad"};
            gi(c, x, y) = g(c, 0, 0) / area;
            return std::vector<Func>{gi};
        });
    }
    Map global_max(const Map &m) {
        Func rows{"global_max_rows"}, best{"global_max_best"}, f{"global_max"};
        RDom rx(0, m.width), ry(0, m.height);
        // (value, x) of each row's first maximum, then (value, index) of the
        // first row's whose maximum is largest
        rows(c, y) = Tuple(Halide::Float(32).min(), -1);
        Expr v = m.f(c, rx, y), better = v > rows(c, y)[0];
        rows(c, y) = Tuple(select(better, v, rows(c, y)[0]), select(better, rx, rows(c, y)[1]));
        best(c) = Tuple(Halide::Float(32).min(), -1);
        Expr rv = rows(c, ry)[0], rbetter = rv > best(c)[0];
        best(c) = Tuple(select(rbetter, rv, best(c)[0]),
                        select(rbetter, rows(c, ry)[1] + ry * m.width, best(c)[1]));
        f(c, x, y) = best(c)[0];
        stages_.push_back(rows);
        reductions_.push_back(best);
        Map out{f, m.channels, 1, 1};
        return record(out, {m}, [=](Func g) {
            Func gi{"global_max_grad"};
            gi(c, x, y) = select(x + y * m.width == best(c)[1], g(c, 0, 0), 0.f);
            return std::vector<Func>{gi};
        });
    }

protected:
    static Expr ratio(Expr in, Expr out) { return Halide::cast<float>(in) / Halide::cast<float>(out); }
    // floor(n·scale) as PyTorch sizes a scale_factor resize (in double)
    static Expr scaled(Expr n, float scale) {
        return Halide::cast<int>(
            Halide::floor(Halide::cast<double>(n) * Halide::Internal::make_const(Halide::Float(64), (double)scale)));
    }

    // Bilinear source taps along one axis at scale `step` (in per out):
    // PyTorch's max((dst + 0.5)·step − 0.5, 0).
    static void bilinear_axis(Expr dst, Expr in, Expr step, Expr &i0, Expr &i1, Expr &t) {
        Expr src = max((Halide::cast<float>(dst) + 0.5f) * step - 0.5f, 0.f);
        i0 = min(Halide::cast<int>(src), in - 1);
        i1 = min(i0 + 1, in - 1);
        t = src - Halide::cast<float>(i0);
    }

    // Nearest source along one axis: min(floor(dst·step), in − 1).
    static Expr nearest_src(Expr dst, Expr in, Expr step) {
        return min(Halide::cast<int>(Halide::floor(Halide::cast<float>(dst) * step)), in - 1);
    }

    Map nearest(const Map &m, Expr ow, Expr oh, Expr sx, Expr sy) {
        Func f{"resize_nearest"};
        f(c, x, y) = m.f(c, nearest_src(x, m.width, sx), nearest_src(y, m.height, sy));
        resamples_.push_back(f);
        Map out{f, m.channels, ow, oh};
        return record(out, {m}, [=](Func g) {
            Func gi = separable_adjoint(m, out, g, "resize_nearest", [=](Expr d, Expr src, bool along_y) {
                Expr i = along_y ? nearest_src(d, m.height, sy) : nearest_src(d, m.width, sx);
                return select(i == src, 1.f, 0.f);
            }, 1.f / sx, 1.f / sy, 0.f);
            return std::vector<Func>{gi};
        });
    }

    // The adjoint of a separable resampling, as gathers: per source row,
    // then column, Σ over the destinations d near src·scale of
    // weight(d, src)·g. scale_*: out/in per axis; `reach`: the taps'
    // extent before the source (bilinear 0.5, nearest 0).
    template <typename W>
    Func separable_adjoint(const Map &m, const Map &out, Func g, const std::string &tag, W weight,
                           Expr scale_x, Expr scale_y, float reach) {
        Func gz{tag + "_grad_in"}, rows{tag + "_grad_rows"}, gi{tag + "_grad"};
        gz(c, x, y) = read(g, out, c, x, y);
        auto gather = [&](Func dst, Func src, Expr s, Expr out_n, bool along_y) {
            Expr sc = Halide::cast<float>(along_y ? scale_y : scale_x);
            Expr lo = Halide::cast<int>(Halide::floor((Halide::cast<float>(s) - reach) * sc)) - 2;
            RDom r(0, Halide::cast<int>(Halide::ceil(2.f * sc)) + 5);
            Expr d = lo + r, dc = clamp(d, 0, out_n - 1);
            Expr v = along_y ? src(c, x, dc) : src(c, dc, y);
            dst(c, x, y) = 0.f;
            dst(c, x, y) += select(d >= 0 && d < out_n, weight(d, s, along_y) * v, 0.f);
            gathers_.push_back({dst, m.channels});
        };
        gather(rows, gz, y, out.height, true);  // (c, dst x, src y)
        gather(gi, rows, x, out.width, false);  // (c, src x, src y)
        return gi;
    }
};

}  // namespace lumos
