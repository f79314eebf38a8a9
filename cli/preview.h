/* preview.h — a contact sheet of input | output pairs (`--preview FILE`):
 * one row a file, the first PREVIEW_MAX_ROWS inputs by name, each picture
 * made upright and scaled down to fit PREVIEW_ROW_HEIGHT pixels high (and
 * twice that wide), written as an 8-bit RGB image. */
#ifndef LUMOS_CLI_PREVIEW_H
#define LUMOS_CLI_PREVIEW_H

#include "lumos.h"

enum { PREVIEW_MAX_ROWS = 32, PREVIEW_ROW_HEIGHT = 512 };

typedef struct preview preview;

preview *preview_new(void);
void preview_free(preview *p);

/* The row of input file `in` and output file `out`, both read back (the
 * output as written). Thread-safe. Returns LUMOS_OK (also when the row is
 * not among the first by name) or a status with ctx's last error set. */
int preview_add(preview *p, lumos_ctx *ctx, const char *in, const char *out);

/* Writes the sheet, rows in input-name order, to path (format from its
 * suffix), replacing it; LUMOS_OK, or a status with ctx's last error set.
 * Nothing is written without rows (*rows 0). */
int preview_write(preview *p, lumos_ctx *ctx, const char *path, int *rows);

#endif
