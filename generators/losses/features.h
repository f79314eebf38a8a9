// features.h — the frozen feature networks of the losses, written with the
// layer vocabulary so their input gradients come from the same tape:
// MobileNetV2's features[0:12] (torchvision layout, ImageNet weights from
// npm nsfwjs, trained in TF: BN eps 1e-3 and TF "same" padding), and
// VGG-19's features[:36] (torchvision's, to relu5_4; user-supplied weights)
// for the content term.
//
// Training compiles them one block (MobileNetV2) or stage (VGG-19) per
// pipeline (loss_generator.cpp, chained by stages/train_losses.c): a
// pipeline of a whole network with its backward has ~1,000 stages, which
// Halide 14 takes over 20 minutes to lower.
#pragma once

#include <string>

#include "../layers.h"

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

// VGG-19 to relu5_4 in five stages split at its max pools: stage s is
// MaxPool2d(2) (s > 0) and then its 3×3 convs, each with a ReLU
// (torchvision: features[0:4], [4:9], [9:18], [18:27], [27:36]).
constexpr int kVggStages = 5;
inline int vgg_stage_width(int s) {
    static const int widths[kVggStages] = {64, 128, 256, 512, 512};
    return widths[s];
}
inline int vgg_stage_cin(int s) { return s == 0 ? 3 : vgg_stage_width(s - 1); }
inline int vgg_stage_convs(int s) { return s < 2 ? 2 : 4; }

// The torchvision index of stage s's first conv (0, 5, 10, 19, 28): each
// conv and each ReLU is a module, each stage but the last ends in a pool.
inline int vgg_stage_first_conv(int s) {
    int i = 0;
    for (int k = 0; k < s; k++) i += 2 * vgg_stage_convs(k) + 1;
    return i;
}

// The first tensor of stage s, for NetBuilder::seek.
inline std::string vgg_stage_first_tensor(int s) {
    return "features." + std::to_string(vgg_stage_first_conv(s)) + ".weight";
}

// Stage s on x; the builder's next tensors must be its convs'.
inline Map vgg_stage(NetBuilder &b, Map x, int s) {
    if (s > 0) x = b.max_pool2(x);
    for (int k = 0, i = vgg_stage_first_conv(s); k < vgg_stage_convs(s); k++, i += 2)
        x = b.relu(b.conv2d(x, "features." + std::to_string(i), vgg_stage_width(s), 3));
    return x;
}

}  // namespace lumos
