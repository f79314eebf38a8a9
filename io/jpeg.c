/* jpeg.c — JPEG through TurboJPEG, with EXIF and ICC markers spliced in.
 *
 * TurboJPEG 2.1 has no way to add or read APPn markers, so the compressed
 * stream is rebuilt around them: EXIF (APP1) must follow SOI directly, and
 * the ICC profile goes in APP2 chunks as the ICC specification (Annex B.4)
 * defines. The reader walks the same markers itself (read_markers). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include "io/io.h"
#include "core/context.h"

#define ICC_SIG "ICC_PROFILE" /* 12 bytes with its NUL */
#define ICC_CHUNK 65519       /* 65535 - 2 (length) - 12 (signature) - 2 (seq, count) */

int lumos__jpeg_splice(const uint8_t *jpeg, size_t size, const uint8_t *exif, size_t exif_size,
                       const uint8_t *icc, size_t icc_size, uint8_t **out, size_t *out_size)
{
    *out = NULL;
    *out_size = 0;
    if (size < 4 || jpeg[0] != 0xFF || jpeg[1] != 0xD8) return LUMOS_E_ARG;
    if (exif && exif_size > 65535 - 2 - 6) return LUMOS_E_ARG;
    size_t chunks = icc ? (icc_size + ICC_CHUNK - 1) / ICC_CHUNK : 0;
    if (chunks > 255) return LUMOS_E_ARG;

    /* Skip TurboJPEG's JFIF APP0: JFIF and EXIF both claim to be the first
     * segment, and EXIF readers expect APP1 there. */
    size_t rest = 2;
    if (size >= 11 && jpeg[2] == 0xFF && jpeg[3] == 0xE0 && !memcmp(jpeg + 6, "JFIF", 5)) {
        size_t len = (size_t)jpeg[4] << 8 | jpeg[5];
        if (len < 2 || 4 + len > size) return LUMOS_E_ARG;
        rest = 4 + len;
    }

    size_t total = 2 + (exif ? 4 + 6 + exif_size : 0) + chunks * (4 + 14) + icc_size * !!icc +
                   (size - rest);
    uint8_t *buf = malloc(total), *p = buf;
    if (!buf) return LUMOS_E_NOMEM;
    *p++ = 0xFF, *p++ = 0xD8;
    if (exif) {
        size_t len = 2 + 6 + exif_size;
        *p++ = 0xFF, *p++ = 0xE1, *p++ = (uint8_t)(len >> 8), *p++ = (uint8_t)len;
        memcpy(p, "Exif\0\0", 6);
        memcpy(p + 6, exif, exif_size);
        p += 6 + exif_size;
    }
    for (size_t i = 0; i < chunks; i++) {
        size_t n = i + 1 < chunks ? ICC_CHUNK : icc_size - i * ICC_CHUNK;
        size_t len = 2 + 14 + n;
        *p++ = 0xFF, *p++ = 0xE2, *p++ = (uint8_t)(len >> 8), *p++ = (uint8_t)len;
        memcpy(p, ICC_SIG, 12);
        p[12] = (uint8_t)(i + 1); /* sequence numbers start at 1 */
        p[13] = (uint8_t)chunks;
        memcpy(p + 14, icc + i * ICC_CHUNK, n);
        p += 14 + n;
    }
    memcpy(p, jpeg + rest, size - rest);
    *out = buf;
    *out_size = total;
    return LUMOS_OK;
}

int lumos__write_jpeg(lumos_ctx *ctx, const lumos_image *img, const char *tmp_path,
                      const char *shown_path, const lumos_write_options *opt)
{
    tjhandle tj = tjInitCompress();
    if (!tj) return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: cannot start the JPEG encoder: %s",
                                shown_path, tjGetErrorStr2(NULL));
    int gray = img->channels == 1;
    int samp = gray ? TJSAMP_GRAY : opt->subsampling == 420 ? TJSAMP_420 : TJSAMP_444;
    unsigned char *jpeg = NULL;
    unsigned long jsize = 0;
    /* TJFLAG_ACCURATEDCT: the fast integer DCT costs visible quality at q>90. */
    if (tjCompress2(tj, img->data, img->width, (int)img->stride, img->height,
                    gray ? TJPF_GRAY : TJPF_RGB, &jpeg, &jsize, samp, opt->quality,
                    TJFLAG_ACCURATEDCT) != 0) {
        int st = lumos__fail(ctx, LUMOS_E_IO, "%s: JPEG compression failed: %s", shown_path,
                             tjGetErrorStr2(tj));
        tjFree(jpeg);
        tjDestroy(tj);
        return st;
    }
    tjDestroy(tj);

    size_t exif_size = 0, icc_size = 0;
    uint8_t *exif = NULL, *icc = NULL;
    uint8_t *out = NULL;
    size_t out_size = 0;
    int st = lumos__write_exif(ctx, img, opt, LUMOS_FORMAT_JPEG, shown_path, &exif, &exif_size);
    if (!st)
        st = lumos__write_icc(ctx, img, img->channels, opt, (size_t)255 * ICC_CHUNK, shown_path,
                              &icc, &icc_size);
    if (!st && (st = lumos__jpeg_splice(jpeg, jsize, exif, exif_size, icc, icc_size, &out,
                                        &out_size)))
        st = lumos__fail(ctx, st, "%s: cannot add the EXIF/ICC markers", shown_path);
    tjFree(jpeg);
    free(exif);
    free(icc);
    if (st) return st;

    FILE *f = fopen(tmp_path, "wb");
    if (!f) {
        st = lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", shown_path);
    } else {
        /* A full disk may show only at fclose, when the buffer is flushed. */
        int err = fwrite(out, 1, out_size, f) == out_size ? 0 : errno ? errno : EIO;
        if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
        if (err) st = lumos__fail_errno(ctx, LUMOS_E_IO, err, "%s", shown_path);
    }
    free(out);
    return st;
}

