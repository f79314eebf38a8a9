// EfficientISP: (4, W/2, H/2) packed mosaic -> (3, W, H); conv widths 12, 12.
#pragma once

#include "../isp.h"

namespace lumos {

inline const RegisterIspNet register_efficient = register_three_conv_isp("efficient", 12, 12);

}  // namespace lumos
