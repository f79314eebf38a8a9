/* cmd_info.c — `lumos info`: a RAW file's metadata, as text or JSON lines. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "batch.h"
#include "commands.h"
#include "lumos.h"

static const char usage_info[] =
    "usage: lumos info IN... [--json]\n"
    "\n"
    "Prints each RAW file's camera, size, CFA pattern, black and white levels,\n"
    "as-shot white balance, colour matrix, orientation and basic EXIF.\n"
    "IN is a RAW file, a directory (its RAW files, sorted) or a quoted glob.\n"
    "  --json   one JSON object per line\n";

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static const char *cfa_name(lumos_cfa c)
{
    switch (c) {
    case LUMOS_CFA_RGGB: return "RGGB";
    case LUMOS_CFA_BGGR: return "BGGR";
    case LUMOS_CFA_GRBG: return "GRBG";
    case LUMOS_CFA_GBRG: return "GBRG";
    default: return "none";
    }
}

static void print_info(const char *path, const lumos_raw_info *in, int json)
{
    const lumos_exif *e = &in->exif;
    if (json) {
        printf("{\"file\":");
        json_string(path);
        printf(",\"make\":");
        json_string(e->make);
        printf(",\"model\":");
        json_string(e->model);
        printf(",\"width\":%d,\"height\":%d,\"cfa\":\"%s\",\"bayer\":%s", in->width, in->height,
               cfa_name(in->cfa), in->is_bayer ? "true" : "false");
        printf(",\"black\":[%g,%g,%g,%g],\"white\":%g", in->black[0], in->black[1],
               in->black[2], in->black[3], in->white);
        printf(",\"wb_as_shot\":[%g,%g,%g]", in->wb_as_shot[0], in->wb_as_shot[1],
               in->wb_as_shot[2]);
        printf(",\"cam_to_srgb\":[");
        for (int i = 0; i < 3; i++)
            printf("%s[%g,%g,%g]", i ? "," : "", in->cam_to_srgb[i][0], in->cam_to_srgb[i][1],
                   in->cam_to_srgb[i][2]);
        printf("],\"orientation\":%d,\"iso\":%g,\"exposure_s\":%g,\"aperture\":%g,"
               "\"focal_mm\":%g,\"datetime\":",
               in->orientation, e->iso, e->exposure_s, e->aperture, e->focal_mm);
        json_string(e->datetime);
        printf("}\n");
        return;
    }
    printf("%s\n", path);
    printf("  camera       %s %s\n", e->make, e->model);
    printf("  size         %d x %d (active area)\n", in->width, in->height);
    printf("  mosaic       %s%s\n", cfa_name(in->cfa),
           in->is_bayer ? "" : " (not Bayer: LibRaw's own processing is used)");
    printf("  black        %g %g %g %g   white %g\n", in->black[0], in->black[1], in->black[2],
           in->black[3], in->white);
    printf("  wb as shot   R %.4f  G %.4f  B %.4f\n", in->wb_as_shot[0], in->wb_as_shot[1],
           in->wb_as_shot[2]);
    for (int i = 0; i < 3; i++)
        printf("  %s [% .4f % .4f % .4f]\n", i == 0 ? "cam->sRGB " : "          ",
               in->cam_to_srgb[i][0], in->cam_to_srgb[i][1], in->cam_to_srgb[i][2]);
    printf("  orientation  %d\n", in->orientation);
    if (e->exposure_s > 0) {
        if (e->exposure_s < 1) printf("  exposure     1/%.0f s", 1 / e->exposure_s);
        else printf("  exposure     %g s", e->exposure_s);
        printf("  f/%.1f  ISO %g  %g mm\n", e->aperture, e->iso, e->focal_mm);
    }
    if (e->datetime[0]) printf("  taken        %s\n", e->datetime);
}

static int print_one(void *user, lumos_ctx *ctx, const char *in, const char *out)
{
    (void)out;
    lumos_raw *raw = NULL;
    int rc = lumos_raw_open_file(ctx, in, &raw);
    if (rc != LUMOS_OK) return rc;
    print_info(in, lumos_raw_get_info(raw), *(const int *)user);
    lumos_raw_free(raw);
    return LUMOS_OK;
}

int cmd_info(int argc, char **argv)
{
    int json = 0;
    batch_options bo;
    batch_options_init(&bo);
    bo.quiet = 1; /* the metadata is the output; errors still go to stderr */
    strlist args = {0};
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_info, stdout);
            return EXIT_ALL_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            die_usage("info: unknown option '%s'", argv[i]);
        } else {
            strlist_add(&args, argv[i]);
        }
    }
    if (!args.count) die_usage("info: no input files");
    batch *b = batch_open(&bo, (int)args.count, args.items, has_raw_suffix, "RAW files");
    strlist_free(&args);
    if (!b) { perror(cli_prog); return EXIT_SOME_FAILED; }
    /* serial: the records come out in the inputs' order */
    const batch_spec spec = {.verb = "read", .serial = 1, .process = print_one, .user = &json};
    int code = batch_run(b, &spec);
    batch_free(b);
    return code;
}
