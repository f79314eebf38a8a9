/* nets.c — the production network table (generated from the registry,
 * generators/nets/CMakeLists.txt) and lookups on any network's tensors. */
#include "stages/nets.h"

#include <string.h>

#define LUMOS_TENSOR LUMOS__TENSOR_ENTRY
#include "lumos_net_registry.h"
#undef LUMOS_TENSOR

static const lumos__net_def registry[] = {LUMOS_NET_REGISTRY};
enum { N_NETS = sizeof registry / sizeof registry[0] };

const lumos__net_def *lumos__net_find(const char *name)
{
    for (int i = 0; name && i < N_NETS; i++)
        if (!strcmp(registry[i].name, name)) return &registry[i];
    return NULL;
}

const lumos__net_def *lumos__net_of_task(const char *task, int i)
{
    for (int k = 0; k < N_NETS; k++)
        if ((!task || !strcmp(registry[k].task, task)) && i-- == 0) return &registry[k];
    return NULL;
}

const lumos__tensor_spec *lumos__net_tensor(const lumos__net_def *net, size_t i)
{
    for (size_t k = 0; k < net->n_catalogue; k++)
        if (!strcmp(net->catalogue[k].net, net->tensors_of) && i-- == 0)
            return &net->catalogue[k].spec;
    return NULL;
}

size_t lumos__tensor_elements(const lumos__tensor_spec *t)
{
    size_t e = 1;
    for (int d = 0; d < t->ndim; d++) e *= (size_t)t->shape[d];
    return e;
}

ptrdiff_t lumos__net_tensor_offset(const lumos__net_def *net, const char *name)
{
    size_t at = 0;
    const lumos__tensor_spec *t;
    for (size_t i = 0; (t = lumos__net_tensor(net, i)); i++) {
        if (!strcmp(t->name, name)) return (ptrdiff_t)at;
        at += lumos__tensor_elements(t);
    }
    return -1;
}

size_t lumos__net_weight_count(const lumos__net_def *net)
{
    size_t n = 0;
    const lumos__tensor_spec *t;
    for (size_t i = 0; (t = lumos__net_tensor(net, i)); i++) n += lumos__tensor_elements(t);
    return n;
}

lumos__pipeline_fn lumos__net_pipeline(const lumos__net_def *net, const char *variant)
{
    for (const lumos__pipeline *p = net->pipelines; p && p->variant; p++)
        if (!strcmp(p->variant, variant)) return p->fn;
    return NULL;
}
