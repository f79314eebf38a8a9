// train_generator.cpp — the training family: gradients of the layer
// vocabulary (layers.h), one pipeline per GeneratorParam `op`.
//
//   op=conv_backward: dL/d(in), dL/dw and dL/db of one conv (the grad_conv
//     or grad_conv_s2 network of isp_nets.def), given the input and
//     dL/d(out). Outputs the input gradient (c, x, y) and the weight
//     gradient in the flat buffer's layout (weights then bias).
//
//   efficient_grad: dL/dθ of EfficientISP's parameters (flat, isp_nets.def
//     order) for one mosaic, given dL/d(output) (c, x, y) in mosaic
//     coordinates: the forward recomputed, then every layer's adjoint in
//     reverse — pixel unshuffle, ReLU', conv3ᵀ, ReLU', conv2ᵀ, tanh', conv1ᵀ.
//
// Schedule: every stage at root — these pipelines serve the gradient tests
// for now; the training step's schedules come with it.

#include "Halide.h"
#include "layers.h"

namespace {

using namespace Halide;
using lumos::Map;
using lumos::NetBuilder;

class Train : public Generator<Train> {
public:
    GeneratorParam<int> stride{"stride", 1};

    Input<Buffer<float>> in{"in", 3};            // (c, x, y), 4 channels
    Input<Buffer<float>> weights{"weights", 1};  // conv.weight [6,4,3,3], conv.bias [6]
    Input<Buffer<float>> grad_out{"grad_out", 3};
    Output<Buffer<float>> grad_in{"grad_in", 3};
    Output<Buffer<float>> grad_weights{"grad_weights", 1};

    void generate() {
        const std::string net = stride == 1 ? "grad_conv" : "grad_conv_s2";
        NetBuilder b(weights, net);
        Var c = b.c, x = b.x, y = b.y;
        const int cin = 4, cout = 6, k = 3;
        Map input{in, cin, in.dim(1).extent(), in.dim(2).extent()};
        Map out = b.conv2d(input, "conv", cout, k, true, stride);
        b.finish();
        NetBuilder::ConvGrads g = b.conv2d_backward(0, Map{grad_out, cout, out.width, out.height});

        grad_in(c, x, y) = g.input.f(c, x, y);
        // Flat layout of the weights: [co][ci][ky][kx], then the bias.
        Var i{"i"};
        const int nw = cout * cin * k * k;
        Expr j = min(i, nw - 1);
        Expr kx = j % k, ky = (j / k) % k, ci = (j / (k * k)) % cin, co = j / (k * k * cin);
        grad_weights(i) = select(i < nw, g.weight(co, kx, ky, ci), g.bias(clamp(i - nw, 0, cout - 1)));

        in.dim(0).set_bounds(0, cin);
        grad_out.dim(0).set_bounds(0, cout);
        grad_in.dim(0).set_bounds(0, cin);
        weights.dim(0).set_bounds(0, (int)NetBuilder::flat_size(net));
        grad_weights.dim(0).set_bounds(0, (int)NetBuilder::flat_size(net));
        in.set_estimates({{0, cin}, {0, 64}, {0, 64}});
        grad_out.set_estimates({{0, cout}, {0, 64}, {0, 64}});
        weights.set_estimates({{0, (int)NetBuilder::flat_size(net)}});
        grad_in.set_estimates({{0, cin}, {0, 64}, {0, 64}});
        grad_weights.set_estimates({{0, (int)NetBuilder::flat_size(net)}});
        if (get_auto_schedule()) return;
        g.weight.compute_root();
        g.bias.compute_root();
        g.input.f.compute_root();
        for (Func w : b.weights()) w.compute_root();
    }
};

class EfficientGrad : public Generator<EfficientGrad> {
public:
    Input<Buffer<uint16_t>> raw{"raw", 2};
    Input<int> cfa_x{"cfa_x"};
    Input<int> cfa_y{"cfa_y"};
    Input<Buffer<float>> black{"black", 2};
    Input<Buffer<float>> scale{"scale", 2};
    Input<Buffer<float>> weights{"weights", 1};
    Input<Buffer<float>> grad_out{"grad_out", 3};  // (c, x, y), the mosaic's size
    Output<Buffer<float>> grad_weights{"grad_weights", 1};

