// RobustISP: (4, W/2, H/2) packed mosaic -> (3, W, H); conv widths 16, 4.
#pragma once

#include "../isp.h"

namespace lumos {

inline const RegisterIspNet register_robust = register_three_conv_isp("robust", 16, 4);

}  // namespace lumos
