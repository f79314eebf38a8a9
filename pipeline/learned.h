/* learned.h — lumos_net internals, for tests. */
#ifndef LUMOS_PIPELINE_LEARNED_H
#define LUMOS_PIPELINE_LEARNED_H

#include "lumos.h"

/* A network from weights already in flat-buffer order (copied). */
int lumos__net_from_flat(lumos_ctx *ctx, lumos_isp_kind kind, const float *flat, size_t count,
                         lumos_net **out);

/* The network's own float output (no clamp), interleaved RGB, *out malloc'ed
 * with rows *row_floats apart. */
int lumos__isp_learned_f32(lumos_ctx *ctx, const lumos_net *net, const lumos_raw *raw, float **out,
                           size_t *row_floats);

#endif
