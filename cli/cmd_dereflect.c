/* cmd_dereflect.c — `lumos dereflect`: reflection removal on JPEG, PNG and
 * TIFF photos, each written back in its own format with its profile and
 * EXIF, in parallel via the batch runner; `--preview` adds a contact sheet. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "args.h"
#include "batch.h"
#include "commands.h"
#include "lumos.h"
#include "preview.h"

/* Outputs beside their inputs are NAME-dereflect.EXT; directories do not
 * give such files as inputs, so that a second run does not take them. */
#define BESIDE_TAG "-dereflect"

static const char usage_head[] =
    "usage: lumos dereflect IN... [options]\n"
    "\n"
    "Removes reflections (a photo taken through glass) from JPEG, PNG and TIFF\n"
    "(8/16-bit, gray or RGB) photos. IN is a file, a directory (its .jpg, .jpeg,\n"
    ".png, .tif and .tiff files, sorted, except *" BESIDE_TAG ".*) or a quoted glob.\n"
    "Without -o, each output goes beside its input as NAME" BESIDE_TAG ".EXT.\n"
    "\n"
    "output:\n";

static const char usage_body[] =
    "  --format jpeg|png|tiff default: from -o FILE's suffix, else the input's format\n"
    "  --bits 8|16            sample depth; default: the input's (JPEG: 8)\n"
    "  -q, --quality N        JPEG quality 1..100; default 92\n"
    "  --preview FILE         also write a contact sheet, input | output, one row a\n"
    "                         file (the first %d by name), upright, at most %d pixels\n"
    "                         high; JPEG, PNG or TIFF by FILE's suffix\n"
    "\n"
    "method:\n"
    "  --net classic|NET      the classical method (gradient thresholding, after\n"
    "                         Arvanitopoulos et al. 2017) or a network: %s;\n"
    "                         default %s (until trained uhd weights ship)\n"
    "  --weights FILE         a network's weights (safetensors, PyTorch state_dict\n"
    "                         names); default: data/weights/NET.safetensors\n"
    "  --tile N               a network's tile side, a multiple of 8; default 512\n"
    "\n"
    "batch:\n";

static const char usage_tail[] =
    "\n"
    "Each output keeps its input's ICC profile and EXIF and its pixels' stored\n"
    "orientation (so the EXIF orientation stays true); it is written to a\n"
    "temporary name and renamed when complete. Exit: 0 all done, 1 some failed,\n"
    "2 usage.\n";

static void print_usage(void)
{
    char names[256];
    net_names("dereflect", names, sizeof names);
    fputs(usage_head, stdout);
    fputs(batch_usage_output, stdout);
    printf(usage_body, PREVIEW_MAX_ROWS, PREVIEW_ROW_HEIGHT, names, LUMOS_DEREFLECT_DEFAULT);
    fputs(batch_usage_batch, stdout);
    fputs(usage_tail, stdout);
}

/* A photo suffix, and not one of this command's own outputs. */
static int accept_photo(const char *name)
{
    static const char *const suffixes[] = {"jpg", "jpeg", "png", "tif", "tiff"};
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    size_t tag = strlen(BESIDE_TAG);
    if ((size_t)(dot - name) > tag && !strncmp(dot - tag, BESIDE_TAG, tag)) return 0;
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
        if (!strcasecmp(dot + 1, suffixes[i])) return 1;
    return 0;
}

typedef struct {
    lumos_dereflect_options opt;
    preview *preview; /* NULL: no --preview */
} state;

static int dereflect_one(void *user, lumos_ctx *ctx, const char *in, const char *out)
{
    return lumos_dereflect_file(ctx, in, out, &((state *)user)->opt);
}

/* The preview's row, in this process: dereflect_one runs in a worker
 * process, whose memory is not kept (batch.h). */
static void add_to_preview(void *user, lumos_ctx *ctx, const char *in, const char *out)
{
    state *s = user;
    if (!s->preview) return;
    int p = preview_add(s->preview, ctx, in, out);
    if (p)
        fprintf(stderr, "%s: note: %s: left out of the preview: %s\n", cli_prog, in,
                lumos_last_error(ctx)[0] ? lumos_last_error(ctx) : lumos_strerror(p));
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_ino == sb.st_ino &&
           sa.st_dev == sb.st_dev;
}

