// isp.h — the learned-ISP task: what every ISP network gives the family's
// generators (learned_isp_generator.cpp for inference, train_generator.cpp's
// isp_grad for training), so that a new ISP network is its folder under
// generators/nets/ and one registry line in generators/nets/CMakeLists.txt.
#pragma once

#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

#include "../layers.h"

namespace lumos {

// The global (mean, max) per channel of a network's map `m` at statistics
// point `i`: pooled inside the pipeline (training), or computed by earlier
// statistics passes over the whole image (tiled inference).
using GlobalPooling = std::function<std::pair<Map, Map>(NetBuilder &, const Map &m, int i)>;

inline GlobalPooling pool_in_pipeline() {
    return [](NetBuilder &b, const Map &m, int) {
        return std::make_pair(b.global_avg_pool(m), b.global_max_pool(m));
    };
}

struct IspNet {
    // The network's input from the normalised mosaic (network coordinates,
    // red at even (u, v)) of the W×H mosaic shifted by (cfa_x, cfa_y).
    std::function<Map(Func norm, Expr W, Expr H, Expr cfa_x, Expr cfa_y)> input;
    // The network on that input; (3, W + cfa_x, H + cfa_y) or larger.
    // Networks with global statistics stop at statistics point `stop`
    // (< stat_points) and return the map to pool in `pooled`.
    std::function<Map(NetBuilder &, Map in, int stop, Map &pooled, const GlobalPooling &)> build;
    int stat_points = 0;  // global statistics the network takes (passes before the image)

    // The network as a chain of pieces cut at its statistics points, for
    // images too big to recompute it per pass (stages/chain.c): the
    // `chain_channels`-channel state at point k (whatever the rest of the
    // network needs, the map point k pools among it) is stored once.
    // build_from(b, m, from, stop, pooled, pool): from the state at point
    // `from` held in `m` (from < 0: from the input), up to the state at
    // point `stop` (its pooled map in `pooled`), or the output when stop is
    // stat_points. Unset (chain_channels 0): the network runs as build().
    // With `derive` set, the state splits in two: its first
    // carried_channels channels (what the network carries from point to
    // point: RMFA's block input), stored by a piece that stops there
    // (build_from with carried_only), and the rest derived from those alone
    // (RMFA's fused features: derive(b, carried, k)), written beside them in
    // the store. The carried part is then computed once rather than again
    // over the derived part's apron.
    int chain_channels = 0;
    std::function<Map(NetBuilder &, Map m, int from, int stop, bool carried_only, Map &pooled,
                      const GlobalPooling &)>
        build_from;
    int carried_channels = 0;
    std::function<Map(NetBuilder &, const Map &carried, int point)> derive;
};

inline std::map<std::string, IspNet> &isp_nets() {
    static std::map<std::string, IspNet> nets;
    return nets;
}

// Each network's net.h registers itself under its tensors' name.
struct RegisterIspNet {
    RegisterIspNet(const char *name, IspNet net) { isp_nets()[name] = std::move(net); }
};

inline const IspNet &isp_net(const std::string &name) {
    auto it = isp_nets().find(name);
    if (it == isp_nets().end()) throw std::runtime_error("no ISP network " + name);
    return it->second;
}

// The shape EfficientISP and RobustISP share (the unpaired method's two
// smallest ISPs), on the packed input: conv1 (w1) tanh -> conv2 (w2) relu ->
// conv3 (12) relu -> pixel shuffle ×2, all 3×3. Registered under `name`.
inline RegisterIspNet register_three_conv_isp(const char *name, int w1, int w2) {
    auto build = [w1, w2](NetBuilder &b, Map x, int, Map &, const GlobalPooling &) {
        x = b.tanh(b.conv2d(x, "conv1", w1, 3));
        x = b.relu(b.conv2d(x, "conv2", w2, 3));
        x = b.relu(b.conv2d(x, "conv3", 12, 3));
        return b.pixel_shuffle(x, 2);
    };
    return RegisterIspNet(name, {packed_bayer, build});
}

}  // namespace lumos
