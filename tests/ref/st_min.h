/* st_min.h — a minimal, test-local reader of .safetensors files holding F32
 * tensors (the format isp_nets.py writes): u64 LE header length, a JSON
 * header {name: {"dtype", "shape", "data_offsets"}, "__metadata__": {...}},
 * then the raw little-endian data. Not the project's loader (io/weights.c). */
#ifndef LUMOS_TESTS_ST_MIN_H
#define LUMOS_TESTS_ST_MIN_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[8];
    size_t count;      /* elements */
    const float *data; /* into st_file.buf */
} st_tensor;

typedef struct {
    unsigned char *buf; /* the whole file */
    size_t size;
    st_tensor *tensors;
    size_t count;
} st_file;

/* Reads path into *f. Returns 0, or -1 with a reason in err. Host must be
 * little-endian. */
int st_load(const char *path, st_file *f, char *err, size_t errlen);
void st_free(st_file *f);
/* The tensor of that name, or NULL. */
const st_tensor *st_find(const st_file *f, const char *name);

#endif
