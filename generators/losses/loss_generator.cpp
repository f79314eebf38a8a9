// loss_generator.cpp — the pieces of the feature-space losses of unpaired
// ISP training, each with its gradient from the layers.h tape; chained by
// stages/train_losses.c. Images are (c, x, y), 3 channels: the ISP's float
// output (sRGB-encoded, about [0, 1]); feature maps (c, x, y) likewise.
//
//   preprocess (kind=lightness|vgg_lightness|blur, mode=fwd|bwd):
//     lightness = CIE L* of the image's linear luminance, mapped to
//     [-1, 1] and repeated to 3 channels (content and texture: the method's
//     luminance and grayscale inputs); vgg_lightness = L*/100 repeated to 3
//     channels and normalised by ImageNet's mean and std (torchvision's
//     input convention, for VGG-19); blur = a 21×21 Gaussian (σ 3, zeros
//     outside) mapped to [-1, 1] (colour). bwd: dL/d(image) from
//     dL/d(preprocessed).
//
//   mbv2_block (block=0..11, mode=fwd|bwd): MobileNetV2's features[block]
//     (features.h); vgg19_stage (stage=0..4, mode=fwd|bwd): VGG-19's stage
//     (features.h). fwd: the piece's output; bwd: dL/d(input) from the input
//     and dL/d(output), the piece's forward recomputed. A network is one
//     pipeline per piece: whole, with its backward, it is ~1,000 stages,
//     which Halide 14 takes over 20 minutes to lower.
//
//   disc (kind=texture_early|texture_deep|colour, mode=g|p|r): a
//     discriminator's mean score over its input feature map and dD/d(input);
//     mode p also D's state there (each LeakyReLU's input and its gradient);
//     mode r, from that state, α ∇θD + β ∇θ(∇D · dir) (the D step's
//     gradient of one image, R1/R2's gradient of a gradient included).
//
// Schedule: every stage at root, parallel over rows (crops of ~128²).

#include "Halide.h"
#include <functional>
#include <map>
#include <vector>

#include "features.h"