    void generate() {
        NetBuilder b(weights, "efficient");
        Var c = b.c, x = b.x, y = b.y;
        Expr W = raw.width(), H = raw.height();
        Map in = lumos::packed_bayer(
            lumos::normalised_mosaic(raw, W, H, cfa_x, cfa_y, black, scale), W, H, cfa_x, cfa_y);
        // The forward, exactly as learned_isp_generator.cpp builds it.
        Map c1 = b.conv2d(in, "conv1", 12, 3);
        Map c2 = b.conv2d(b.tanh(c1), "conv2", 12, 3);
        Map c3 = b.conv2d(b.relu(c2), "conv3", 12, 3);
        b.finish();

        // dL/d(shuffled output) in network coordinates: zero where the
        // network's blocks reach past the mosaic.
        Func g{"g"};
        Expr gx = x - cfa_x, gy = y - cfa_y;
        g(c, x, y) = select(gx >= 0 && gx < W && gy >= 0 && gy < H,
                            grad_out(c, clamp(gx, 0, W - 1), clamp(gy, 0, H - 1)), 0.f);
        Map g_out{g, 3, 2 * in.width, 2 * in.height};
        Map g3 = b.relu_backward(c3, b.pixel_unshuffle(g_out, 2));
        NetBuilder::ConvGrads d3 = b.conv2d_backward(2, g3);
        NetBuilder::ConvGrads d2 = b.conv2d_backward(1, b.relu_backward(c2, d3.input));
        NetBuilder::ConvGrads d1 = b.conv2d_backward(0, b.tanh_backward(c1, d2.input));

        // Flat, in isp_nets.def order: conv1.weight, conv1.bias, conv2..., conv3...
        Var i{"i"};
        const NetBuilder::ConvGrads *d[3] = {&d1, &d2, &d3};
        const int cin[3] = {4, 12, 12}, cout = 12;
        Expr value = 0.f;
        int at = 0;
        for (int l = 0; l < 3; l++) {
            const int nw = cout * cin[l] * 9;
            Expr j = clamp(i - at, 0, nw - 1);
            Expr w = d[l]->weight(j / (9 * cin[l]), j % 3, (j / 3) % 3, (j / 9) % cin[l]);
            value = select(i >= at && i < at + nw, w, value);
            at += nw;
            Expr bias = d[l]->bias(clamp(i - at, 0, cout - 1));
            value = select(i >= at && i < at + cout, bias, value);
            at += cout;
        }
        grad_weights(i) = value;

        const int n = (int)NetBuilder::flat_size("efficient");
        raw.dim(0).set_min(0);
        raw.dim(1).set_min(0);
        weights.dim(0).set_bounds(0, n);
        grad_weights.dim(0).set_bounds(0, n);
        grad_out.dim(0).set_bounds(0, 3);
        raw.set_estimates({{0, 64}, {0, 64}});
        black.set_estimates({{0, 2}, {0, 2}});
        scale.set_estimates({{0, 2}, {0, 2}});
        weights.set_estimates({{0, n}});
        grad_out.set_estimates({{0, 3}, {0, 64}, {0, 64}});
        grad_weights.set_estimates({{0, n}});
        cfa_x.set_estimate(0);
        cfa_y.set_estimate(0);
        if (get_auto_schedule()) return;
        for (Func f : b.weights()) f.compute_root();
        for (NetBuilder::ConvRecord cr : b.convs()) cr.out.f.compute_root();
        for (NetBuilder::ConvGrads dl : {d1, d2, d3}) {
            dl.weight.compute_root();
            dl.bias.compute_root();
            dl.input.f.compute_root();
        }
        g3.f.compute_root();
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Train, train)
HALIDE_REGISTER_GENERATOR(EfficientGrad, efficient_grad)
