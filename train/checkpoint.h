/* checkpoint.h — a trainer's resumable state in one file, written atomically.
 *
 * Layout, every integer little-endian, floats as IEEE-754 binary32 LE:
 *   header, 64 bytes:
 *     0  "LUMOSCKP"          8  u32 version (2)     12 u32 zero
 *     16 u64 step            24 u64 file size       32 u32 section count
 *     36 u32 Adam groups     40 u32 RNG words       44 u32 cursor words
 *     48 u32 header size (64) 52 8 zero bytes       60 u32 CRC-32 of bytes 0..59
 *   then sections, each an 80-byte header and its payload (no padding):
 *     0 name, NUL-padded to 64   64 u64 payload size
 *     72 u32 CRC-32 of payload   76 u32 CRC-32 of bytes 0..75
 *   sections: "net" (bytes: the network's name, first, so that a checkpoint
 *   of another network is named as such before its sizes disagree), "meta"
 *   (bytes), "rng" (u64s), "cursor" (u64s), and per Adam
 *   group G: "adam.G.step" (u64), "adam.G.params", "adam.G.m", "adam.G.v"
 *   (floats).
 * The header, which carries the counts and the file size, is written last
 * (after every section, before the fsync and rename), so a file whose header
 * checks out was written to the end.
 *
 * A write goes to ".NAME.part-XXXXXX" beside path, is fsync'ed and renamed
 * over path: the previous checkpoint stays whole until the new one is. A
 * read checks everything before it changes anything of the caller's. */
#ifndef LUMOS_TRAIN_CHECKPOINT_H
#define LUMOS_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "lumos.h"
#include "train/adam.h"

enum {
    LUMOS__CKP_VERSION = 2, /* 1: the network as a number */
    LUMOS__CKP_HEADER_SIZE = 64,
    LUMOS__CKP_SECTION_HEADER_SIZE = 80,
    LUMOS__CKP_NAME_SIZE = 64,
    LUMOS__CKP_META_MAX = 1 << 20 /* a "short" metadata string: 1 MiB at most */
};

typedef struct lumos__checkpoint {
    const char *net;      /* the network's name ("efficient"); a read must find the same */
    uint64_t step;        /* the trainer's step; set by a read */
    lumos__adam *adam;    /* groups (names, sizes) as the trainer built them; a
                             read fills params, moments and step counts */
    uint64_t *rng;        /* n_rng opaque RNG state words; filled by a read */
    size_t n_rng;
    uint64_t *cursor;     /* n_cursor data-cursor words; filled by a read */
    size_t n_cursor;
    char *meta;           /* NUL-terminated text (JSON or key=value), NULL = "";
                             a read replaces the pointer with a malloc'ed copy
                             the caller frees (the old pointer is not freed) */
} lumos__checkpoint;

/* Writes ck to path atomically (see above). LUMOS_E_IO names path and the
 * OS's reason; on any failure path is as it was and no temporary is left. */
int lumos__checkpoint_write(lumos_ctx *ctx, const char *path, const lumos__checkpoint *ck);

/* Reads path into ck, whose kind, Adam groups, n_rng and n_cursor say what
 * the caller expects. LUMOS_E_FORMAT (message: the path and the reason) on
 * a wrong magic or version, truncation, a CRC mismatch, a section of
 * another size than expected, a missing, duplicate or unknown section;
 * LUMOS_E_ARG for a sound checkpoint of another network (named);
 * LUMOS_E_IO when the file cannot be read. On failure ck and its buffers are
 * unchanged (moments may have been allocated, still zero). */
int lumos__checkpoint_read(lumos_ctx *ctx, const char *path, lumos__checkpoint *ck);

/* CRC-32 (IEEE 802.3, zlib's crc32), continuing from crc (0 to start). */
uint32_t lumos__crc32(uint32_t crc, const void *data, size_t size);

#endif