namespace {

using namespace Halide;
using lumos::Map;
using lumos::NetBuilder;

// sRGB decoding (extended linearly below 0) and its derivative.
Expr srgb_to_linear(Expr v) {
    return select(v <= 0.04045f, v / 12.92f, pow((v + 0.055f) / 1.055f, 2.4f));
}
Expr srgb_to_linear_slope(Expr v) {
    return select(v <= 0.04045f, 1.f / 12.92f, (2.4f / 1.055f) * pow((v + 0.055f) / 1.055f, 1.4f));
}

const float kLuma[3] = {0.2126f, 0.7152f, 0.0722f};   // linear sRGB → Y

// v[c] of 3 channels; a plain constant when they are equal: Halide turns a
// division by a constant into a multiplication, so MobileNetV2's L*/50 stays
// bit for bit what it was.
Expr per_channel(Var c, const float v[3]) {
    return v[0] == v[1] && v[1] == v[2] ? Expr(v[0]) : mux(c, {v[0], v[1], v[2]});
}

// An image's CIE L*, repeated to 3 channels as L*/divisor[c] + offset[c]
// (each feature network's input range), on b's tape.
Map lightness(NetBuilder &b, const Map &img, const float divisor[3], const float offset[3]) {
    Var c = b.c, x = b.x, y = b.y;
    const float d3 = 216.f / 24389.f, k = 1.f / (3.f * (6.f / 29.f) * (6.f / 29.f));
    const float s0 = 116.f / divisor[0], s1 = 116.f / divisor[1], s2 = 116.f / divisor[2];
    Func Y{"luminance"}, f{"lightness"};
    Y(x, y) = kLuma[0] * srgb_to_linear(img.f(0, x, y)) + kLuma[1] * srgb_to_linear(img.f(1, x, y)) +
              kLuma[2] * srgb_to_linear(img.f(2, x, y));
    Expr yv = Y(x, y);
    Expr fy = select(yv > d3, pow(max(yv, d3), 1.f / 3.f), yv * k + 4.f / 29.f);
    f(c, x, y) = (116.f * fy - 16.f) / per_channel(c, divisor) + per_channel(c, offset);
    Func img_f = img.f;
    return b.custom({f, 3, img.width, img.height}, {img}, [=](Func g) {
        Func gi{"lightness_grad"};
        Expr yv = Y(x, y);
        Expr dfy = select(yv > d3, (1.f / 3.f) * pow(max(yv, d3), -2.f / 3.f), k);
        Expr common = (g(0, x, y) * s0 + g(1, x, y) * s1 + g(2, x, y) * s2) * dfy;
        gi(c, x, y) = common * mux(c, {kLuma[0], kLuma[1], kLuma[2]}) * srgb_to_linear_slope(img_f(c, x, y));
        return std::vector<Func>{gi};
    });
}

// L*/50 − 1 (MobileNetV2's [-1, 1]).
Map lightness_mobilenet(NetBuilder &b, const Map &img) {
    const float divisor[3] = {50, 50, 50}, offset[3] = {-1, -1, -1};
    return lightness(b, img, divisor, offset);
}

// (L*/100 − mean[c]) / std[c], ImageNet's mean and std: torchvision's
// input convention for an image in [0, 1] (VGG-19).
Map lightness_vgg(NetBuilder &b, const Map &img) {
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    float divisor[3], offset[3];
    for (int i = 0; i < 3; i++) {
        divisor[i] = 100.f * std[i];
        offset[i] = -mean[i] / std[i];
    }
    return lightness(b, img, divisor, offset);
}

// A separable blur of src (zero outside m's domain) by a symmetric kernel(i),
// i in [-radius, radius].
Func blur_over(Func src, const Map &m, Func kernel, int radius, const std::string &tag) {
    Var c{"c"}, x{"x"}, y{"y"};
    RDom r(-radius, 2 * radius + 1);
    Func zero{tag + "_zero"}, rows{tag + "_rows"}, cols{tag};
    zero(c, x, y) = select(x >= 0 && x < m.width && y >= 0 && y < m.height,
                           src(c, clamp(x, 0, m.width - 1), clamp(y, 0, m.height - 1)), 0.f);
    rows(c, x, y) = 0.f;
    rows(c, x, y) += kernel(r) * zero(c, x + r, y);
    cols(c, x, y) = 0.f;
    cols(c, x, y) += kernel(r) * rows(c, x, y + r);
    for (Func f : {rows, cols}) {
        f.compute_root().parallel(y);
        f.update().parallel(y);
    }
    return cols;
}

// 2·blur(img) − 1: a 21×21 Gaussian, σ 3, zeros outside the image. The
// kernel is symmetric, so the adjoint is the same blur of the gradient.
Map blurred(NetBuilder &b, const Map &img) {
    Var c = b.c, x = b.x, y = b.y;
    const int radius = 10;
    float taps[2 * radius + 1], sum = 0;
    for (int i = -radius; i <= radius; i++) sum += taps[i + radius] = std::exp(-i * i / (2.f * 9.f));
    Func kernel{"gauss"};
    Var i{"i"};
    Expr kv = 0.f;
    for (int t = 0; t <= 2 * radius; t++) kv = select(i == t - radius, taps[t] / sum, kv);
    kernel(i) = kv;
    kernel.compute_root();
    Func blur_img = blur_over(img.f, img, kernel, radius, "blur");
    Func f{"blurred"};
    f(c, x, y) = 2.f * blur_img(c, x, y) - 1.f;
    return b.custom({f, 3, img.width, img.height}, {img}, [=](Func g) {
        Func g2{"blur_grad_in"};
        g2(c, x, y) = 2.f * g(c, x, y);
        return std::vector<Func>{blur_over(g2, img, kernel, radius, "blur_grad")};
    });
}

// A discriminator's layers (isp_nets.def "disc_*"), in order: a conv each,
// every one but the last followed by LeakyReLU(kDiscSlope).
constexpr float kDiscSlope = 0.2f;
struct DiscLayer {
    const char *name;
    int cout, k, stride;
};
std::vector<DiscLayer> disc_layers(bool colour) {
    if (colour) return {{"fc1", 512, 1, 1}, {"fc2", 512, 1, 1}, {"fc3", 1, 1, 1}};
    return {{"conv1", 48, 5, 2}, {"conv2", 128, 3, 2}, {"conv3", 192, 3, 1}, {"conv4", 192, 3, 1},
            {"conv5", 128, 3, 2}, {"fc1", 1024, 1, 1},  {"fc2", 1, 1, 1}};
}

// A discriminator on feature map x: its per-position score map (1
// channel). Each LeakyReLU's input is appended to `pre` when given.
Map discriminator(NetBuilder &b, Map x, bool colour, std::vector<Map> *pre = nullptr) {
    const std::vector<DiscLayer> layers = disc_layers(colour);
    for (size_t i = 0; i < layers.size(); i++) {
        const DiscLayer &l = layers[i];
        x = b.conv2d(x, l.name, l.cout, l.k, true, l.stride);
        if (i + 1 == layers.size()) break;
        if (pre) pre->push_back(x);
        x = b.leaky_relu(x, kDiscSlope);
    }
    return x;
}

enum class Mode { Fwd, Bwd };
const std::map<std::string, Mode> kModes = {{"fwd", Mode::Fwd}, {"bwd", Mode::Bwd}};

// An image or feature Input as a Func, computed once.
Func buffer_func(Func in, const std::string &name) {
    Var c{"c"}, x{"x"}, y{"y"};
    Func f{name};
    f(c, x, y) = in(c, x, y);
    f.compute_root();
    return f;
}

enum class Pre { Lightness, VggLightness, Blur };

class Preprocess : public Generator<Preprocess> {
public:
    GeneratorParam<Pre> kind{"kind", Pre::Lightness,
                             {{"lightness", Pre::Lightness},
                              {"vgg_lightness", Pre::VggLightness},
                              {"blur", Pre::Blur}}};
    GeneratorParam<Mode> mode{"mode", Mode::Fwd, kModes};

