// dereflect_generator.cpp — the reflection-removal task's inference, for any
// network of the registry's dereflect family (GeneratorParam `net`: its
// folder under generators/nets/; nets/dereflect.h), with the parameters of
// its tensors.def in one flat buffer.
//
// dereflect_low runs the network's low-resolution part on the whole quarter
// image; dereflect_full runs its full-resolution part over one output
// region, reading the image around it from a buffer placed at its position
// in the photo (buffer mins), so that stages/dereflect_net.c can run it in
// tiles: every layer pads at the photo's borders, never a tile's, and the
// tiles equal the whole.

#include "Halide.h"
#include "lumos_dereflect_nets.h"
#include "tile_schedule.h"

namespace {

using namespace Halide;
using lumos::Map;
using lumos::NetBuilder;

constexpr int kTileW = 128, kTileH = 64;

// The images: (c, x, y), c innermost.
void interleaved(GeneratorInput<Buffer<float>> &in, int channels) {
    in.dim(0).set_bounds(0, channels).set_stride(1);
    in.dim(1).set_stride(channels);
}

class DereflectLow : public Generator<DereflectLow> {
public:
    GeneratorParam<std::string> net{"net", "uhd"};

    Input<Buffer<float>> quarter{"quarter", 3};  // the photo at 1/4, (c, x, y)
    Input<Buffer<float>> weights{"weights", 1};
    Output<Buffer<float>> low{"low", 3};         // (c, x, y) at 1/scale

    Var c{"c"}, x{"x"}, y{"y"};

    void generate() {
        const std::string name = net;
        const lumos::DereflectNet &spec = lumos::dereflect_net(name);
        NetBuilder b(weights, name);
        Func q{"quarter_image"};
        q(c, x, y) = quarter(c, x, y);
        // (no b.finish(): the full-resolution part's tensors follow, unused here)
        Map result = spec.low(b, Map{q, 3, quarter.dim(1).extent(), quarter.dim(2).extent()});
        low(c, x, y) = result.f(c, x, y);
        interleaved(quarter, 3);
        quarter.dim(1).set_min(0);
        quarter.dim(2).set_min(0);
        low.dim(0).set_bounds(0, spec.low_channels).set_stride(1);
        weights.dim(0).set_bounds(0, (int)NetBuilder::flat_size(net));
        // Small maps (a 4K photo's quarter is 960×540): every stage at
        // root, as training pipelines are.
        b.schedule_at_root();
        low.compute_root().reorder(c, x, y).parallel(y).vectorize(c, 8, TailStrategy::GuardWithIf);
    }
};

class DereflectFull : public Generator<DereflectFull> {
public:
    GeneratorParam<std::string> net{"net", "uhd"};
    GeneratorParam<bool> with_reflection{"with_reflection", false};  // outputs T (3) or T, R (6)

    Input<Buffer<float>> image{"image", 3};  // a window of the photo, at its position
    Input<int> width{"width"};               // the photo's (padded) size
    Input<int> height{"height"};
    Input<Buffer<float>> low{"low", 3};      // the whole low map
    Input<Buffer<float>> weights{"weights", 1};
    Output<Buffer<float>> output{"output", 3};  // (c, x, y) over the region

    Var c{"c"}, x{"x"}, y{"y"};

    void generate() {
        const std::string name = net;
        const lumos::DereflectNet &spec = lumos::dereflect_net(name);
        NetBuilder b(weights, name);
        // Read only inside the photo: the layers' padding selects zero
        // outside it, but a clamped read keeps bounds inference to the
        // window the caller gives.
        Func img{"image_in"}, lo{"low_in"};
        img(c, x, y) = image(c, clamp(x, 0, width - 1), clamp(y, 0, height - 1));
        Expr lw = width / spec.scale, lh = height / spec.scale;
        lo(c, x, y) = low(c, clamp(x, 0, lw - 1), clamp(y, 0, lh - 1));
        Map result = spec.full(b, Map{img, 3, width, height}, Map{lo, spec.low_channels, lw, lh});
        b.finish();
        const int channels = with_reflection ? 6 : 3;
        output(c, x, y) = result.f(c, x, y);
        interleaved(image, 3);
        interleaved(low, spec.low_channels);
        output.dim(0).set_bounds(0, channels).set_stride(1);
        weights.dim(0).set_bounds(0, (int)NetBuilder::flat_size(net));

        const int vec = natural_vector_size<float>();
        for (Func f : b.weights()) f.compute_root();
        Var xo{"xo"}, yo{"yo"}, xi{"xi"}, yi{"yi"}, tile{"tile"};
        output.bound(c, 0, channels).reorder(c, x, y).unroll(c);
        output.tile(x, y, xo, yo, xi, yi, kTileW, kTileH, TailStrategy::GuardWithIf)
            .fuse(xo, yo, tile)
            .parallel(tile)
            .vectorize(xi, vec, TailStrategy::GuardWithIf);
        lumos::place_layers(b, LoopLevel(output, tile), c, x, y, vec);
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(DereflectLow, dereflect_low)
HALIDE_REGISTER_GENERATOR(DereflectFull, dereflect_full)
