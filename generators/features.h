// features.h — the frozen feature network of the losses: MobileNetV2's
// features[0:12] (torchvision layout, ImageNet weights from npm nsfwjs,
// trained in TF: BN eps 1e-3 and TF "same" padding), written with the
// layer vocabulary so its input gradient comes from the same tape.
//
// Training compiles it one block per pipeline (loss_generator.cpp's
// mbv2_block, chained by stages/train_losses.c): a pipeline of the whole
// network with its backward has ~1,000 stages, which Halide 14 takes over
// 20 minutes to lower.
#pragma once

#include <string>

#include "layers.h"

namespace lumos {

// Block i (features[i]): input and output channels, stride.
struct MobileNetBlock {
    int cin, cout, stride;
};
constexpr int kMobileNetBlocks = 12;
inline MobileNetBlock mobilenet_block_shape(int i) {
    static const MobileNetBlock shapes[kMobileNetBlocks] = {
        {3, 32, 2},  {32, 16, 1}, {16, 24, 2}, {24, 24, 1}, {24, 32, 2}, {32, 32, 1},
        {32, 32, 1}, {32, 64, 2}, {64, 64, 1}, {64, 64, 1}, {64, 64, 1}, {64, 96, 1}};
    return shapes[i];
}

// features[i] on x; the builder's next tensors must be block i's (see
// NetBuilder::seek). features[0] is conv-BN-ReLU6, features[1] a depthwise
// block without expansion, the rest inverted residuals with expansion 6,
// residual when the shape is kept.
inline Map mobilenet_block(NetBuilder &b, Map x, int i) {
    const float eps = 1e-3f;
    const Padding tf = Padding::TfSame;
    const MobileNetBlock s = mobilenet_block_shape(i);
    const std::string f = "features." + std::to_string(i);
    if (i == 0) return b.relu6(b.conv2d_bn(x, f + ".0", f + ".1", s.cout, 3, false, s.stride, 1, eps, tf));
    if (i == 1) {
        x = b.relu6(b.conv2d_bn(x, f + ".conv.0.0", f + ".conv.0.1", s.cin, 3, false, 1, s.cin, eps, tf));
        return b.conv2d_bn(x, f + ".conv.1", f + ".conv.2", s.cout, 1, false, 1, 1, eps, tf);
    }
    const std::string p = f + ".conv.";
    const int hidden = s.cin * 6;
    Map h = b.relu6(b.conv2d_bn(x, p + "0.0", p + "0.1", hidden, 1, false, 1, 1, eps, tf));
    h = b.relu6(b.conv2d_bn(h, p + "1.0", p + "1.1", hidden, 3, false, s.stride, hidden, eps, tf));
    h = b.conv2d_bn(h, p + "2", p + "3", s.cout, 1, false, 1, 1, eps, tf);
    return s.stride == 1 && s.cin == s.cout ? b.add(h, x) : h;
}

// The first tensor of block i, for NetBuilder::seek.
inline std::string mobilenet_block_first_tensor(int i) {
    return "features." + std::to_string(i) + (i == 0 ? ".0.weight" : ".conv.0.0.weight");
}

}  // namespace lumos
