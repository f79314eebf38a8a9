// RMFA-Net tiny, RMFANet(num_blocks=2, width=16): the 3-plane split mosaic
// at full resolution -> (3, W, H). Its channel attention pools each block's
// fused features over the whole image: two global statistics points.
#pragma once

#include <string>

#include "../isp.h"

namespace lumos {

inline std::string rmfa_block(int i) { return "rmfa_blocks." + std::to_string(i) + "."; }

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

// The network; stops at block `stop`'s fused features (returned in `fused`)
// when stop < 2.
inline Map rmfa_tiny(NetBuilder &b, Map x, int stop, Map &fused, const GlobalPooling &pool) {
    x = b.conv2d(x, "input_module.0", 16, 3);
    x = b.tanh(b.conv2d(x, "input_module.1", 16, 3));
    for (int i = 0; i < 2; i++) {
        const std::string p = rmfa_block(i);
        fused = rmfa_fused(b, x, p);
        if (i == stop) return x;
        std::pair<Map, Map> stats = pool(b, fused, i);
        Map att = b.channel_attention(fused, p + "channel_attention", 16, stats.first, stats.second);
        x = b.add(b.spatial_attention(att, p + "spatial_attention", 7), x);
    }
    return b.sigmoid(b.conv2d(x, "output_module.0", 3, 3));
}

// The network as a chain (nets/isp.h: build_from). Its state at point k is
// block k's input x_k (carried) and its fused features (derived from x_k
// alone), 32 channels: stored, the channel attention needs nothing else,
// so each block's features are computed once for the statistics and the
// image alike, and x_k once rather than again over their apron.
inline Map rmfa_tiny_chain(NetBuilder &b, Map m, int from, int stop, bool carried_only,
                           Map &pooled, const GlobalPooling &pool) {
    Map x, fused;
    bool have_fused = false;
    if (from < 0) {
        x = b.conv2d(m, "input_module.0", 16, 3);
        x = b.tanh(b.conv2d(x, "input_module.1", 16, 3));
        from = 0;
    } else {
        b.seek(rmfa_block(from) + "channel_attention.fc.0.weight");
        Var c{"c"}, u{"x"}, v{"y"};
        Func xs{"state_x"}, fs{"state_fused"};
        xs(c, u, v) = m.f(c, u, v);
        fs(c, u, v) = m.f(c + 16, u, v);
        x = {xs, 16, m.width, m.height};
        fused = {fs, 16, m.width, m.height};
        have_fused = true;
    }
    for (int i = from;; i++) {
        if (i == stop && carried_only) return x;
        if (!have_fused) fused = rmfa_fused(b, x, rmfa_block(i));
        if (i == stop) {
            pooled = fused;
            return b.concat(x, fused);
        }
        std::pair<Map, Map> stats = pool(b, fused, i);
        Map att = b.channel_attention(fused, rmfa_block(i) + "channel_attention", 16, stats.first,
                                      stats.second);
        x = b.add(b.spatial_attention(att, rmfa_block(i) + "spatial_attention", 7), x);
        if (i == 1) return b.sigmoid(b.conv2d(x, "output_module.0", 3, 3));
        have_fused = false;
    }
}

// Block k's fused features from its input (the derived part of the state).
inline Map rmfa_tiny_derive(NetBuilder &b, const Map &x, int k) {
    b.seek(rmfa_block(k) + "texture_module.high_freq.0.weight");
    return rmfa_fused(b, x, rmfa_block(k));
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

inline const RegisterIspNet register_rmfa_tiny{
    "rmfa_tiny", {rmfa_split, rmfa_tiny, 2, 32, rmfa_tiny_chain, 16, rmfa_tiny_derive}};

}  // namespace lumos