    Input<Buffer<float>> image{"image", 3};
    Input<Buffer<float>> grad{"grad", 3};   // bwd: dL/d(preprocessed); fwd: unused
    Output<Buffer<float>> result{"result", 3};

    void generate() {
        NetBuilder b;
        Var c = b.c, x = b.x, y = b.y;
        Expr W = image.dim(1).extent(), H = image.dim(2).extent();
        Map img = b.input({buffer_func(image, "image_in"), 3, W, H});
        Map pre = kind == Pre::Lightness      ? lightness_mobilenet(b, img)
                  : kind == Pre::VggLightness ? lightness_vgg(b, img)
                                              : blurred(b, img);
        if (mode == Mode::Fwd) {
            result(c, x, y) = pre.f(c, x, y);
        } else {
            NetBuilder::Gradients g = b.backward(pre, buffer_func(grad, "grad_in"), false);
            result(c, x, y) = g.of(img).f(c, x, y);
        }
        for (auto *in : {&image, &grad}) in->dim(0).set_bounds(0, 3).set_stride(1);
        result.dim(0).set_bounds(0, 3).set_stride(1);
        result.parallel(y);
        b.schedule_at_root();
    }
};

// One piece of a frozen feature network (`net`, from tensor `first` on,
// cin → cout channels, built by `piece`) as a pipeline: fwd its output,
// bwd dL/d(in) from dL/d(out), the piece's forward recomputed.
template <typename Piece>
struct FeaturePiece : public Generator<Piece> {
    GeneratorParam<Mode> mode{"mode", Mode::Fwd, kModes};

    // (Generator's Input and Output aliases are not visible in a template.)
    GeneratorInput<Buffer<float>> in{"in", 3};             // (cin, w, h)
    GeneratorInput<Buffer<float>> features{"features", 1}; // the whole network
    GeneratorInput<Buffer<float>> grad{"grad", 3};         // bwd: dL/d(output); fwd: unused
    GeneratorOutput<Buffer<float>> result{"result", 3};    // fwd: output; bwd: dL/d(in)

    void build(const std::string &net, const std::string &first, int cin, int cout,
               std::function<Map(NetBuilder &, Map)> piece) {
        NetBuilder b(features, net);
        b.seek(first);
        Var c = b.c, x = b.x, y = b.y;
        Map x0 = b.input({buffer_func(in, "in_f"), cin, in.dim(1).extent(), in.dim(2).extent()});
        Map out = piece(b, x0);
        if (mode == Mode::Fwd) {
            result(c, x, y) = out.f(c, x, y);
            result.dim(0).set_bounds(0, cout).set_stride(1);
        } else {
            NetBuilder::Gradients g = b.backward(out, buffer_func(grad, "grad_f"), false);
            result(c, x, y) = g.of(x0).f(c, x, y);
            result.dim(0).set_bounds(0, cin).set_stride(1);
        }
        in.dim(0).set_bounds(0, cin).set_stride(1);
        grad.dim(0).set_bounds(0, cout).set_stride(1);
        features.dim(0).set_bounds(0, (int)NetBuilder::flat_size(net));
        result.parallel(y);
        b.schedule_at_root();
    }
};

class Mbv2Block : public FeaturePiece<Mbv2Block> {
public:
    GeneratorParam<int> block{"block", 0};

    void generate() {
        const int i = block;
        const lumos::MobileNetBlock s = lumos::mobilenet_block_shape(i);
        build("mobilenet", lumos::mobilenet_block_first_tensor(i), s.cin, s.cout,
              [=](NetBuilder &b, Map x) { return lumos::mobilenet_block(b, x, i); });
    }
};

class Vgg19Stage : public FeaturePiece<Vgg19Stage> {
public:
    GeneratorParam<int> stage{"stage", 0};

