/* weights.h — safetensors reader and writer for the learned ISP networks'
 * weights.
 *
 * The format, as safetensors.torch.save_file writes it: an 8-byte
 * little-endian header length N, N bytes of JSON (an object mapping each
 * tensor name to {"dtype", "shape", "data_offsets": [begin, end]}, offsets
 * relative to the first byte after the header, plus an optional
 * "__metadata__" object of strings), padded with spaces; then the tensors'
 * bytes, little-endian, row-major.
 *
 * A file is read and validated whole when opened: every entry, every offset
 * (the tensors must tile the data section exactly, as the reference reader
 * requires), and the dtypes (F32, F16 and BF16 only; F16 and BF16 are
 * converted to float32 then). Afterwards a lookup only checks the shape.
 * Errors are LUMOS_E_FORMAT (damaged or not safetensors), LUMOS_E_UNSUPPORTED
 * (a valid file with a non-float32/16 dtype), LUMOS_E_IO, LUMOS_E_NOMEM and
 * LUMOS_E_ARG, each with a message naming the file. */
#ifndef LUMOS_WEIGHTS_H
#define LUMOS_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "lumos.h"

typedef struct lumos__weights lumos__weights;

/* Reads and validates a whole safetensors file. *out is NULL on failure. */
int lumos__weights_open(lumos_ctx *ctx, const char *path, lumos__weights **out);

/* The same from memory (the bytes are copied: buf need outlive the call
 * only); `name` is used in messages (NULL: "<memory>"). */
int lumos__weights_open_memory(lumos_ctx *ctx, const void *buf, size_t size, const char *name,
                               lumos__weights **out);

void lumos__weights_free(lumos__weights *w);

/* The float32 data of tensor `name` (row-major, 64-byte aligned, valid until
 * lumos__weights_free), checked to have exactly `shape` (ndim dims; ndim 0 is
 * a scalar). F16 and BF16 tensors were converted to float32 when opened. */
int lumos__weights_get(lumos_ctx *ctx, const lumos__weights *w, const char *name, int ndim,
                       const int64_t *shape, const float **data);

/* Number of tensors, and the i-th name in strcmp order (NULL past the end),
 * for checking that a file holds nothing unexpected. */
size_t lumos__weights_count(const lumos__weights *w);
const char *lumos__weights_name(const lumos__weights *w, size_t i);

/* The "__metadata__" string of `key`, or NULL (none, or no metadata);
 * valid until lumos__weights_free. */
const char *lumos__weights_metadata(const lumos__weights *w, const char *key);

/* One float32 tensor to write: shape of ndim dims (0..4), row-major data. */
typedef struct lumos__weights_entry {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;
} lumos__weights_entry;

/* Writes n tensors as a safetensors file, atomically (a temporary beside
 * path, renamed over it when complete): F32, little-endian, laid out in the
 * given order; the JSON header is padded with spaces to a multiple of 8
 * bytes, so the data section is 8-byte aligned as the reference writer
 * leaves it. metadata (may be NULL) is key, value, key, value, ..., NULL:
 * the "__metadata__" strings. Names must be unique. */
int lumos__weights_write(lumos_ctx *ctx, const char *path, const lumos__weights_entry *t,
                         size_t n, const char *const *metadata);

#endif
