// tape.h — what a network's layers record: the parameters they read from
// the flat weight buffer (in a tensor list's order, names and shapes checked
// while the generator runs), and the tape of their hand-written adjoints,
// walked backwards by backward(). The layers themselves are in layers.h,
// their schedules in schedule.h.
//
// Feature maps are Funcs f(c, x, y) over a spatial domain [0, width) ×
// [0, height).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "Halide.h"

namespace lumos {

using Halide::Expr;
using Halide::Func;
using Halide::RDom;
using Halide::TailStrategy;
using Halide::Tuple;
using Halide::Var;

struct Map {
    Func f;          // f(c, x, y)
    int channels;
    Expr width, height;
    int node = -1;   // its place on the builder's tape (-1: not on it, no gradient)
};

// One tensor of a network's tensors.def (generators/nets/NAME/, losses/,
// testing/), all of which the registry lists in lumos_tensors.def.
struct TensorSpec {
    const char *net;
    const char *name;
    int dims[4];
};

inline const std::vector<TensorSpec> &all_tensors() {
    static const std::vector<TensorSpec> specs = {
#define LUMOS_TENSOR(net, name, d0, d1, d2, d3) {#net, name, {d0, d1, d2, d3}},
#include "lumos_tensors.def"
#undef LUMOS_TENSOR
    };
    return specs;
}

class Tape {
public:
    // `flat` is the network's weight buffer (all tensors of `net` back to back).
    Tape(Func flat, const std::string &net) : flat_(flat) {
        for (const TensorSpec &t : all_tensors())
            if (net == t.net) specs_.push_back(t);
        if (specs_.empty()) throw std::runtime_error("no tensors for network " + net);
    }

    // The same over a tensor list of the caller's own (test-only networks).
    Tape(Func flat, const std::vector<TensorSpec> &specs) : flat_(flat), specs_(specs) {
        if (specs_.empty()) throw std::runtime_error("empty tensor list");
    }

    // A builder for weightless layers (a loss's preprocessing).
    Tape() = default;

    // Number of floats in the flat buffer.
    static int64_t flat_size(const std::string &net) {
        int64_t n = 0;
        for (const TensorSpec &t : all_tensors())
            if (net == t.net) n += elements(t);
        return n;
    }

    static int64_t flat_size(const std::vector<TensorSpec> &specs) {
        int64_t n = 0;
        for (const TensorSpec &t : specs) n += elements(t);
        return n;
    }

    // Continue at tensor `name` (a pipeline that builds one part of a
    // network: a block of the feature network).
    void seek(const std::string &name) {
        int64_t at = 0;
        for (size_t i = 0; i < specs_.size(); i++) {
            if (name == specs_[i].name) {
                next_ = i;
                offset_ = at;
                return;
            }
            at += elements(specs_[i]);
        }
        throw std::runtime_error("no tensor " + name);
    }

    // Every tensor must have been consumed, in order.
    void finish() const {
        if (next_ != specs_.size())
            throw std::runtime_error(std::string("unused tensor ") + specs_[next_].name);
    }

    // A network input put on the tape, so that backward() can give its
    // gradient (a feature network's input image, a discriminator's).
    Map input(const Map &m) { return record({m.f, m.channels, m.width, m.height}, {}, nullptr); }

    // A layer written outside layers.h (a loss's preprocessing, say): its
    // output over its inputs, and its adjoint (dL/d(out) → dL/d(each input),
    // undefined Funcs for none), put on the tape like any other.
    using Backward = std::function<std::vector<Func>(Func)>;
    Map custom(const Map &out, const std::vector<Map> &inputs, Backward backward) {
        return record(out, inputs, backward);
    }

    // ------------------------------------------------------------- backward
    //
    // Reverse mode over the tape every layer writes: each layer's
    // adjoint is written by hand next to its forward (Halide's
    // propagate_adjoints is wrong through pixel shuffle and slow here,
    // halide14-notes.md), so a network defined once for inference is
    // differentiated from the very same definition.
    struct Gradients {
        std::vector<Map> of_node;  // dL/d(each tape entry's output); f undefined if none
        Func params;               // dL/dθ(i) over the flat buffer (zero for frozen layers)
        const Map &of(const Map &m) const { return of_node.at(m.node); }
    };