    void generate() {
        const int s = stage;
        build("vgg19", lumos::vgg_stage_first_tensor(s), lumos::vgg_stage_cin(s),
              lumos::vgg_stage_width(s), [=](NetBuilder &b, Map x) { return lumos::vgg_stage(b, x, s); });
    }
};

enum class DiscKind { TextureEarly, TextureDeep, Colour };

// A discriminator's LeakyReLU inputs (its "gates") packed into one flat
// buffer, layer after layer, each (c, x, y) with c fastest, then their
// gradients ("deltas") the same way: D's state, what mode p writes and mode
// r reads (stages/train_losses.c sizes it the same way).
struct GateLayout {
    std::vector<Expr> offset;  // of each layer
    Expr total;
};

GateLayout gate_layout(const std::vector<Map> &pre) {
    GateLayout l;
    Expr at = 0;
    for (const Map &m : pre) {
        l.offset.push_back(at);
        at = at + m.channels * m.width * m.height;
    }
    l.total = at;
    return l;
}

class Disc : public Generator<Disc> {
public:
    GeneratorParam<DiscKind> kind{"kind", DiscKind::TextureEarly,
                                  {{"texture_early", DiscKind::TextureEarly},
                                   {"texture_deep", DiscKind::TextureDeep},
                                   {"colour", DiscKind::Colour}}};
    // g: score and dD/d(in) (the generator's step);
    // p: also D's state at `in` (state_out): each LeakyReLU's input (its
    //    gate) and dD/d(that input) (its delta), layer after layer;
    // r: grad_params = α ∇θD(in) + β ∇θ(∇ₓD(in) · dir), from mode p's
    //    state at `in`: one image's share of the D step, R1/R2 included
    //    (train/adversarial.h). D is piecewise linear: at fixed gates, each
    //    conv's weight gradient of the second term is its delta times the
    //    tangent map (dir carried forward through D without biases, the
    //    gates' slopes), so both terms are one weight gradient of the
    //    deltas against α·activation + β·tangent, and no backward pass.
    GeneratorParam<std::string> mode{"mode", "g"};

    Input<Buffer<float>> in{"in", 3};              // the feature map (c, x, y)
    Input<Buffer<float>> dir{"dir", 3};            // r: a direction shaped as in; else unused
    Input<Buffer<float>> state_in{"state_in", 1};  // r: mode p's state_out at in; else unused
    Input<Buffer<float>> disc{"disc", 1};          // this discriminator's weights
    Input<float> alpha{"alpha"}, beta{"beta"};     // r: see above; else unused
    Output<Buffer<float>> score{"score", 1};       // [1] the mean score; r: 0
    Output<Buffer<float>> grad_in{"grad_in", 3};   // dD/d(in); r: (channels, 1, 1) zero
    Output<Buffer<float>> grad_params{"grad_params", 3};  // r: as (n, 1, 1); g, p: (1, 1, 1) zero
    Output<Buffer<float>> state_out{"state_out", 1};      // p: gates, then deltas; g, r: [1] zero

    void generate() {
        const std::string net = net_name();
        const int channels = kind == DiscKind::TextureEarly ? 16 : kind == DiscKind::TextureDeep ? 64 : 96;
        const std::string m = mode;
        if (m != "g" && m != "p" && m != "r") throw std::runtime_error("disc: mode is g, p or r");
        const bool colour = kind == DiscKind::Colour, params = m == "r";
        NetBuilder b(disc, net);
        Var c = b.c, x = b.x, y = b.y, i{"i"};
        Expr W = in.dim(1).extent(), H = in.dim(2).extent();
        Func in_f = buffer_func(in, "in_f");
        state_out(i) = 0.f;
        if (params) {
            score(i) = 0.f;
            grad_in(c, x, y) = 0.f;
            grad_params(c, x, y) = gradient_from_state(b, in_f, W, H, channels, colour)(c);
        } else {
            grad_params(c, x, y) = 0.f;
            Map x0 = b.input({in_f, channels, W, H});
            std::vector<Map> pre;
            Map mean = b.global_avg_pool(discriminator(b, x0, colour, &pre));
            b.finish();
            score(i) = mean.f(0, 0, 0);
            Func one{"one"};
            one(c, x, y) = 1.f;
            NetBuilder::Gradients g = b.backward(mean, one, false);
            grad_in(c, x, y) = g.of(x0).f(c, x, y);
            if (m == "p") {
                GateLayout l = gate_layout(pre);
                for (size_t k = 0; k < pre.size(); k++) {
                    const Map &p = pre[k];
                    RDom r(0, p.channels, 0, p.width, 0, p.height);
                    Expr at = l.offset[k] + r.x + p.channels * (r.y + p.width * r.z);
                    state_out(at) = p.f(r.x, r.y, r.z);
                    state_out(l.total + at) = g.of(p).f(r.x, r.y, r.z);
                }
            }
        }
        const int n = (int)NetBuilder::flat_size(net);
        for (auto *buf : {&in, &dir}) buf->dim(0).set_bounds(0, channels).set_stride(1);
        grad_in.dim(0).set_bounds(0, channels).set_stride(1);
        grad_params.dim(0).set_bounds(0, params ? n : 1).set_stride(1);
        grad_params.dim(1).set_bounds(0, 1);
        grad_params.dim(2).set_bounds(0, 1);
        score.dim(0).set_bounds(0, 1);
        disc.dim(0).set_bounds(0, n);
        if (m != "p") state_out.dim(0).set_bounds(0, 1);
        if (params) {
            grad_in.dim(1).set_bounds(0, 1);
            grad_in.dim(2).set_bounds(0, 1);
            grad_params.vectorize(c, 8, TailStrategy::GuardWithIf);
        } else {
            grad_in.parallel(y);
        }
        b.schedule_at_root();
    }

private:
    std::string net_name() const {
        return kind == DiscKind::TextureEarly ? "disc_texture_early"
               : kind == DiscKind::TextureDeep ? "disc_texture_deep"
                                               : "disc_colour";
    }

