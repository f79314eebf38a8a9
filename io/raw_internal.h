/* raw_internal.h — lumos_raw internals shared by io/raw.c and the ISP. */
#ifndef LUMOS_RAW_INTERNAL_H
#define LUMOS_RAW_INTERNAL_H

#include <libraw/libraw.h>

#include "lumos.h"

struct lumos_raw {
    lumos_raw_info info;
    const uint16_t *mosaic; /* active area, or NULL for a non-Bayer file */
    size_t stride;          /* bytes */
    libraw_data_t *libraw;  /* the open handle (NULL for lumos_raw_from_mosaic) */
    uint16_t *owned;        /* samples copied by lumos_raw_from_mosaic */
};

/* (cfa_x, cfa_y) such that red is where (x + cfa_x), (y + cfa_y) are even. */
void lumos__cfa_offsets(lumos_cfa cfa, int *cfa_x, int *cfa_y);
/* 0 red, 1 green, 2 blue at site (x, y). */
int lumos__cfa_color(lumos_cfa cfa, int x, int y);

#endif
