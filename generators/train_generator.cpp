// train_generator.cpp — the training family: gradients through the layer
// vocabulary (layers.h's tape), one pipeline per generator.
//
//   train (stride=1|2): dL/d(in) and dL/dθ of one conv (the grad_conv or
//     grad_conv_s2 network of testing/tensors.def), given the input and
//     dL/d(out), for the single-layer gradient tests.
//
//   isp_grad (net=FOLDER of generators/nets/): dL/dθ of a learned ISP's
//     parameters (flat, its tensors.def order) for one mosaic, given
//     dL/d(output) (c, x, y) in mosaic coordinates: the forward of its
//     net.h recomputed, then its tape walked backwards. Global statistics
//     (RMFA's channel attention) are pooled over the whole crop inside the
//     pipeline.
//
// Schedule: every stage at root (NetBuilder::schedule_at_root), parallel
// over rows: training runs on crops of a few hundred pixels.

#include "Halide.h"
#include "lumos_isp_nets.h"

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
        const int cin = 4, cout = 6, n = (int)NetBuilder::flat_size(net);
        Func input{"input"}, g{"g"};
        input(c, x, y) = in(c, x, y);
        g(c, x, y) = grad_out(c, x, y);
        Map x0 = b.input({input, cin, in.dim(1).extent(), in.dim(2).extent()});
        Map out = b.conv2d(x0, "conv", cout, 3, true, stride);
        b.finish();
        NetBuilder::Gradients gr = b.backward(out, g, true);
        grad_in(c, x, y) = gr.of(x0).f(c, x, y);
        Var i{"i"};
        grad_weights(i) = gr.params(i);
        grad_weights.vectorize(i, 8, TailStrategy::GuardWithIf);

        in.dim(0).set_bounds(0, cin);
        grad_out.dim(0).set_bounds(0, cout);
        grad_in.dim(0).set_bounds(0, cin);
        weights.dim(0).set_bounds(0, n);
        grad_weights.dim(0).set_bounds(0, n);
        input.compute_root();
        b.schedule_at_root();
    }
};

class IspGrad : public Generator<IspGrad> {
public:
    GeneratorParam<std::string> net{"net", "efficient"};  // a folder of generators/nets/

    Input<Buffer<uint16_t>> raw{"raw", 2};
    Input<int> cfa_x{"cfa_x"};
    Input<int> cfa_y{"cfa_y"};
    Input<Buffer<float>> black{"black", 2};
    Input<Buffer<float>> scale{"scale", 2};
    Input<Buffer<float>> weights{"weights", 1};
    Input<Buffer<float>> grad_out{"grad_out", 3};  // (c, x, y), the mosaic's size
    Output<Buffer<float>> grad_weights{"grad_weights", 1};

    void generate() {
        const std::string name = net;
        NetBuilder b(weights, name);
        Var c = b.c, x = b.x, y = b.y;
        Expr W = raw.width(), H = raw.height();
        Func norm = lumos::normalised_mosaic(raw, W, H, cfa_x, cfa_y, black, scale);
        const lumos::IspNet &spec = lumos::isp_net(name);
        Map pooled;
        Map out = spec.build(b, spec.input(norm, W, H, cfa_x, cfa_y), spec.stat_points, pooled,
                             lumos::pool_in_pipeline());
        b.finish();

        // dL/d(output) in network coordinates: zero where the network's
        // domain reaches past the mosaic (the packed nets' last block).
        Func g{"g"};
        Expr gx = x - cfa_x, gy = y - cfa_y;
        g(c, x, y) = select(gx >= 0 && gx < W && gy >= 0 && gy < H,
                            grad_out(c, clamp(gx, 0, W - 1), clamp(gy, 0, H - 1)), 0.f);
        NetBuilder::Gradients gr = b.backward(out, g, true);
        Var i{"i"};
        grad_weights(i) = gr.params(i);
        grad_weights.vectorize(i, 8, TailStrategy::GuardWithIf);

        const int n = (int)NetBuilder::flat_size(name);
        raw.dim(0).set_min(0);
        raw.dim(1).set_min(0);
        weights.dim(0).set_bounds(0, n);
        grad_weights.dim(0).set_bounds(0, n);
        grad_out.dim(0).set_bounds(0, 3);
        b.store_small_maps_planar();
        b.schedule_at_root();
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Train, train)
HALIDE_REGISTER_GENERATOR(IspGrad, isp_grad)
