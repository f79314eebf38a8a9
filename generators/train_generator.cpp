// train_generator.cpp — the training family: gradients of the layer
// vocabulary (layers.h), one pipeline per GeneratorParam `op`.
//
//   op=conv_backward: dL/d(in), dL/dw and dL/db of one conv (the grad_conv
//     or grad_conv_s2 network of isp_nets.def), given the input and
//     dL/d(out). Outputs the input gradient (c, x, y) and the weight
//     gradient in the flat buffer's layout (weights then bias).
//
// Schedule: every stage at root, vectorised — these pipelines serve the
// gradient tests for now; the training step's schedules come with it.

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

}  // namespace

HALIDE_REGISTER_GENERATOR(Train, train)
