/* cmd_convert.c — `lumos convert`: RAW files -> JPEG, PNG or TIFF, through
 * the classical ISP or a learned one, in parallel via the batch runner. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "batch.h"
#include "commands.h"
#include "lumos.h"

static const char usage_convert_head[] =
    "usage: lumos convert IN... [options]\n"
    "\n"
    "IN is a RAW file, a directory (its RAW files, sorted) or a quoted glob.\n"
    "\n"
    "output:\n";

static const char usage_convert_body[] =
    "  --format jpeg|png|tiff|exr\n"
    "                         default: from -o's suffix, else jpeg; exr (OpenEXR,\n"
    "                         32-bit float) needs --linear\n"
    "  --bits 8|16|32         sample depth (JPEG: 8 only; 32: float, TIFF and EXR,\n"
    "                         the classical ISP); default 8\n"
    "  -q, --quality N        JPEG quality 1..100; default 92\n"
    "  --subsampling 444|420  JPEG chroma subsampling; default 444\n"
    "  --no-overwrite         fail instead of replacing an existing output\n"
    "\n"
    "development:\n"
    "  --isp classic|NET      the classical ISP (default) or a learned one: %s\n"
    "  --weights FILE         a learned ISP's weights (safetensors, PyTorch state_dict\n"
    "                         names); default: the shipped ones\n"
    "  --exposure EV          exposure change in stops; default 0 (no auto-brightening);\n"
    "                         a learned ISP takes it when its weights were trained to\n"
    "  the options below apply to --isp classic only:\n"
    "  --wb camera|auto|R,G,B white balance: as shot, gray world, or multipliers\n"
    "  --tone T               tone-curve strength 0..1; default 0.5\n"
    "  --sharpen A            unsharp-mask amount 0..10; default 0\n"
    "  --half                 half size: one pixel per 2x2 block, no demosaic\n"
    "  --linear               scene-linear output: no tone curve, no transfer (as dcraw -4);\n"
    "                         with --bits 32 or exr, as float samples\n"
    "  --space srgb|camera    camera: skip the colour matrix (as dcraw -o 0)\n"
    "\n"
    "batch:\n";

static const char usage_convert_tail[] =
    "\n"
    "Outputs are written to a temporary name and renamed when complete, tagged\n"
    "with an ICC profile (sRGB, or linear sRGB with --linear; none with --space\n"
    "camera) and stored upright. Exit: 0 all converted, 1 some failed, 2 usage.\n";

static void print_usage(void)
{
    char names[256];
    net_names("isp", names, sizeof names);
    fputs(usage_convert_head, stdout);
    fputs(batch_usage_output, stdout);
    printf(usage_convert_body, names);
    fputs(batch_usage_batch, stdout);
    fputs(usage_convert_tail, stdout);
}

static int convert_one(void *user, lumos_ctx *ctx, const char *in, const char *out)
{
    return lumos_convert_file(ctx, in, out, user);
}

int cmd_convert(int argc, char **argv)
{
    lumos_convert_options opt;
    lumos_convert_options_init(&opt);
    opt.write.overwrite = 1;
    lumos_format format = LUMOS_FORMAT_AUTO;
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
            format = parse_format(v, 1);
        } else if (is_option(argc, argv, &i, "--bits", NULL, &v)) {
            opt.isp.bits = parse_int("--bits", v, 8, 32);
            if (opt.isp.bits != 8 && opt.isp.bits != 16 && opt.isp.bits != 32)
                die_usage("--bits: 8, 16 or 32");
        } else if (is_option(argc, argv, &i, "--quality", "-q", &v)) {
            opt.write.quality = parse_int("--quality", v, 1, 100);
        } else if (is_option(argc, argv, &i, "--subsampling", NULL, &v)) {
            opt.write.subsampling = parse_int("--subsampling", v, 420, 444);
            if (opt.write.subsampling != 420 && opt.write.subsampling != 444)
                die_usage("--subsampling: 444 or 420");
        } else if (is_option(argc, argv, &i, "--wb", NULL, &v)) {
            if (!strcmp(v, "camera")) {
                opt.isp.wb = LUMOS_WB_CAMERA;
            } else if (!strcmp(v, "auto")) {
                opt.isp.wb = LUMOS_WB_AUTO;
            } else {
                float m[3];
                char tail;
                if (sscanf(v, "%f,%f,%f%c", &m[0], &m[1], &m[2], &tail) != 3 || !(m[0] > 0) ||
                    !(m[1] > 0) || !(m[2] > 0))
                    die_usage("--wb: 'camera', 'auto' or three positive multipliers R,G,B");
                opt.isp.wb = LUMOS_WB_USER;
                memcpy(opt.isp.wb_user, m, sizeof m);
            }
        } else if (is_option(argc, argv, &i, "--exposure", NULL, &v)) {
            opt.isp.exposure_ev = (float)parse_number("--exposure", v, -16, 16);
        } else if (is_option(argc, argv, &i, "--tone", NULL, &v)) {
            opt.isp.tone = (float)parse_number("--tone", v, 0, 1);
        } else if (is_option(argc, argv, &i, "--sharpen", NULL, &v)) {
            opt.isp.sharpen = (float)parse_number("--sharpen", v, 0, 10);
        } else if (!strcmp(a, "--half")) {
            opt.isp.half = 1;
        } else if (!strcmp(a, "--linear")) {
            opt.isp.linear = 1;
        } else if (is_option(argc, argv, &i, "--space", NULL, &v)) {
            if (!strcmp(v, "srgb")) opt.isp.camera_space = 0;
            else if (!strcmp(v, "camera")) opt.isp.camera_space = 1;
            else die_usage("--space: 'srgb' or 'camera'");
        } else if (is_option(argc, argv, &i, "--isp", NULL, &v)) {
            if (strcmp(v, "classic") && !net_known("isp", v)) {
                char names[256];
                net_names("isp", names, sizeof names);
                die_usage("--isp: classic, %s", names);
            }
            opt.isp_name = v;
        } else if (is_option(argc, argv, &i, "--weights", NULL, &v)) {
            opt.weights = v;
        } else if (!strcmp(a, "--no-overwrite")) {
            opt.write.overwrite = 0;
        } else if (a[0] == '-' && a[1]) {
            die_usage("convert: unknown option '%s'", a);
        } else {
            strlist_add(&args, a);
        }
    }
    if (!args.count) die_usage("convert: no input files");
    const int classic = !opt.isp_name || !strcmp(opt.isp_name, "classic");
    if (classic && opt.weights) die_usage("--weights needs a learned ISP (--isp NET)");
    lumos_isp_options defaults;
    lumos_isp_options_init(&defaults);
    defaults.bits = opt.isp.bits;
    defaults.exposure_ev = opt.isp.exposure_ev; /* a learned ISP takes it too */
    if (!classic && memcmp(&defaults, &opt.isp, sizeof defaults))
        die_usage("--wb, --tone, --sharpen, --half, --linear and --space apply to "
                  "--isp classic only");

    batch *b = batch_open(&bo, (int)args.count, args.items, has_raw_suffix, "RAW files");
    strlist_free(&args);
    if (!b) { perror(cli_prog); return EXIT_SOME_FAILED; }
    const char *single = batch_single_output(b);
    if (single && format == LUMOS_FORMAT_AUTO) {
        format = lumos_format_from_path(single);
        if (format == LUMOS_FORMAT_AUTO)
            die_usage("%s: unknown output suffix; use .jpg, .png, .tif, .exr or --format", single);
    }
    if (format == LUMOS_FORMAT_AUTO) format = LUMOS_FORMAT_JPEG;
    if (format == LUMOS_FORMAT_JPEG && opt.isp.bits != 8)
        die_usage("JPEG holds 8 bits only; use --format png or tiff with --bits 16");
    if (format == LUMOS_FORMAT_PNG && opt.isp.bits == 32)
        die_usage("PNG holds 8 or 16 bits; use --format tiff or exr for 32-bit float");
    if (format == LUMOS_FORMAT_EXR && (!classic || !opt.isp.linear))
        die_usage("OpenEXR holds scene-linear light: use it with --linear (classical ISP)");
    if (opt.isp.bits == 32 && !classic)
        die_usage("--bits 32 (float) is the classical ISP's; a learned ISP gives 8 or 16");
    if (format == LUMOS_FORMAT_EXR) opt.isp.bits = 32;
    opt.write.format = format;

    /* A learned ISP's weights are read once, before any input. */
    lumos_net *net = NULL;
    if (!classic) {
        lumos_ctx *ctx = lumos_ctx_new();
        if (!ctx || lumos_net_load(ctx, opt.isp_name, opt.weights, &net) != LUMOS_OK) {
            fprintf(stderr, "%s: error: %s%s\n", cli_prog,
                    ctx ? lumos_last_error(ctx) : "out of memory",
                    ctx && !opt.weights ? " (give a weights file: --weights FILE)" : "");
            lumos_ctx_free(ctx);
            batch_free(b);
            return EXIT_SOME_FAILED;
        }
        lumos_ctx_free(ctx);
        opt.net = net;
    }

    const batch_spec spec = {.verb = "converted", .out_suffix = format_suffix(format),
                             .process = convert_one, .user = &opt};
    int code = batch_run(b, &spec);
    batch_free(b);
    lumos_net_free(net);
    return code;
}