    // Gradients of L given dL/d(out) = grad_out (a Func over out's domain).
    // with_params: also the parameters' gradient (costs the weight
    // reductions); else only maps' gradients (a frozen feature network).
    Gradients backward(const Map &out, Func grad_out, bool with_params) {
        return backward({{out, grad_out}}, with_params);
    }
    // The same from several outputs at once (feature maps a loss taps at
    // several depths): L's gradient with respect to each is given.
    Gradients backward(const std::vector<std::pair<Map, Func>> &seeds, bool with_params) {
        want_params_ = with_params;
        std::vector<std::vector<Func>> parts(nodes_.size());
        int last = -1;
        for (const auto &s : seeds) {
            if (s.first.node < 0) throw std::runtime_error("backward: output is not on the tape");
            parts[s.first.node].push_back(s.second);
            last = std::max(last, s.first.node);
        }
        Gradients gr;
        gr.of_node.resize(nodes_.size());
        for (int id = last; id >= 0; id--) {
            if (parts[id].empty()) continue;
            const Node &n = nodes_[id];
            Func total = parts[id][0];
            if (parts[id].size() > 1) {
                total = Func{"grad_sum"};
                Expr e = 0.f;
                for (Func p : parts[id]) e += p(c, x, y);
                total(c, x, y) = e;
            }
            grad_maps_.push_back({total, n.out.channels, n.out.width, n.out.height});
            gr.of_node[id] = grad_maps_.back();
            if (!n.backward) continue;
            std::vector<Func> in = n.backward(total);
            for (size_t k = 0; k < n.inputs.size(); k++)
                if (n.inputs[k] >= 0 && in[k].defined()) parts[n.inputs[k]].push_back(in[k]);
        }
        // Each parameter tensor's gradient written into its own range of the
        // flat buffer (an update per tensor, not a select over all of them
        // for every element).
        Var i{"i"};
        gr.params = Func{"grad_params"};
        gr.params(i) = 0.f;
        for (const ParamGrad &p : param_grads_) {
            RDom j(0, (int)p.count);
            gr.params(Expr((int)p.offset) + j) = p.value(j);
        }
        params_funcs_.push_back(gr.params);
        return gr;
    }

    // ------------------------------------------------- for the schedule
    // Every conv this builder made, in order: its input and output maps
    // (out.f is the conv's Func), zero-padded input and repacked weights.
    struct ConvRecord {
        Map in, out;
        Func padded;
        Func w;  // (co, kx, ky, ci)
        int k, stride, groups;
        Expr pad_x, pad_y;           // padding before (left, top)
        int64_t w_offset, b_offset;  // in the flat buffer; -1: none / frozen
    };
    const std::vector<ConvRecord> &convs() const { return conv_records_; }
    const std::vector<Func> &weights() const { return weights_; }
    const std::vector<Func> &resamples() const { return resamples_; }
    const std::vector<Func> &pointwise_maps() const { return pointwise_; }
    // Reductions across a map's channels f(x, y) (update: over one RDom of
    // the channels): spatial attention's sum and maximum.
    const std::vector<Func> &channel_reductions() const { return channel_reductions_; }
    // Stages of the layers outside layers.h (layers_*.h): conv-shaped sums
    // over a map's domain, and everything else they compute at root.
    const std::vector<Map> &sums() const { return sums_; }
    const std::vector<Func> &stages() const { return stages_; }
    // The activation applied directly to a conv's output, if any (undefined
    // Func otherwise): the schedule computes the two together.
    Func activation_of(const Func &conv) const {
        for (const auto &a : activations_)
            if (a.first.name() == conv.name()) return a.second;
        return Func();
    }