    // Mode r's parameter gradient (flat): b's convs, each fed α·a + β·ȧ
    // (a: D's activation at `in`, from the gates; ȧ: the tangent map of dir)
    // and seeded with its delta, give δ ⊗ (α a + β ȧ) per weight and α Σ δ
    // per bias (the tangent has no bias).
    Func gradient_from_state(NetBuilder &b, Func in_f, Expr W, Expr H, int channels, bool colour) {
        Var c = b.c, x = b.x, y = b.y;
        // the gates' shapes, from a copy of D none of whose Funcs is computed
        NetBuilder shape(disc, net_name());
        std::vector<Map> pre;
        discriminator(shape, shape.input({in_f, channels, W, H}), colour, &pre);
        GateLayout l = gate_layout(pre);
        auto from_state = [&](Expr base, const Map &s, const std::string &name) {
            Func f{name};
            f(c, x, y) = state_in(base + c + s.channels * (x + s.width * y));
            return Map{f, s.channels, s.width, s.height};
        };
        NetBuilder tangent(disc, net_name());
        tangent.share_weights(b);
        tangent.drop_biases();
        b.scale_bias_grads(alpha);
        Func dir_f = buffer_func(dir, "dir_f");
        Map v = tangent.input({dir_f, channels, W, H});
        Func mixed{"mixed_in"};
        mixed(c, x, y) = alpha * in_f(c, x, y) + beta * dir_f(c, x, y);
        Map fed{mixed, channels, W, H};
        std::vector<std::pair<Map, Func>> seeds;
        const std::vector<DiscLayer> layers = disc_layers(colour);
        for (size_t k = 0; k < layers.size(); k++) {
            const DiscLayer &L = layers[k];
            Map z = b.conv2d(b.input(fed), L.name, L.cout, L.k, true, L.stride);
            if (k + 1 == layers.size()) {  // the score's mean: delta 1/area
                Func d{"delta_last"};
                d(c, x, y) = 1.f / cast<float>(z.width * z.height);
                seeds.push_back({z, d});
                break;
            }
            const std::string tag = std::to_string(k);
            Map gate = from_state(l.offset[k], pre[k], "gate_" + tag);
            seeds.push_back({z, from_state(l.total + l.offset[k], pre[k], "delta_" + tag).f});
            v = tangent.leaky_relu_gated(tangent.conv2d(v, L.name, L.cout, L.k, true, L.stride), gate, kDiscSlope);
            Func gf = gate.f, vf = v.f, mix{"mixed_" + tag};
            Expr g = gf(c, x, y);
            mix(c, x, y) = alpha * select(g > 0, g, kDiscSlope * g) + beta * vf(c, x, y);
            fed = {mix, L.cout, z.width, z.height};
        }
        b.finish();
        Func flat = b.backward(seeds, true).params;
        tangent.schedule_at_root();
        return flat;
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Preprocess, preprocess)
HALIDE_REGISTER_GENERATOR(Mbv2Block, mbv2_block)
HALIDE_REGISTER_GENERATOR(Vgg19Stage, vgg19_stage)
HALIDE_REGISTER_GENERATOR(Disc, disc)
