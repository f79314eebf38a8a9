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
// tiles equal the whole. dereflect_piece is training's: the network in
// pieces, forward and backward.

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

// Training: one piece of the network (nets/dereflect.h's training pieces)
// on a crop taken as the whole photo, forward or as its gradient.
// GeneratorParam part:
//   taps     quarter image, weights -> tap0 … tapN (the frozen features)
//   first    tap0 … tapN, quarter, weights -> the first piece's map
//   pieceK   the map before piece K (1-based), weights -> its map
//   full     image, low, weights (grad only: full's forward is dereflect_full)
// grad: the piece's inputs and dL/d(its output) (for full: dL/dT, 3
// channels) -> dL/d(its map input) (none for first) and dL/dθ (flat, every
// parameter; 0 outside the piece). Each piece recomputes its own forward.
class DereflectPiece : public Generator<DereflectPiece> {
public:
    GeneratorParam<std::string> net{"net", "uhd"};
    GeneratorParam<std::string> part{"part", "first"};
    GeneratorParam<bool> grad{"grad", false};

    Var c{"c"}, x{"x"}, y{"y"};

    void configure() {
        const lumos::DereflectNet &spec = lumos::dereflect_net(net);
        const std::string p = part;
        auto in = [&](const std::string &name) { return add_input<Buffer<float>>(name, 3); };
        if (p == "taps") {
            quarter_ = in("quarter");
        } else if (p == "first") {
            for (size_t k = 0; k < spec.tap_channels.size(); k++) taps_.push_back(in("tap" + std::to_string(k)));
            quarter_ = in("quarter");
        } else if (p == "full") {
            image_ = in("image");
            map_in_ = in("low");
        } else {
            map_in_ = in("map");
        }
        weights_ = add_input<Buffer<float>>("weights", 1);
        if (grad) grad_out_ = in("grad_out");
        if (p == "taps") {
            for (size_t k = 0; k < spec.tap_channels.size(); k++)
                tap_out_.push_back(add_output<Buffer<float>>("tap_out" + std::to_string(k), 3));
        } else if (!grad) {
            map_out_ = add_output<Buffer<float>>("output", 3);
        } else {
            if (p != "first") grad_in_ = add_output<Buffer<float>>("grad_in", 3);
            grad_weights_ = add_output<Buffer<float>>("grad_weights", 1);
        }
    }

    void generate() {
        const std::string name = net, p = part;
        const lumos::DereflectNet &spec = lumos::dereflect_net(name);
        NetBuilder b(*weights_, name);
        const int n = (int)NetBuilder::flat_size(name);
        (*weights_).dim(0).set_bounds(0, n);
        std::vector<Map> ins;  // the map inputs on the tape (gradient wanted)
        // Reads clamped into each buffer: the layers' padding selects zero
        // outside, and bounds inference stays within what the caller gives.
        auto map_of = [&](GeneratorInput<Buffer<float>> *buf, int channels, const char *label) {
            Func f{label};
            f(c, x, y) = (*buf)(c, clamp(x, 0, buf->dim(1).extent() - 1),
                                clamp(y, 0, buf->dim(2).extent() - 1));
            interleaved(*buf, channels);
            buf->dim(1).set_min(0);
            buf->dim(2).set_min(0);
            return Map{f, channels, buf->dim(1).extent(), buf->dim(2).extent()};
        };
        Map out;
        int piece = 0;  // 1-based index of a later piece
        if (p == "taps" || p == "first") {
            Map q = map_of(quarter_, 3, "quarter_in");
            if (p == "taps") {
                std::vector<Map> taps = spec.taps(b, q);
                for (size_t k = 0; k < taps.size(); k++) {
                    GeneratorOutput<Buffer<float>> &o = *tap_out_[k];
                    o(c, x, y) = taps[k].f(c, x, y);
                    o.dim(0).set_bounds(0, spec.tap_channels[k]).set_stride(1);
                    o.compute_root().reorder(c, x, y).parallel(y).vectorize(c, 8, TailStrategy::GuardWithIf);
                }
                b.schedule_at_root();
                return;
            }
            std::vector<Map> taps;
            for (size_t k = 0; k < taps_.size(); k++) {
                Map t = map_of(taps_[k], spec.tap_channels[k], "tap_in");
                taps.push_back(t);  // data: not on the tape
            }
            out = spec.first(b, taps, q);
        } else if (p == "full") {
            Map img = map_of(image_, 3, "image_in");
            const int lc = spec.low_channels;
            Map low = b.input(map_of(map_in_, lc, "low_in"));
            ins.push_back(low);
            out = spec.full(b, img, low);
            b.finish();
        } else {
            piece = std::stoi(p.substr(5));
            if (p.compare(0, 5, "piece") || piece < 1 || piece > (int)spec.pieces.size())
                throw std::runtime_error("dereflect_piece: no part " + p);
            Map m = b.input(map_of(map_in_, spec.piece_channels[piece - 1], "map_in"));
            ins.push_back(m);
            out = spec.pieces[piece - 1](b, m);
        }
        if (!grad) {
            GeneratorOutput<Buffer<float>> &o = *map_out_;
            o(c, x, y) = out.f(c, x, y);
            o.dim(0).set_bounds(0, out.channels).set_stride(1);
            b.schedule_at_root();
            o.compute_root().reorder(c, x, y).parallel(y).vectorize(c, 8, TailStrategy::GuardWithIf);
            return;
        }
        // dL/d(output): for full, dL/dT on the first three of (T, R)
        const int gc = p == "full" ? 3 : out.channels;
        Func g{"grad_output"};
        Expr gx = clamp(x, 0, grad_out_->dim(1).extent() - 1), gy = clamp(y, 0, grad_out_->dim(2).extent() - 1);
        if (p == "full") g(c, x, y) = select(c < 3, (*grad_out_)(min(c, 2), gx, gy), 0.f);
        else g(c, x, y) = (*grad_out_)(c, gx, gy);
        interleaved(*grad_out_, gc);
        grad_out_->dim(1).set_min(0);
        grad_out_->dim(2).set_min(0);
        NetBuilder::Gradients gr = b.backward(out, g, true);
        Var i{"i"};
        GeneratorOutput<Buffer<float>> &gw = *grad_weights_;
        gw(i) = gr.params(i);
        gw.dim(0).set_bounds(0, n);
        gw.vectorize(i, 8, TailStrategy::GuardWithIf);
        if (grad_in_) {
            GeneratorOutput<Buffer<float>> &gi = *grad_in_;
            gi(c, x, y) = gr.of(ins[0]).f(c, x, y);
            gi.dim(0).set_bounds(0, ins[0].channels).set_stride(1);
            gi.compute_root().reorder(c, x, y).parallel(y).vectorize(c, 8, TailStrategy::GuardWithIf);
        }
        b.store_small_maps_planar();
        b.schedule_at_root();
    }

private:
    std::vector<GeneratorInput<Buffer<float>> *> taps_;
    GeneratorInput<Buffer<float>> *quarter_ = nullptr, *image_ = nullptr, *map_in_ = nullptr,
                                  *weights_ = nullptr, *grad_out_ = nullptr;
    std::vector<GeneratorOutput<Buffer<float>> *> tap_out_;
    GeneratorOutput<Buffer<float>> *map_out_ = nullptr, *grad_in_ = nullptr, *grad_weights_ = nullptr;
};

}  // namespace

HALIDE_REGISTER_GENERATOR(DereflectLow, dereflect_low)
HALIDE_REGISTER_GENERATOR(DereflectFull, dereflect_full)
HALIDE_REGISTER_GENERATOR(DereflectPiece, dereflect_piece)
