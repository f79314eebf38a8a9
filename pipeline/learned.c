/* learned.c — lumos_net: a learned ISP's weights, and running it on a RAW. */
#include "pipeline/learned.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/raw_internal.h"
#include "io/weights.h"
#include "pipeline/agnostic.h"
#include "core/context.h"
#include "stages/learned_isp.h"

struct lumos_net {
    const lumos__net_def *def;
    lumos_net_input input;
    int exposed;  /* trained with the exposure in its input (see lumos_isp_learned) */
    float *flat;  /* its tensors.def order */
    size_t count;
};

const char *lumos_net_list(const char *task, int i)
{
    const lumos__net_def *def = lumos__net_of_task(task, i);
    return def ? def->name : NULL;
}

const char *lumos_net_name(const lumos_net *net) { return net ? net->def->name : NULL; }
const char *lumos_net_task(const lumos_net *net) { return net ? net->def->task : NULL; }
const lumos__net_def *lumos__net_def_of(const lumos_net *net) { return net ? net->def : NULL; }

int lumos__net_from_flat(lumos_ctx *ctx, const lumos__net_def *def, const float *flat, size_t count,
                         lumos_net **out)
{
    *out = NULL;
    if (!def) return lumos__fail(ctx, LUMOS_E_ARG, "no network given");
    if (count != lumos__net_weight_count(def))
        return lumos__fail(ctx, LUMOS_E_ARG, "%s needs %zu weights, not %zu", def->name,
                           lumos__net_weight_count(def), count);
    lumos_net *net = calloc(1, sizeof *net);
    float *copy = malloc(count * sizeof *copy);
    if (!net || !copy) {
        free(net);
        free(copy);
        return lumos__fail(ctx, LUMOS_E_NOMEM, "out of memory");
    }
    memcpy(copy, flat, count * sizeof *copy);
    net->def = def;
    net->flat = copy;
    net->count = count;
    *out = net;
    return LUMOS_OK;
}

lumos_status lumos_net_load(lumos_ctx *ctx, const char *name, const char *weights_path,
                            lumos_net **out)
{
    if (!out) return lumos__fail(ctx, LUMOS_E_ARG, "lumos_net_load: NULL argument");
    *out = NULL;
    const lumos__net_def *def = lumos__net_find(name);
    if (!def) return lumos__fail(ctx, LUMOS_E_ARG, "no network called '%s'", name ? name : "(null)");
    /* The shipped default: data/weights/NAME.safetensors, trained by
     * `lumos train` (README), under $LUMOS_DATA_DIR or the source tree. */
    char shipped[4096];
    if (!weights_path) {
        const char *dir = getenv("LUMOS_DATA_DIR");
        snprintf(shipped, sizeof shipped, "%s/weights/%s.safetensors", dir && *dir ? dir : LUMOS_DATA_DIR,
                 def->name);
        if (access(shipped, R_OK) != 0)
            return lumos__fail(ctx, LUMOS_E_UNSUPPORTED,
                               "no default weights for the %s network (%s: not found)", def->name,
                               shipped);
        weights_path = shipped;
    }
    size_t count = lumos__net_weight_count(def);
    float *flat = malloc(count * sizeof *flat);
    if (!flat) return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", weights_path);
    lumos_net_input input = LUMOS_INPUT_SENSOR;
    int exposed = 0;
    int rc = lumos__flat_from_safetensors(ctx, def, weights_path, 1, flat, &input, &exposed);
    if (rc == LUMOS_OK) rc = lumos__net_from_flat(ctx, def, flat, count, out);
    if (rc == LUMOS_OK) {
        (*out)->input = input;
        (*out)->exposed = exposed;
    }
    free(flat);
    return rc;
}

const char *lumos_net_input_name(lumos_net_input input)
{
    return input == LUMOS_INPUT_AGNOSTIC ? "agnostic" : "sensor";
}

lumos_net_input lumos_net_get_input(const lumos_net *net)
{
    return net ? net->input : LUMOS_INPUT_SENSOR;
}

int lumos_net_takes_exposure(const lumos_net *net)
{
    return net ? net->exposed : 0;
}

void lumos__net_set_exposed(lumos_net *net, int exposed)
{
    if (net) net->exposed = exposed;
}

int lumos__flat_from_safetensors(lumos_ctx *ctx, const lumos__net_def *def, const char *path, int exact,
                                 float *flat, lumos_net_input *input, int *exposed)
{
    lumos__weights *w = NULL;
    int rc = lumos__weights_open(ctx, path, &w);
    if (rc) return rc;
    if (input) {
        /* weights written before the mode existed are the sensor's */
        const char *mode = lumos__weights_metadata(w, "lumos_input");
        if (!mode || !strcmp(mode, "sensor")) *input = LUMOS_INPUT_SENSOR;
        else if (!strcmp(mode, "agnostic")) *input = LUMOS_INPUT_AGNOSTIC;
        else rc = lumos__fail(ctx, LUMOS_E_FORMAT, "%s: unknown lumos_input '%s' (sensor or agnostic)",
                              path, mode);
    }
    if (exposed && rc == LUMOS_OK) {
        /* weights written before the exposure was an input ignore it */
        const char *e = lumos__weights_metadata(w, "lumos_exposure");
        *exposed = e && !strcmp(e, "input");
        if (e && !*exposed)
            rc = lumos__fail(ctx, LUMOS_E_FORMAT, "%s: unknown lumos_exposure '%s' (input)", path, e);
    }
    const lumos__tensor_spec *t;
    size_t at = 0;
    for (size_t i = 0; rc == LUMOS_OK && (t = lumos__net_tensor(def, i)); i++) {
        const float *data = NULL;
        rc = lumos__weights_get(ctx, w, t->name, t->ndim, t->shape, &data);
        if (rc == LUMOS_OK) memcpy(flat + at, data, lumos__tensor_elements(t) * sizeof *flat);
        at += lumos__tensor_elements(t);
    }
    /* exact: the network's state_dict and nothing else */
    for (size_t i = 0; exact && rc == LUMOS_OK && i < lumos__weights_count(w); i++) {
        const char *name = lumos__weights_name(w, i);
        if (lumos__net_tensor_offset(def, name) < 0)
            rc = lumos__fail(ctx, LUMOS_E_FORMAT, "%s: tensor '%s' is not part of the %s network",
                             path, name, def->name);
    }
    lumos__weights_free(w);
    return rc;
}