/* The whole file, for TurboJPEG's in-memory decoder. */
static int slurp(lumos_ctx *ctx, const char *path, unsigned char **buf, size_t *size)
{
    *buf = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", path);
    struct stat sb;
    int err = fstat(fileno(f), &sb) != 0 ? errno
              : S_ISDIR(sb.st_mode)      ? EISDIR
              : !S_ISREG(sb.st_mode)     ? EINVAL
                                         : 0;
    if (err) {
        fclose(f);
        return lumos__fail_errno(ctx, LUMOS_E_IO, err, "%s", path);
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *b = malloc(n ? n : 1);
    if (!b) {
        fclose(f);
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: cannot allocate %zu bytes", path, n);
    }
    size_t got = fread(b, 1, n, f);
    err = ferror(f) ? errno : 0;
    fclose(f);
    if (got != n) {
        free(b);
        return err ? lumos__fail_errno(ctx, LUMOS_E_IO, err, "%s", path)
                   : lumos__fail(ctx, LUMOS_E_IO, "%s: the file shrank while being read", path);
    }
    *buf = b;
    *size = n;
    return LUMOS_OK;
}

/* The metadata of a JPEG stream: the first APP1 "Exif\0\0" segment and the
 * APP2 "ICC_PROFILE" chunks (ICC.1 Annex B.4: a sequence number from 1 and
 * the chunk count in each), read up to the first scan. A damaged segment
 * structure ends the walk quietly: the decoder reports it. */
static int read_markers(lumos_ctx *ctx, const char *path, const uint8_t *b, size_t size,
                        lumos_meta *meta)
{
    const uint8_t *chunk[256] = {0};
    size_t chunk_len[256] = {0}, icc_size = 0;
    int count = 0, chunks = 0, icc_bad = 0, st = LUMOS_OK;
    const uint8_t *exif = NULL;
    size_t exif_size = 0;
    for (size_t i = 2; i + 4 <= size;) {
        if (b[i] != 0xFF) break;
        uint8_t m = b[i + 1];
        if (m == 0xFF) { /* fill byte */
            i++;
            continue;
        }
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { /* no length */
            i += 2;
            continue;
        }
        if (m == 0xDA || m == 0xD9) break; /* start of scan, end of image */
        size_t len = (size_t)b[i + 2] << 8 | b[i + 3];
        if (len < 2 || len > size - i - 2) break;
        const uint8_t *d = b + i + 4;
        size_t dl = len - 2;
        if (m == 0xE1 && !exif && dl >= 6 && !memcmp(d, "Exif\0\0", 6)) {
            exif = d + 6;
            exif_size = dl - 6;
        } else if (m == 0xE2 && dl >= 14 && !memcmp(d, ICC_SIG, 12)) {
            int seq = d[12], n = d[13];
            if (n == 0 || seq == 0 || seq > n || (count && n != count) || chunk[seq]) {
                icc_bad = 1;
            } else {
                count = n;
                chunk[seq] = d + 14;
                chunk_len[seq] = dl - 14;
                icc_size += dl - 14;
                chunks++;
            }
        }
        i += 2 + len;
    }
    if (exif) st = lumos__meta_found_exif(ctx, meta, path, exif, exif_size);
    if (st || (!chunks && !icc_bad)) return st;
    if (icc_bad || chunks != count) {
        lumos__notice(ctx, "%s: ICC profile dropped: its APP2 chunks are %s", path,
                      icc_bad ? "inconsistent" : "incomplete");
        return LUMOS_OK;
    }
    uint8_t *icc = malloc(icc_size ? icc_size : 1);
    if (!icc) return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
    for (size_t k = 1, o = 0; k <= (size_t)count; o += chunk_len[k], k++)
        memcpy(icc + o, chunk[k], chunk_len[k]);
    st = lumos__meta_found_icc(ctx, meta, path, icc, icc_size);
    free(icc);
    return st;
}

/* The frame header's marker (0xC0..0xCF but DHT, JPG and DAC), found
 * before the first scan; 0 if none. */
static int frame_marker(const uint8_t *b, size_t size)
{
    for (size_t i = 2; i + 4 <= size;) {
        if (b[i] != 0xFF) return 0;
        uint8_t m = b[i + 1];
        if (m == 0xFF) {
            i++;
            continue;
        }
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
            i += 2;
            continue;
        }
        if (m == 0xDA || m == 0xD9) return 0;
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) return m;
        size_t len = (size_t)b[i + 2] << 8 | b[i + 3];
        if (len < 2 || len > size - i - 2) return 0;
        i += 2 + len;
    }
    return 0;
}