int cmd_dereflect(int argc, char **argv)
{
    state s = {0};
    lumos_dereflect_options *opt = &s.opt;
    lumos_dereflect_options_init(opt);
    opt->write.overwrite = 1;
    const char *preview_path = NULL;
    batch_options bo;
    batch_options_init(&bo);
    strlist args = {0};

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_usage();
            return EXIT_ALL_OK;
        } else if (batch_parse_option(&bo, argc, argv, &i)) {
            continue;
        } else if (is_option(argc, argv, &i, "--format", NULL, &v)) {
            opt->write.format = parse_format(v, 0);
        } else if (is_option(argc, argv, &i, "--bits", NULL, &v)) {
            opt->bits = parse_int("--bits", v, 8, 16);
            if (opt->bits != 8 && opt->bits != 16) die_usage("--bits: 8 or 16");
        } else if (is_option(argc, argv, &i, "--quality", "-q", &v)) {
            opt->write.quality = parse_int("--quality", v, 1, 100);
        } else if (is_option(argc, argv, &i, "--preview", NULL, &v)) {
            lumos_format f = lumos_format_from_path(v);
            if (f != LUMOS_FORMAT_JPEG && f != LUMOS_FORMAT_PNG && f != LUMOS_FORMAT_TIFF)
                die_usage("--preview: '%s': name a .jpg, .png or .tif file", v);
            preview_path = v;
        } else if (is_option(argc, argv, &i, "--net", NULL, &v)) {
            if (!strcmp(v, "rrformer")) die_usage("rrformer: not implemented yet (issue 13)");
            if (strcmp(v, "classic") && !net_known("dereflect", v)) {
                char names[256];
                net_names("dereflect", names, sizeof names);
                die_usage("--net: classic or %s, not '%s'", names, v);
            }
            opt->net_name = v;
        } else if (is_option(argc, argv, &i, "--weights", NULL, &v)) {
            opt->weights = v;
        } else if (is_option(argc, argv, &i, "--tile", NULL, &v)) {
            opt->tile = parse_int("--tile", v, 8, 65536);
            if (opt->tile % 8) die_usage("--tile: a multiple of 8");
        } else if (a[0] == '-' && a[1]) {
            die_usage("dereflect: unknown option '%s'", a);
        } else {
            strlist_add(&args, a);
        }
    }
    if (!args.count) die_usage("dereflect: no input files");
    const int classic = !strcmp(opt->net_name, "classic");
    if (classic && opt->weights) die_usage("--weights needs a network (--net NET)");
    if (classic && opt->tile) die_usage("--tile applies to a network (--net NET)");
    for (size_t i = 0; preview_path && i < args.count; i++)
        if (same_file(preview_path, args.items[i]))
            die_usage("--preview %s is an input", preview_path);

    batch *b = batch_open(&bo, (int)args.count, args.items, accept_photo, "JPEG, PNG or TIFF files");
    strlist_free(&args);
    if (!b) { perror(cli_prog); return EXIT_SOME_FAILED; }
    /* The format, where known now (else each input's own): checked once. */
    lumos_format format = opt->write.format;
    const char *single = batch_single_output(b);
    if (single && format == LUMOS_FORMAT_AUTO) {
        format = lumos_format_from_path(single);
        if (format == LUMOS_FORMAT_AUTO || format == LUMOS_FORMAT_EXR)
            die_usage("%s: use a .jpg, .png or .tif name, or --format", single);
    }
    if (format == LUMOS_FORMAT_JPEG && opt->bits == 16)
        die_usage("JPEG holds 8 bits only; use --format png or tiff with --bits 16");

    /* A network's weights are read once, before any input. */
    lumos_net *net = NULL;
    if (!classic) {
        lumos_ctx *ctx = lumos_ctx_new();
        if (!ctx || lumos_net_load(ctx, opt->net_name, opt->weights, &net) != LUMOS_OK) {
            fprintf(stderr, "%s: error: %s%s\n", cli_prog,
                    ctx ? lumos_last_error(ctx) : "out of memory",
                    ctx && !opt->weights ? "; pass its weights with --weights FILE, or use "
                                           "--net classic"
                                         : "");
            lumos_ctx_free(ctx);
            batch_free(b);
            return EXIT_SOME_FAILED;
        }
        lumos_ctx_free(ctx);
        opt->net = net;
    }
    if (preview_path && !(s.preview = preview_new())) {
        perror(cli_prog);
        batch_free(b);
        lumos_net_free(net);
        return EXIT_SOME_FAILED;
    }

    const batch_spec spec = {.verb = "dereflected",
                             .out_suffix = opt->write.format ? format_suffix(opt->write.format) : "",
                             .beside_tag = BESIDE_TAG,
                             .process = dereflect_one,
                             .after = add_to_preview,
                             .user = &s};
    int code = batch_run(b, &spec);
    batch_free(b);
    lumos_net_free(net);

    if (s.preview) {
        lumos_ctx *ctx = lumos_ctx_new();
        int rows = 0, rc = ctx ? preview_write(s.preview, ctx, preview_path, &rows) : LUMOS_E_NOMEM;
        if (rc) {
            if (ctx && lumos_last_error(ctx)[0])
                fprintf(stderr, "%s: error: --preview: %s\n", cli_prog, lumos_last_error(ctx));
            else
                fprintf(stderr, "%s: error: --preview: %s: %s\n", cli_prog, preview_path,
                        lumos_strerror(rc));
            code = EXIT_SOME_FAILED;
        } else if (!rows) {
            fprintf(stderr, "%s: no preview written: no file was dereflected\n", cli_prog);
        }
        lumos_ctx_free(ctx);
        preview_free(s.preview);
    }
    return code;
}
