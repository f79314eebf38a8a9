/* learned.h — lumos_net internals, for the trainer and tests. */
#ifndef LUMOS_PIPELINE_LEARNED_H
#define LUMOS_PIPELINE_LEARNED_H

#include "lumos.h"
#include "stages/nets.h"

/* A network from weights already in flat-buffer order (copied). */
int lumos__net_from_flat(lumos_ctx *ctx, const lumos__net_def *def, const float *flat, size_t count,
                         lumos_net **out);

/* The network's definition (tensors, pipelines). */
const lumos__net_def *lumos__net_def_of(const lumos_net *net);

/* The network's own float output (no clamp), interleaved RGB, *out malloc'ed
 * with rows *row_floats apart. */
int lumos__isp_learned_f32(lumos_ctx *ctx, const lumos_net *net, const lumos_raw *raw,
                           float exposure_ev, float **out, size_t *row_floats);

/* Whether net takes the exposure in its input (lumos_net_takes_exposure);
 * for networks made from a flat buffer, which have no metadata. */
void lumos__net_set_exposed(lumos_net *net, int exposed);

/* A safetensors file's tensors of network `def` (a registered one's, a loss
 * network's or a test one's) into flat (lumos__net_weight_count floats), checking names and
 * shapes; exact: refuse tensors the network does not have. input (may be
 * NULL): the file's "lumos_input" metadata (none: sensor); exposed (may be
 * NULL): 1 when its "lumos_exposure" is "input" (none: 0). The file and the
 * tensor are named on failure. */
int lumos__flat_from_safetensors(lumos_ctx *ctx, const lumos__net_def *def, const char *path, int exact,
                                 float *flat, lumos_net_input *input, int *exposed);

/* The network's weights in flat-buffer order (*count floats), owned by net. */
const float *lumos__net_flat(const lumos_net *net, size_t *count);

/* A Bayer mosaic's levels as the learned ISP stages take them: black and
 * scale (2^exposure_ev / (white - black): the exposure brightens the
 * levelled mosaic, for inference and training alike) per site of the 2x2
 * block, and the CFA shift. LUMOS_E_FORMAT when white is not above a black
 * level. */
int lumos__mosaic_levels(lumos_ctx *ctx, const lumos_raw_info *info, float exposure_ev,
                         float black[4], float scale[4], int *cfa_x, int *cfa_y);

#endif
