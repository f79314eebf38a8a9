// layer_test_generator.cpp — test-only pipelines, one layer each, for
// tests/test_layers_torch.c: the layer's output and its hand-written
// backward (dL/d(in) and dL/dθ for L = Σ grad_out · out) through the tape,
// scheduled by schedule_at_root as training pipelines are.
//
//   layer_test (net=NAME): NAME one of the configurations below; its
//   tensors are in tests/layer_tests.def (PyTorch state_dict names).
//   in (c, x, y), weights (flat), grad_out (c, x, y) over the output ->
//   out, grad_in, grad_weights. Resizes to a size take it from grad_out.

#include <memory>

#include "Halide.h"
#include "layers.h"

namespace {

using namespace Halide;
using lumos::Map;
using lumos::NetBuilder;
using lumos::TensorSpec;

const std::vector<TensorSpec> &test_tensors() {
    static const std::vector<TensorSpec> specs = {
#define LUMOS_TENSOR(net, name, d0, d1, d2, d3) {#net, name, {d0, d1, d2, d3}},
#include "layer_tests.def"
#undef LUMOS_TENSOR
    };
    return specs;
}

struct Config {
    const char *net, *layer;
    int cin, cout;
    int k = 0, stride = 0, padding = 0, output_padding = 0;  // convt, avg_pool
    int groups = 0, heads = 0, window = 0, shift = 0;         // group_norm, swin
    float sx = 0, sy = 0;                                     // resize_*_by
};

const Config &config(const std::string &net) {
    static const std::vector<Config> configs = {
        {"ln", "layer_norm", 6, 6},
        {"gelu", "gelu", 5, 5},
        {"linear", "linear", 6, 7},
        {"swin_w4", "swin", 12, 12, 0, 0, 0, 0, 0, 3, 4, 0},
        {"swin_w4_s2", "swin", 12, 12, 0, 0, 0, 0, 0, 3, 4, 2},
        {"swin_w8_s4", "swin", 24, 24, 0, 0, 0, 0, 0, 6, 8, 4},  // RRFormer's window, shift, heads
        {"convt_k4s2", "convt", 4, 6, 4, 2, 1, 0},
        {"convt_k3s2", "convt", 3, 5, 3, 2, 1, 1},
        {"convt_k3s1", "convt", 8, 16, 3, 1, 1, 0},
        {"nearest", "nearest", 3, 3},
        {"nearest_by_a", "nearest_by", 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1.5f, 3.f},
        {"nearest_by_b", "nearest_by", 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0.5f, 2.f},
        {"bilinear", "bilinear", 3, 3},
        {"bilinear_by_a", "bilinear_by", 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 2.5f, 1.5f},
        {"bilinear_by_b", "bilinear_by", 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0.5f, 2.f},
        {"avg_pool_k3s2p1", "avg_pool", 4, 4, 3, 2, 1},
        {"avg_pool_k4", "avg_pool", 8, 8, 4, 4, 0},
        {"avg_pool_k2s1", "avg_pool", 3, 3, 2, 1, 0},
        {"global_mean", "global_mean", 5, 5},
        {"global_max", "global_max", 5, 5},
        {"group_norm", "group_norm", 6, 6, 0, 0, 0, 0, 2},
        {"instance_norm", "instance_norm", 5, 5},
    };
    for (const Config &c : configs)
        if (net == c.net) return c;
    throw std::runtime_error("layer_test: unknown net " + net);
}

class LayerTest : public Generator<LayerTest> {
public:
    GeneratorParam<std::string> net{"net", "ln"};

    Input<Buffer<float>> in{"in", 3};
    Input<Buffer<float>> weights{"weights", 1};
    Input<Buffer<float>> grad_out{"grad_out", 3};
    Output<Buffer<float>> out{"out", 3};
    Output<Buffer<float>> grad_in{"grad_in", 3};
    Output<Buffer<float>> grad_weights{"grad_weights", 1};

    void generate() {
        const std::string name = net;
        const Config &k = config(name);
        std::vector<TensorSpec> specs;
        for (const TensorSpec &t : test_tensors())
            if (name == t.net) specs.push_back(t);
        std::unique_ptr<NetBuilder> nb =
            specs.empty() ? std::make_unique<NetBuilder>() : std::make_unique<NetBuilder>(weights, specs);
        NetBuilder &b = *nb;
        Var c = b.c, x = b.x, y = b.y;
        Func input{"input"}, g{"g"};
        input(c, x, y) = in(c, x, y);
        g(c, x, y) = grad_out(c, x, y);
        Map x0 = b.input({input, k.cin, in.dim(1).extent(), in.dim(2).extent()});
        Expr ow = grad_out.dim(1).extent(), oh = grad_out.dim(2).extent();
        const std::string layer = k.layer;
        Map y0;
        if (layer == "layer_norm") y0 = b.layer_norm(x0, "norm");
        else if (layer == "gelu") y0 = b.gelu(x0);
        else if (layer == "linear") y0 = b.linear(x0, "fc", k.cout);
        else if (layer == "swin") y0 = b.swin_block(x0, "blk", k.heads, k.window, k.shift, 2.f);
        else if (layer == "convt")
            y0 = b.conv_transpose2d(x0, "up", k.cout, k.k, k.stride, k.padding, k.output_padding);
        else if (layer == "nearest") y0 = b.resize_nearest(x0, ow, oh);
        else if (layer == "nearest_by") y0 = b.resize_nearest_by(x0, k.sx, k.sy);
        else if (layer == "bilinear") y0 = b.resize_bilinear(x0, ow, oh);
        else if (layer == "bilinear_by") y0 = b.resize_bilinear_by(x0, k.sx, k.sy);
        else if (layer == "avg_pool") y0 = b.avg_pool(x0, k.k, k.stride, k.padding);
        else if (layer == "global_mean") y0 = b.global_mean(x0);
        else if (layer == "global_max") y0 = b.global_max(x0);
        else if (layer == "group_norm") y0 = b.group_norm(x0, "gn", k.groups);
        else if (layer == "instance_norm") y0 = b.instance_norm(x0, "inorm");
        else throw std::runtime_error("layer_test: unknown layer " + layer);
        b.finish();
        NetBuilder::Gradients gr = b.backward(y0, g, true);
        out(c, x, y) = y0.f(c, x, y);
        grad_in(c, x, y) = gr.of(x0).f(c, x, y);
        Var i{"i"};
        grad_weights(i) = gr.params(i);

        const int n = std::max(1, (int)NetBuilder::flat_size(specs));
        in.dim(0).set_bounds(0, k.cin);
        grad_in.dim(0).set_bounds(0, k.cin);
        grad_out.dim(0).set_bounds(0, k.cout);
        out.dim(0).set_bounds(0, k.cout);
        weights.dim(0).set_bounds(0, n);
        grad_weights.dim(0).set_bounds(0, n);
        input.compute_root();
        b.schedule_at_root();
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(LayerTest, layer_test)