    Var c{"c"}, x{"x"}, y{"y"};
    Var co{"co"}, kx{"kx"}, ky{"ky"}, ci{"ci"};

protected:
    struct Node {
        std::vector<int> inputs;  // tape ids (-1: not on the tape)
        Map out;
        Backward backward;        // dL/d(out) -> dL/d(each input); empty for inputs
    };
    struct ParamGrad {
        int64_t offset, count;
        Func value;  // (j), j < count, in the tensor's PyTorch layout
    };
    struct WeightGrad {
        Func f;  // (co, kx, ky, ci)
    };
    // What a conv's adjoint made, for its schedule.
    struct ConvGrad {
        size_t conv;        // index into convs()
        Func grad_out;      // dL/d(out), zero outside the output (c, x, y)
        Func w_transposed;  // (ci, kx, ky, co)
        Func grad_in;       // (c, x, y)
        Func grad_w;        // (co, kx, ky, ci); undefined without parameters
    };

    static int64_t elements(const TensorSpec &t) {
        int64_t n = 1;
        for (int d : t.dims)
            if (d) n *= d;
        return n;
    }

    static std::string clean(std::string s) {
        for (char &ch : s)
            if (ch == '.') ch = '_';
        return s;
    }

    static Expr inside(const Map &m, Expr px, Expr py) {
        return px >= 0 && px < m.width && py >= 0 && py < m.height;
    }
    // g over m's domain at (ch, px, py), clamped into it (callers select).
    static Expr read(Func g, const Map &m, Expr ch, Expr px, Expr py) {
        return g(ch, clamp(px, 0, m.width - 1), clamp(py, 0, m.height - 1));
    }

    Map record(Map out, const std::vector<Map> &inputs, Backward backward) {
        Node n;
        for (const Map &m : inputs) n.inputs.push_back(m.node);
        out.node = (int)nodes_.size();
        n.out = out;
        n.backward = backward;
        nodes_.push_back(n);
        return out;
    }

    // The offset of the next tensor, which must be `name` with `shape`.
    int64_t take(const std::string &name, std::vector<int> shape) {
        if (next_ >= specs_.size()) throw std::runtime_error("no tensor left for " + name);
        const TensorSpec &t = specs_[next_];
        shape.resize(4, 0);
        if (name != t.name) throw std::runtime_error("expected " + name + ", the tensor list has " + t.name);
        for (int i = 0; i < 4; i++)
            if (shape[i] != t.dims[i]) throw std::runtime_error("shape mismatch for " + name);
        int64_t at = offset_;
        offset_ += elements(t);
        next_++;
        return at;
    }

    Func flat_;
    std::vector<TensorSpec> specs_;
    size_t next_ = 0;
    int64_t offset_ = 0;
    std::vector<Func> weights_, resamples_, pointwise_, channel_reductions_;
    std::vector<std::pair<Func, Func>> activations_;  // (conv, its activation)
    std::vector<ConvRecord> conv_records_;
    std::vector<Node> nodes_;
    bool want_params_ = false, planar_ = false, no_bias_ = false;
    Expr bias_grad_scale_;  // undefined: 1
    std::vector<ParamGrad> param_grads_;
    std::vector<WeightGrad> weight_grads_;
    std::vector<ConvGrad> conv_grads_;
    std::vector<Map> grad_maps_;
    std::vector<Func> backward_funcs_, reductions_, params_funcs_;
    std::vector<std::pair<Func, int>> gathers_;  // (a resampling's adjoint, its channels)
    std::map<std::string, std::pair<Func, Func>> repacked_;  // conv name -> (w, b)
    const Tape *shared_ = nullptr;
    // Stages of layers outside layers.h, for schedule_at_root: conv-shaped
    // sums f(c, x, y) (schedule_sum_tiled) and other stages (schedule_stage).
    std::vector<Map> sums_;
    std::vector<Func> stages_;

    // The repacked (w, b) of conv `name` in the builder shared from, if any.
    const std::pair<Func, Func> *shared_conv(const std::string &name) const {
        if (!shared_ || !shared_->repacked_.count(name)) return nullptr;
        return &shared_->repacked_.at(name);
    }
};

}  // namespace lumos
