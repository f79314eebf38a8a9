/* mobilenet_tensors.h — the tensors of MobileNetV2's features[0:12]
 * (torchvision names and shapes) for any network that holds them: the loss
 * networks' frozen feature extractor (losses/tensors.def) and the networks
 * that embed part of it (nets/uhd/tensors.def). Included by tensors.def
 * files, in C and C++ alike. */
#ifndef LUMOS_MOBILENET_TENSORS_H
#define LUMOS_MOBILENET_TENSORS_H

#define LUMOS_MBV2_BN(net, prefix, n)                        \
    LUMOS_TENSOR(net, prefix ".weight", n, 0, 0, 0)          \
    LUMOS_TENSOR(net, prefix ".bias", n, 0, 0, 0)            \
    LUMOS_TENSOR(net, prefix ".running_mean", n, 0, 0, 0)    \
    LUMOS_TENSOR(net, prefix ".running_var", n, 0, 0, 0)
/* An inverted residual with expansion: 1×1 expand, 3×3 depthwise, 1×1 project. */
#define LUMOS_MBV2_BLOCK(net, i, cin, hidden, cout)                           \
    LUMOS_TENSOR(net, "features." #i ".conv.0.0.weight", hidden, cin, 1, 1)   \
    LUMOS_MBV2_BN(net, "features." #i ".conv.0.1", hidden)                    \
    LUMOS_TENSOR(net, "features." #i ".conv.1.0.weight", hidden, 1, 3, 3)     \
    LUMOS_MBV2_BN(net, "features." #i ".conv.1.1", hidden)                    \
    LUMOS_TENSOR(net, "features." #i ".conv.2.weight", cout, hidden, 1, 1)    \
    LUMOS_MBV2_BN(net, "features." #i ".conv.3", cout)

#define LUMOS_MBV2_FEATURES_0_10(net)                                 \
    LUMOS_TENSOR(net, "features.0.0.weight", 32, 3, 3, 3)             \
    LUMOS_MBV2_BN(net, "features.0.1", 32)                            \
    LUMOS_TENSOR(net, "features.1.conv.0.0.weight", 32, 1, 3, 3)      \
    LUMOS_MBV2_BN(net, "features.1.conv.0.1", 32)                     \
    LUMOS_TENSOR(net, "features.1.conv.1.weight", 16, 32, 1, 1)       \
    LUMOS_MBV2_BN(net, "features.1.conv.2", 16)                       \
    LUMOS_MBV2_BLOCK(net, 2, 16, 96, 24)                              \
    LUMOS_MBV2_BLOCK(net, 3, 24, 144, 24)                             \
    LUMOS_MBV2_BLOCK(net, 4, 24, 144, 32)                             \
    LUMOS_MBV2_BLOCK(net, 5, 32, 192, 32)                             \
    LUMOS_MBV2_BLOCK(net, 6, 32, 192, 32)                             \
    LUMOS_MBV2_BLOCK(net, 7, 32, 192, 64)                             \
    LUMOS_MBV2_BLOCK(net, 8, 64, 384, 64)                             \
    LUMOS_MBV2_BLOCK(net, 9, 64, 384, 64)                             \
    LUMOS_MBV2_BLOCK(net, 10, 64, 384, 64)
#define LUMOS_MBV2_FEATURES_11(net) LUMOS_MBV2_BLOCK(net, 11, 64, 384, 96)

#endif