void lumos_net_free(lumos_net *net)
{
    if (!net) return;
    free(net->flat);
    free(net);
}

const float *lumos__net_flat(const lumos_net *net, size_t *count)
{
    *count = net ? net->count : 0;
    return net ? net->flat : NULL;
}

int lumos__mosaic_levels(lumos_ctx *ctx, const lumos_raw_info *in, float exposure_ev,
                         float black[4], float scale[4], int *cfa_x, int *cfa_y)
{
    const float gain = exp2f(exposure_ev);
    for (int s = 0; s < 4; s++) {
        float range = in->white - in->black[s];
        if (!(range > 0))
            return lumos__fail(ctx, LUMOS_E_FORMAT, "white level %g is not above black %g",
                               in->white, in->black[s]);
        black[s] = in->black[s];
        scale[s] = 1.f / range;
        scale[s] *= gain;
    }
    lumos__cfa_offsets(in->cfa, cfa_x, cfa_y);
    return LUMOS_OK;
}

/* The mosaic and its levels as the pipelines take them. */
static int run(lumos_ctx *ctx, const lumos_net *net, const lumos_raw *raw, float exposure_ev,
               int bits, void **data, size_t *row)
{
    if (!net || !raw) return lumos__fail(ctx, LUMOS_E_ARG, "lumos_isp_learned: NULL argument");
    if (strcmp(net->def->task, "isp"))
        return lumos__fail(ctx, LUMOS_E_ARG, "%s is not an ISP network", net->def->name);
    if (!(exposure_ev >= -16 && exposure_ev <= 16))
        return lumos__fail(ctx, LUMOS_E_ARG, "exposure %g EV is out of range -16..16", exposure_ev);
    if (exposure_ev != 0 && !net->exposed)
        return lumos__fail(ctx, LUMOS_E_UNSUPPORTED,
                           "these %s weights were trained without the exposure as an input; "
                           "only 0 EV is supported",
                           net->def->name);
    const lumos_raw_info *in = &raw->info;
    if (!in->is_bayer || !raw->mosaic)
        return lumos__fail(ctx, LUMOS_E_UNSUPPORTED,
                           "the %s ISP needs a 2x2 Bayer mosaic; this sensor has none",
                           net->def->name);
    const uint16_t *mosaic = raw->mosaic;
    size_t stride = raw->stride;
    uint16_t *canonical = NULL;
    lumos_raw_info canonical_info;
    if (net->input == LUMOS_INPUT_AGNOSTIC) {
        canonical = malloc((size_t)in->width * in->height * sizeof *canonical);
        if (!canonical) return lumos__fail(ctx, LUMOS_E_NOMEM, "out of memory");
        int rc = lumos__agnostic_mosaic(ctx, mosaic, in->width, in->height, stride, in, canonical,
                                        &canonical_info);
        if (rc) {
            free(canonical);
            return rc;
        }
        in = &canonical_info;
        mosaic = canonical;
        stride = (size_t)in->width * sizeof *canonical;
    }
    float black[4], scale[4];
    int cfa_x, cfa_y;
    int rc = lumos__mosaic_levels(ctx, in, exposure_ev, black, scale, &cfa_x, &cfa_y);
    if (rc == LUMOS_OK)
        rc = lumos__stage_learned(ctx, net->def, net->flat, mosaic, in->width, in->height, stride,
                                  cfa_x, cfa_y, black, scale, bits, data, row);
    free(canonical);
    return rc;
}

lumos_status lumos_isp_learned(lumos_ctx *ctx, const lumos_net *net, const lumos_raw *raw,
                               float exposure_ev, int bits, lumos_image *out)
{
    if (!out) return lumos__fail(ctx, LUMOS_E_ARG, "lumos_isp_learned: NULL argument");
    memset(out, 0, sizeof *out);
    if (bits != 8 && bits != 16) return lumos__fail(ctx, LUMOS_E_ARG, "bits must be 8 or 16");
    void *data = NULL;
    size_t row = 0;
    int rc = run(ctx, net, raw, exposure_ev, bits, &data, &row);
    if (rc) return rc;
    out->width = raw->info.width;
    out->height = raw->info.height;
    out->channels = 3;
    out->bits = bits;
    out->stride = row;
    out->data = data;
    out->space = LUMOS_SPACE_SRGB;
    return LUMOS_OK;
}

int lumos__isp_learned_f32(lumos_ctx *ctx, const lumos_net *net, const lumos_raw *raw,
                           float exposure_ev, float **out, size_t *row_floats)
{
    void *data = NULL;
    size_t row = 0;
    int rc = run(ctx, net, raw, exposure_ev, 32, &data, &row);
    *out = data;
    *row_floats = row / sizeof(float);
    return rc;
}
