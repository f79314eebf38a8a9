// dereflect.h — the reflection-removal task: what every network of the
// family gives its generators (dereflect_generator.cpp), so that a new one
// is its folder under generators/nets/ and one registry line.
//
// A network of the family sees the whole photo at low resolution and works
// at full resolution only locally: `low` maps the quarter-resolution image
// to a map at 1/scale of full resolution; `full` maps the full-resolution
// image and that map to the transmission T and reflection R, reaching
// `apron` pixels around each output pixel, so it runs in tiles that equal
// the untiled result (stages/dereflect_net.c, stages/tiler.c).
#pragma once

#include <functional>
#include <map>
#include <stdexcept>
#include <string>

#include "../layers.h"

namespace lumos {

struct DereflectNet {
    int multiple;      // the input's sides (the photo is padded to them by reflection)
    int scale;         // the low map's downsampling from full resolution
    int low_channels;
    int apron;         // the full-resolution pass's reach, in pixels
    std::function<Map(NetBuilder &, const Map &quarter)> low;
    // (T, R): 6 channels, T first
    std::function<Map(NetBuilder &, const Map &image, const Map &low)> full;

    // Training runs `low` in pieces, each piece's gradient a pipeline of its
    // own: Halide's lowering grows with the square of a pipeline's stages,
    // and one gradient of the whole network would take hours to build.
    // low(q) = pieces.back()(… pieces[0](first(taps(q), q))): the frozen
    // feature taps (data to the tape), then `first`, then one map to the
    // next, every map between them at 1/scale of full resolution.
    std::function<std::vector<Map>(NetBuilder &, const Map &quarter)> taps;
    std::vector<int> tap_channels, tap_strides;  // stride: from the quarter image
    std::function<Map(NetBuilder &, const std::vector<Map> &taps, const Map &quarter)> first;
    std::vector<std::function<Map(NetBuilder &, const Map &)>> pieces;
    std::vector<int> piece_channels;  // first's output, then each piece's (the last: low_channels)
};

inline std::map<std::string, DereflectNet> &dereflect_nets() {
    static std::map<std::string, DereflectNet> nets;
    return nets;
}

struct RegisterDereflectNet {
    RegisterDereflectNet(const char *name, DereflectNet net) { dereflect_nets()[name] = std::move(net); }
};

inline const DereflectNet &dereflect_net(const std::string &name) {
    auto it = dereflect_nets().find(name);
    if (it == dereflect_nets().end()) throw std::runtime_error("no dereflect network " + name);
    return it->second;
}

}  // namespace lumos
