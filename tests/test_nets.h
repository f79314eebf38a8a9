/* test_nets.h — the test-only networks (generators/testing/tensors.def:
 * layer_zoo, grad_conv, grad_conv_s2) as lumos__net_def values, and the
 * registered networks by name, for the tests. */
#ifndef LUMOS_TEST_NETS_H
#define LUMOS_TEST_NETS_H

#include <stdio.h>
#include <stdlib.h>

#include "stages/nets.h"

static const lumos__tensor_entry test_net_tensors[] = {
#define LUMOS_TENSOR LUMOS__TENSOR_ENTRY
#include "generators/testing/tensors.def"
#undef LUMOS_TENSOR
};

#define TEST_NET(id)                                                                       \
    {#id, "test", #id, test_net_tensors, sizeof test_net_tensors / sizeof *test_net_tensors, \
     NULL, NULL}
static const lumos__net_def test_net_layer_zoo = TEST_NET(layer_zoo);
static const lumos__net_def test_net_grad_conv = TEST_NET(grad_conv);
static const lumos__net_def test_net_grad_conv_s2 = TEST_NET(grad_conv_s2);
#undef TEST_NET

/* A registered network; a test cannot go on without it. */
static inline const lumos__net_def *net_named(const char *name)
{
    const lumos__net_def *net = lumos__net_find(name);
    if (!net) {
        fprintf(stderr, "FAIL: no network '%s' in the registry\n", name);
        exit(1);
    }
    return net;
}

#endif
