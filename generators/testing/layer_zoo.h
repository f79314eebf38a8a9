// layer_zoo: a test-only ISP-shaped network (tests/test_layers.c) that runs
// the layers no shipped ISP uses, in one chain from the packed input
// (4, W/2, H/2) back to (3, W, H). Registered for the generators only: it is
// in no production table.
#pragma once

#include "../nets/isp.h"

namespace lumos {

inline Map layer_zoo(NetBuilder &b, Map x) {
    x = b.relu6(b.conv2d_bn(x, "dw", "dw_bn", 4, 3, false, 1, 4));  // depthwise + BN
    x = b.leaky_relu(b.conv2d(x, "down", 8, 3, true, 2), 0.2f);     // (8, W/4, H/4)
    Expr w2 = x.width * 2, h2 = x.height * 2;
    x = b.resize_bilinear(b.max_pool2(x), w2, h2);                  // (8, W/2, H/2), ×4
    x = b.conv2d(b.pixel_unshuffle(x, 2), "mix", 48, 1);            // (48, W/4, H/4)
    return b.pixel_shuffle(x, 4);                                   // (3, W, H)
}

inline const RegisterIspNet register_layer_zoo{
    "layer_zoo",
    {packed_bayer, [](NetBuilder &b, Map in, int, Map &, const GlobalPooling &) { return layer_zoo(b, in); }}};

}  // namespace lumos
