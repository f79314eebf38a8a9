// isp_nets.h — the learned ISPs, each written once with the layer vocabulary
// (layers.h), for the inference generator (learned_isp_generator.cpp) and
// the training one (train_generator.cpp) alike. One statement per layer:
// the builder takes tensors in isp_nets.def's order.
#pragma once

#include <functional>
#include <string>
#include <utility>

#include "layers.h"

namespace lumos {

// EfficientISP: (4, W/2, H/2) -> (3, W, H).
inline Map efficient_isp(NetBuilder &b, Map x) {
    x = b.tanh(b.conv2d(x, "conv1", 12, 3));
    x = b.relu(b.conv2d(x, "conv2", 12, 3));
    x = b.relu(b.conv2d(x, "conv3", 12, 3));
    return b.pixel_shuffle(x, 2);
}

// RobustISP: (4, W/2, H/2) -> (3, W, H).
inline Map robust_isp(NetBuilder &b, Map x) {
    x = b.tanh(b.conv2d(x, "conv1", 16, 3));
    x = b.relu(b.conv2d(x, "conv2", 4, 3));
    x = b.relu(b.conv2d(x, "conv3", 12, 3));
    return b.pixel_shuffle(x, 2);
}

// Test-only (tests/test_layers.c): the layers no ISP uses, in one chain
// from the packed input (4, W/2, H/2) back to (3, W, H).
inline Map layer_zoo(NetBuilder &b, Map x) {
    x = b.relu6(b.conv2d_bn(x, "dw", "dw_bn", 4, 3, false, 1, 4));  // depthwise + BN
    x = b.leaky_relu(b.conv2d(x, "down", 8, 3, true, 2), 0.2f);     // (8, W/4, H/4)
    Expr w2 = x.width * 2, h2 = x.height * 2;
    x = b.resize_bilinear(b.max_pool2(x), w2, h2);                  // (8, W/2, H/2), ×4
    x = b.conv2d(b.pixel_unshuffle(x, 2), "mix", 48, 1);            // (48, W/4, H/4)
    return b.pixel_shuffle(x, 4);                                   // (3, W, H)
}

// RMFA's texture (1×1 ∥ 3×3 convs) and tone mapping (a two-level
// illumination pyramid subtracted from the input), fused by a 3×3 conv.
inline Map rmfa_fused(NetBuilder &b, const Map &x, const std::string &p) {
    Map high = b.relu(b.conv2d(x, p + "texture_module.high_freq.0", 8, 1));
    Map low = b.relu(b.conv2d(x, p + "texture_module.low_freq.0", 8, 3));
    Map texture = b.concat(high, low);
    Map x1 = b.relu(b.conv2d(b.avg_pool2(x), p + "tone_mapping.level1.1", 16, 3));
    Map x2 = b.relu(b.conv2d(b.avg_pool2(x1), p + "tone_mapping.level2.1", 16, 3));
    Map x3 = b.relu(b.conv2d(x2, p + "tone_mapping.level3.0", 16, 3));
    // Upsample(×2) of x3 has x1's size whenever the reference can add them.
    Map combined = b.add(x1, b.resize_bilinear(x3, x1.width, x1.height));
    Map up = b.resize_bilinear(combined, 2 * x1.width, 2 * x1.height);
    // The reference interpolates again to x's size when ×2 missed it; at
    // equal sizes this resize is the identity.
    Map illumination = b.resize_bilinear(up, x.width, x.height);
    Map tone = b.sub(x, illumination);
    return b.relu(b.conv2d(b.concat(texture, tone), p + "fusion.0", 16, 3));
}

// The global (mean, max) per channel of block i's fused features, as the
// channel attention takes them: pooled in the pipeline (training), or
// statistics computed by earlier passes (tiled inference).
using RmfaPooling = std::function<std::pair<Map, Map>(NetBuilder &, const Map &fused, int block)>;

inline RmfaPooling rmfa_pool_in_pipeline() {
    return [](NetBuilder &b, const Map &fused, int) {
        return std::make_pair(b.global_avg_pool(fused), b.global_max_pool(fused));
    };
}

// RMFANet(num_blocks=2, width=16), on the 3-plane split mosaic. Stops at
// block `stop`'s fused features (returned in `fused`) when stop < 2.
inline Map rmfa_tiny(NetBuilder &b, Map x, int stop, Map &fused, const RmfaPooling &pool) {
    x = b.conv2d(x, "input_module.0", 16, 3);
    x = b.tanh(b.conv2d(x, "input_module.1", 16, 3));
    for (int i = 0; i < 2; i++) {
        const std::string p = "rmfa_blocks." + std::to_string(i) + ".";
        fused = rmfa_fused(b, x, p);
        if (i == stop) return x;
        std::pair<Map, Map> stats = pool(b, fused, i);
        Map att = b.channel_attention(fused, p + "channel_attention", 16, stats.first, stats.second);
        x = b.add(b.spatial_attention(att, p + "spatial_attention", 7), x);
    }
    return b.sigmoid(b.conv2d(x, "output_module.0", 3, 3));
}

// RMFA's input: each normalised sample (clamped at 0) on its own colour's
// plane at full resolution, 1.0 elsewhere; red at even (u, v).
inline Map rmfa_split(Func norm, Expr W, Expr H, Expr cfa_x, Expr cfa_y) {
    Var ch{"c"}, u{"x"}, v{"y"};
    Func split{"split"};
    Expr s = max(norm(u, v), 0.f);
    Expr ue = (u & 1) == 0, ve = (v & 1) == 0;
    split(ch, u, v) = mux(ch, {select(ue && ve, s, 1.f), select(ue != ve, s, 1.f),
                               select(!ue && !ve, s, 1.f)});
    return {split, 3, W + cfa_x, H + cfa_y};
}

}  // namespace lumos
