// uhd — lumos's UHD reflection removal (tests/torch/dereflect_nets.py has
// the design and the PyTorch module this equals): a MobileNetV2
// hypercolumn of the quarter image, a U of residual Swin groups and pyramid
// pooling at 1/8, and three 3×3 convs at full resolution that refine the
// upsampled reflection; T = I − R.
#pragma once

#include <string>
#include <vector>

#include "../../losses/features.h"
#include "../dereflect.h"

namespace lumos {

constexpr int kUhdWidth = 32, kUhdHeads = 2, kUhdWindow = 8, kUhdGuide = 8, kUhdFull = 16;
constexpr int kUhdTaps[4] = {1, 3, 6, 10};  // MobileNetV2 features[i] used

// Two Swin blocks (shifts 0 and window/2) and a closing 3×3 conv, residual.
inline Map uhd_group(NetBuilder &b, const Map &x, const std::string &p, int heads) {
    Map y = x;
    for (int i = 0; i < 2; i++)
        y = b.swin_block(y, p + ".blocks." + std::to_string(i), heads, kUhdWindow,
                         i % 2 ? kUhdWindow / 2 : 0, 2.f);
    return b.add(x, b.conv2d(y, p + ".conv", x.channels, 3));
}

// The frozen MobileNetV2's taps of the quarter image (0..1, sRGB-encoded):
// data to the tape, so training stops its gradient there (no adjoints
// through the feature network).
inline std::vector<Map> uhd_taps(NetBuilder &b, const Map &quarter) {
    Var c{"c"}, x{"x"}, y{"y"};
    Func normalised{"imagenet_normalised"};
    normalised(c, x, y) = (quarter.f(c, x, y) - mux(c, {0.485f, 0.456f, 0.406f})) /
                          mux(c, {0.229f, 0.224f, 0.225f});
    Map m{normalised, 3, quarter.width, quarter.height};  // data: no gradient
    std::vector<Map> taps;
    for (int i = 0; i <= kUhdTaps[3]; i++) {
        m = mobilenet_block(b, m, i);
        if (i == kUhdTaps[taps.size()]) {
            taps.push_back(m);
            taps.back().node = -1;
        }
    }
    return taps;
}

// The training pieces of the low pass (nets/dereflect.h): the embedding
// and encoder from the taps and the quarter image, at 1/8 of full
// resolution ...
inline Map uhd_encode(NetBuilder &b, const std::vector<Map> &taps, const Map &quarter) {
    b.seek("hyper.0.weight");
    Expr w8 = quarter.width / 2, h8 = quarter.height / 2;
    Map cat;
    for (int t = 0; t < 4; t++) {
        Map h = b.resize_bilinear(b.conv2d(taps[t], "hyper." + std::to_string(t), 16, 1), w8, h8);
        cat = t ? b.concat(cat, h) : h;
    }
    cat = b.concat(cat, b.avg_pool(quarter, 2));  // avg_pool(I, 8)
    Map e = b.relu(b.conv2d(cat, "embed", kUhdWidth, 3));
    return uhd_group(b, e, "enc", kUhdHeads);
}

// ... the bottom of the U at 1/16, back up and joined to the encoder ...
inline Map uhd_bottom(NetBuilder &b, const Map &e) {
    b.seek("down.weight");
    Map mid = b.relu(b.conv2d(e, "down", 2 * kUhdWidth, 3, true, 2));
    mid = uhd_group(b, mid, "mid", 2 * kUhdHeads);
    return b.add(b.conv_transpose2d(mid, "up", kUhdWidth, 2, 2), e);
}

// ... and the decoder, pyramid pooling and head: reflection (3) and guide
// (kUhdGuide) at 1/8.
inline Map uhd_decode(NetBuilder &b, const Map &joined) {
    b.seek("dec.blocks.0.norm1.weight");
    Map u = uhd_group(b, joined, "dec", kUhdHeads);
    Map fused = u;
    for (int i = 0; i < 2; i++) {
        const int k = i ? 8 : 4;
        Map p = b.conv2d(b.avg_pool(u, k), "pool." + std::to_string(i), kUhdWidth / 2, 1);
        fused = b.concat(fused, b.resize_nearest(b.leaky_relu(p, 0.2f), u.width, u.height));
    }
    fused = b.conv2d(fused, "fuse", kUhdWidth, 1);
    return b.conv2d(fused, "head", 3 + kUhdGuide, 3);
}

inline Map uhd_low(NetBuilder &b, const Map &quarter) {
    return uhd_decode(b, uhd_bottom(b, uhd_encode(b, uhd_taps(b, quarter), quarter)));
}

// From the image and the low map: (T, R).
inline Map uhd_full(NetBuilder &b, const Map &image, const Map &low) {
    b.seek("refine.0.weight");
    Map up = b.resize_bilinear_by(low, 8.f, 8.f);
    Map h = b.relu(b.conv2d(b.concat(image, up), "refine.0", kUhdFull, 3));
    h = b.relu(b.conv2d(h, "refine.2", kUhdFull, 3));
    Map reflection = b.add(b.channels(up, 0, 3), b.conv2d(h, "refine.4", 3, 3));
    return b.concat(b.sub(image, reflection), reflection);
}

inline const RegisterDereflectNet register_uhd{
    "uhd",
    {128, 8, 3 + kUhdGuide, 3, uhd_low, uhd_full,
     // training: taps (channels, stride from the quarter image), pieces
     uhd_taps, {16, 24, 32, 64}, {2, 4, 8, 16}, uhd_encode, {uhd_bottom, uhd_decode},
     {kUhdWidth, kUhdWidth, 3 + kUhdGuide}}};

}  // namespace lumos
