/* nets.h — networks by name: their tensors and generated pipelines.
 *
 * A network is a folder under generators/nets/ (net.h, tensors.def) and one
 * line of the registry, generators/nets/CMakeLists.txt, from which CMake
 * writes the production table this file serves (lumos_net_registry.h). The
 * loss networks (stages/train_losses.c) and test-only networks (tests/) are
 * lumos__net_def values of their own, in no table. */
#ifndef LUMOS_STAGE_NETS_H
#define LUMOS_STAGE_NETS_H

#include <stddef.h>
#include <stdint.h>

/* One tensor: its state_dict name and PyTorch shape. */
typedef struct lumos__tensor_spec {
    const char *name;
    int ndim;
    int64_t shape[4];
} lumos__tensor_spec;

/* A line of a tensors.def: LUMOS_TENSOR(net, name, d0, d1, d2, d3), where
 * trailing 0s mark absent dimensions. */
typedef struct lumos__tensor_entry {
    const char *net;
    lumos__tensor_spec spec;
} lumos__tensor_entry;
#define LUMOS__TENSOR_ENTRY(net, name, d0, d1, d2, d3) \
    {#net, {name, (d0 > 0) + (d1 > 0) + (d2 > 0) + (d3 > 0), {d0, d1, d2, d3}}},

/* A generated pipeline, cast back to its own signature by its task's
 * binding (stages/learned_isp.c for the ISPs). */
typedef void (*lumos__pipeline_fn)(void);
typedef struct lumos__pipeline {
    const char *variant; /* "u8", "stats0", ... */
    lumos__pipeline_fn fn;
} lumos__pipeline;

typedef struct lumos__net_def {
    const char *name;  /* public: lumos_net_load, the weights' and checkpoints' "lumos_net" */
    const char *task;  /* "isp" */
    const char *tensors_of;               /* its net in the tensor lines of `catalogue` */
    const lumos__tensor_entry *catalogue; /* tensor lines, others' too */
    size_t n_catalogue;
    const lumos__pipeline *pipelines;     /* {NULL, NULL}-terminated; NULL: none */
    lumos__pipeline_fn backward;          /* parameter gradient; NULL: inference only */
} lumos__net_def;

/* The production network called `name`, or NULL. */
const lumos__net_def *lumos__net_find(const char *name);
/* The i-th production network of `task` (NULL: any task), or NULL past the last. */
const lumos__net_def *lumos__net_of_task(const char *task, int i);

/* Its tensors in flat-buffer order: the i-th (NULL past the last), their
 * floats in all, and the offset of one by name (-1 when it has none). */
const lumos__tensor_spec *lumos__net_tensor(const lumos__net_def *net, size_t i);
size_t lumos__net_weight_count(const lumos__net_def *net);
ptrdiff_t lumos__net_tensor_offset(const lumos__net_def *net, const char *name);
size_t lumos__tensor_elements(const lumos__tensor_spec *t);

/* Its pipeline `variant`, or NULL when it has none. */
lumos__pipeline_fn lumos__net_pipeline(const lumos__net_def *net, const char *variant);

#endif