/* What the frame header claims, before allocating. No bound is proven for
 * JPEG's data (progressive end-of-band runs and arithmetic coding spend
 * far less than a bit a block), hence a generous 32768 output bytes a byte
 * of file; baseline Huffman data stays under 1000. A progressive or
 * arithmetic-coded frame is decoded through a coefficient buffer of about
 * 2 bytes a sample. */
static int check_jpeg(lumos_ctx *ctx, const char *path, const uint8_t *buf, size_t size, int w,
                      int h, int channels)
{
    const uint64_t out = lumos__mul_sat(lumos__mul_sat((uint64_t)w, (uint64_t)h), channels);
    const int sof = frame_marker(buf, size);
    const uint64_t coefs = sof == 0xC0 || sof == 0xC1 ? 0 : lumos__mul_sat(out, 2);
    lumos__claim c = {.format = "JPEG", .width = (uint64_t)w, .height = (uint64_t)h,
                      .decoded = out, .held = size, .ratio = 32768, .codec = "JPEG",
                      .alloc = out + size + coefs};
    return lumos__check_claim(ctx, path, &c);
}

int lumos__read_jpeg(lumos_ctx *ctx, const char *path, lumos_image *out, lumos_meta *meta)
{
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    size_t size;
    int st = slurp(ctx, path, &buf, &size);
    if (st) return st;
    if (size > (unsigned long)-1) {
        free(buf);
        return lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "%s: too large", path);
    }
    tjhandle tj = tjInitDecompress();
    if (!tj) {
        free(buf);
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: cannot start the JPEG decoder: %s", path,
                           tjGetErrorStr2(NULL));
    }
    /* TurboJPEG 2.1 can return success without setting these for a stream
     * cut before its SOF marker, hence the initial values and the check. */
    int w = 0, h = 0, samp = -1, cs = -1;
    if (tjDecompressHeader3(tj, buf, (unsigned long)size, &w, &h, &samp, &cs) != 0) {
        st = lumos__fail(ctx, LUMOS_E_FORMAT, "%s: damaged JPEG: %s", path, tjGetErrorStr2(tj));
    } else if (w <= 0 || h <= 0 || cs < 0) {
        st = lumos__fail(ctx, LUMOS_E_FORMAT, "%s: damaged JPEG: no frame header", path);
    } else if (cs == TJCS_CMYK || cs == TJCS_YCCK) {
        st = lumos__fail(ctx, LUMOS_E_UNSUPPORTED,
                         "%s: CMYK JPEG images are not supported (convert it to RGB first)", path);
    } else if ((st = check_jpeg(ctx, path, buf, size, w, h, cs == TJCS_GRAY ? 1 : 3))) {
        /* reported */
    } else if (meta && (st = read_markers(ctx, path, buf, size, meta))) {
        /* out of memory, reported */
    } else if ((st = lumos_image_alloc(out, w, h, cs == TJCS_GRAY ? 1 : 3, 8))) {
        st = lumos__fail(ctx, st, "%s: cannot allocate a %dx%d image", path, w, h);
    } else if (tjDecompress2(tj, buf, (unsigned long)size, out->data, w, (int)out->stride, h,
                             out->channels == 1 ? TJPF_GRAY : TJPF_RGB,
                             TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING) != 0) {
        /* Warnings count: a truncated file is only a warning to libjpeg
         * ("Premature end of JPEG file"), with the rest of the image gray. */
        st = lumos__fail(ctx, LUMOS_E_FORMAT, "%s: damaged JPEG: %s", path, tjGetErrorStr2(tj));
        lumos_image_free(out);
    }
    tjDestroy(tj);
    free(buf);
    return st;
}
