/* cmd_train.c — `lumos train`: the trainer (train/trainer.h) with the
 * command line's options, Ctrl-C and a summary. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "lumos.h"
#include "mpi_comm.h"
#include "train/adversarial.h"
#include "train/dereflect_task.h"
#include "train/trainer.h"

static const char usage_train[] =
    "usage: lumos train [--task isp|dereflect] --net NET --data SRC... --out FILE [options]\n"
    "\n"
    "Trains a learned ISP on photos (unprocessed into noisy mosaics after Brooks\n"
    "et al. 2019) and RAW files, for 'lumos convert --isp NET --weights FILE', or\n"
    "a reflection-removal network on pairs synthesised from photos (one behind\n"
    "the glass, one reflected), for 'lumos dereflect --net NET --weights FILE';\n"
    "the weights are safetensors with the PyTorch state_dict names.\n"
    "\n"
    "model and data:\n"
    "  --task isp|dereflect   what is trained: isp, a learned ISP (the default), or\n"
    "                         dereflect, a reflection-removal network\n"
    "  --net NET              the network: efficient, robust or rmfa-tiny (isp);\n"
    "                         uhd (dereflect)\n"
    "  --data SRC...          directories, list files (*.txt, *.list: one path a\n"
    "                         line) or photo/RAW files; 10% of the names are held\n"
    "                         out for good (previews), whatever else is added\n"
    "  --out FILE             the trained weights (.safetensors), written at the end\n"
    "  --init FILE            start from these weights (default: PyTorch's Conv2d\n"
    "                         init from --seed)\n"
    "  --input sensor|agnostic what the network sees: sensor (default), the\n"
    "                         mosaic as is (weights for the unprocessing's sensor,\n"
    "                         the Canon EOS 30D); agnostic, the mosaic white-\n"
    "                         balanced and mapped by the camera matrix first (any\n"
    "                         camera). Saved in the weights; convert follows it\n"
    "  --mode unpaired|paired unpaired (default): the targets are other photos;\n"
    "                         paired: the photo each mosaic was made from (RAW\n"
    "                         files have none and are left out)\n"
    "  --terms NAME[:W],...   loss terms and their weights. isp: each normalised by\n"
    "                         its own gradient norm: content (MobileNetV2 features of\n"
    "                         the lightness, or VGG-19's with --content-features,\n"
    "                         against the classical render), texture and colour\n"
    "                         (relativistic GANs with R1 + R2), tv (total\n"
    "                         variation), l1 and perceptual (paired only: against\n"
    "                         the aligned photo), mse-classic. Default: unpaired\n"
    "                         content,tv,texture,colour; paired l1,perceptual.\n"
    "                         dereflect: a plain weighted sum of l1, gradient (L1\n"
    "                         of image gradients), perceptual, exclusion (Zhang et\n"
    "                         al. 2018: T and I - T share no edges), tv; default\n"
    "                         l1:1,gradient:1,perceptual:0.2,exclusion:0.1\n"
    "  --features FILE        the MobileNetV2 of the texture and colour terms, of\n"
    "                         content and perceptual without --content-features,\n"
    "                         and the frozen one inside uhd (dereflect)\n"
    "                         (default ~/.cache/lumos/mobilenet_v2_block10.safetensors,\n"
    "                         made by train/fetch-mobilenet.sh)\n"
    "  --content-features FILE VGG-19 in torchvision's layout (safetensors) for the\n"
    "                         content and perceptual terms, relu5_4 as in the\n"
    "                         method; default: the MobileNetV2 of --features\n"
    "\n"
    "optimisation:\n"
    "  --steps N              generator steps in all (default 10000)\n"
    "  --batch B              samples per step (default 8)\n"
    "  --crop S               crop side in pixels, even, 8..4096 (default 128)\n"
    "  --lr-g X               generator learning rate (default 5e-4)\n"
    "  --lr-g-final X         let the generator's rate fall from --lr-g to X by the\n"
    "                         last step, along a half cosine (default: constant)\n"
    "  --lr-d X               discriminators' learning rate (default 1e-5)\n"
    "  --beta1 X, --beta2 X   Adam's betas (default 0.5, 0.9)\n"
    "  --d-every K            a discriminator step every K generator steps (default 10)\n"
    "  --seed S               the seed of every random choice (default 1)\n"
    "  --threads N            samples processed at once (default: one per core)\n"
    "  --cache-mb N           decoded photos kept in memory for their next visit\n"
    "                         (default: a quarter of this machine's memory; 0:\n"
    "                         decode every time)\n"
    "\n"
    "progress and resuming:\n"
    "  --log FILE             CSV log: step, seconds, each term's value and gradient\n"
    "                         norm, lr (appended to on --resume)\n"
    "  --preview FILE         PNG, rows of held-out crops: classical render |\n"
    "                         network output | target\n"
    "  --preview-every N      steps between previews (default 500; also at the end)\n"
    "  --checkpoint FILE      the resumable state, written atomically\n"
    "  --checkpoint-every N   steps between checkpoints (default 500; also at the end)\n"
    "  --resume               continue from --checkpoint (which must exist and match\n"
    "                         --net, --input, --mode, --crop, --batch and --seed)\n"
    "                         exactly as the run would have gone on\n"
    "  --quiet                no progress lines or summary\n"
    "\n"
    "Across processes: mpirun -np N lumos train ... splits each batch among N ranks\n"
    "(Open MPI; the same weights as one process, to float rounding).\n"
    "Ctrl-C (SIGINT or SIGTERM) ends the run after the current step and writes the\n"
    "checkpoint and the weights; a second Ctrl-C quits at once. Unreadable data\n"
    "files are skipped, reported and counted.\n"
    "Exit: 0 done, 1 failure, 2 usage error, 130 interrupted.\n";

static volatile sig_atomic_t stop_requested;

/* The first signal asks the trainer to stop after its step; a second one
 * ends the process as the signal would have. */
static void on_stop_signal(int sig)
{
    if (stop_requested) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_requested = 1;
    static const char msg[] = "\nlumos: stopping after this step (again to quit at once)\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
}

/* Notices (skipped files) on their own line, clearing a progress line. */
static void print_train_notice(void *user, const char *message)
{
    (void)user;
    fprintf(stderr, "%s%s: note: %s\n", isatty(STDERR_FILENO) ? "\r\033[K" : "", cli_prog, message);
}

int cmd_train(int argc, char **argv)
{
    lumos__train_options o;
    lumos__train_options_init(&o);
    int have_net = 0, quiet = 0;
    const char *terms_spec = NULL, *content_features = NULL;
    strlist data = {0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_train, stdout);
            return EXIT_ALL_OK;
        } else if (is_option(argc, argv, &i, "--task", NULL, &v)) {
            if (strcmp(v, "isp") && strcmp(v, "dereflect"))
                die_usage("--task: '%s' is not a training task (isp, dereflect)", v);
            o.task = v;
        } else if (is_option(argc, argv, &i, "--net", NULL, &v)) {
            o.net = v;
            have_net = 1;
        } else if (!strncmp(a, "--data=", 7)) {
            strlist_add(&data, a + 7);
        } else if (!strcmp(a, "--data")) {
            if (i + 1 >= argc || argv[i + 1][0] == '-')
                die_usage("--data needs at least one source");
            while (i + 1 < argc && argv[i + 1][0] != '-') strlist_add(&data, argv[++i]);
        } else if (is_option(argc, argv, &i, "--out", "-o", &v)) {
            o.out = v;
        } else if (is_option(argc, argv, &i, "--init", NULL, &v)) {
            o.init = v;
        } else if (is_option(argc, argv, &i, "--input", NULL, &v)) {
            if (!strcmp(v, "sensor")) o.input = LUMOS_INPUT_SENSOR;
            else if (!strcmp(v, "agnostic")) o.input = LUMOS_INPUT_AGNOSTIC;
            else die_usage("--input: sensor or agnostic");
        } else if (is_option(argc, argv, &i, "--mode", NULL, &v)) {
            if (!strcmp(v, "unpaired")) o.mode = LUMOS__TRAIN_UNPAIRED;
            else if (!strcmp(v, "paired")) o.mode = LUMOS__TRAIN_PAIRED;
            else die_usage("--mode: unpaired or paired");
        } else if (is_option(argc, argv, &i, "--terms", NULL, &v)) {
            terms_spec = v;
        } else if (is_option(argc, argv, &i, "--features", NULL, &v)) {
            o.features = v;
        } else if (is_option(argc, argv, &i, "--content-features", NULL, &v)) {
            content_features = o.content_features = v;
        } else if (is_option(argc, argv, &i, "--steps", NULL, &v)) {
            o.steps = (uint64_t)parse_int("--steps", v, 1, INT_MAX);
        } else if (is_option(argc, argv, &i, "--batch", NULL, &v)) {
            o.batch = parse_int("--batch", v, 1, 1024);
        } else if (is_option(argc, argv, &i, "--crop", NULL, &v)) {
            o.crop = parse_int("--crop", v, 8, 4096);
            if (o.crop % 2) die_usage("--crop: an even size (the mosaic's 2x2 blocks)");
        } else if (is_option(argc, argv, &i, "--lr-g", NULL, &v)) {
            o.lr_g = parse_number("--lr-g", v, 1e-9, 0.5);
        } else if (is_option(argc, argv, &i, "--lr-g-final", NULL, &v)) {
            o.lr_g_final = parse_number("--lr-g-final", v, 1e-12, 0.5);
        } else if (is_option(argc, argv, &i, "--lr-d", NULL, &v)) {
            o.lr_d = parse_number("--lr-d", v, 1e-9, 0.5);
        } else if (is_option(argc, argv, &i, "--beta1", NULL, &v)) {
            o.beta1 = parse_number("--beta1", v, 0, 0.9999);
        } else if (is_option(argc, argv, &i, "--beta2", NULL, &v)) {
            o.beta2 = parse_number("--beta2", v, 0, 0.99999);
        } else if (is_option(argc, argv, &i, "--d-every", NULL, &v)) {
            o.d_every = parse_int("--d-every", v, 1, INT_MAX);
        } else if (is_option(argc, argv, &i, "--seed", NULL, &v)) {
            char *end;
            errno = 0;
            unsigned long long seed = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-')
                die_usage("--seed: '%s' is not a non-negative integer", v);
            o.seed = seed;
        } else if (is_option(argc, argv, &i, "--threads", "-j", &v)) {
            o.threads = parse_int("--threads", v, 1, 256);
        } else if (is_option(argc, argv, &i, "--cache-mb", NULL, &v)) {
            o.cache_mb = (size_t)parse_int("--cache-mb", v, 0, 1 << 24);
        } else if (is_option(argc, argv, &i, "--log", NULL, &v)) {
            o.log = v;
        } else if (is_option(argc, argv, &i, "--preview", NULL, &v)) {
            o.preview = v;
        } else if (is_option(argc, argv, &i, "--preview-every", NULL, &v)) {
            o.preview_every = parse_int("--preview-every", v, 1, INT_MAX);
        } else if (is_option(argc, argv, &i, "--checkpoint", NULL, &v)) {
            o.checkpoint = v;
        } else if (is_option(argc, argv, &i, "--checkpoint-every", NULL, &v)) {
            o.checkpoint_every = parse_int("--checkpoint-every", v, 1, INT_MAX);
        } else if (!strcmp(a, "--resume")) {
            o.resume = 1;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            die_usage("train: unknown option '%s'", a);
        } else {
            die_usage("train: unexpected argument '%s' (data sources follow --data)", a);
        }
    }
    const int dereflect = !strcmp(o.task, "dereflect");
    if (!have_net)
        die_usage("train: --net is required (%s)", dereflect ? "uhd" : "efficient, robust or rmfa-tiny");
    if (!net_known(o.task, o.net)) {
        char names[256];
        net_names(o.task, names, sizeof names);
        die_usage("--net: '%s' is not a %s network (%s)", o.net, o.task, names);
    }
    if (dereflect && o.crop % 128) die_usage("--crop: uhd trains on a multiple of 128 (--crop 256)");
    if (!data.count) die_usage("train: --data is required (directories, lists or files)");
    if (!o.out) die_usage("train: --out FILE is required (the trained weights)");
    if (o.resume && !o.checkpoint) die_usage("--resume needs --checkpoint FILE");
    if (o.preview && lumos_format_from_path(o.preview) != LUMOS_FORMAT_PNG)
        die_usage("--preview: a .png file name");

    lumos_ctx *ctx = lumos_ctx_new();
    if (!ctx) {
        fprintf(stderr, "%s: out of memory\n", cli_prog);
        return EXIT_SOME_FAILED;
    }
    /* The feature networks the terms use: real ones always (a random one is
     * for tests). The MobileNetV2 serves texture and colour, and content and
     * perceptual unless --content-features gives them a VGG-19. */
    char default_features[PATH_MAX];
    if (!o.features) {
        const char *home = getenv("HOME");
        snprintf(default_features, sizeof default_features,
                 "%s/.cache/lumos/mobilenet_v2_block10.safetensors", home ? home : "");
        o.features = default_features;
    }
    const char *spec = terms_spec       ? terms_spec
                       : dereflect      ? lumos__dereflect_default_terms()
                                        : lumos__train_default_terms(o.mode);
    const int wants_content = strstr(spec, "content") || strstr(spec, "perceptual");
    /* a fresh uhd starts from the MobileNetV2 inside it */
    const int wants_mobilenet = strstr(spec, "texture") || strstr(spec, "colour") ||
                                (wants_content && !content_features) ||
                                (dereflect && !o.init && !o.resume);
    int missing = 1;
    if (wants_mobilenet && access(o.features, R_OK) != 0)
        fprintf(stderr, "%s: error: %s: %s (the feature network: run train/fetch-mobilenet.sh %s, "
                "or give --features FILE)\n", cli_prog, o.features, strerror(errno), o.features);
    else if (wants_content && content_features && access(content_features, R_OK) != 0)
        fprintf(stderr, "%s: error: %s: %s (--content-features: a VGG-19 state_dict in "
                "torchvision's layout, saved with safetensors)\n", cli_prog, content_features,
                strerror(errno));
    else
        missing = 0;
    if (missing) {
        lumos_ctx_free(ctx);
        strlist_free(&data);
        return EXIT_SOME_FAILED;
    }
    lumos__gan_options gan;
    lumos__gan_options_init(&gan);
    gan.features = wants_mobilenet ? o.features : NULL; /* NULL: a random one, unused */
    gan.content_features = wants_content ? content_features : NULL;
    gan.seed = o.seed;
    lumos__train_term *terms = NULL;
    int n_terms = 0;
    int terms_rc = lumos__train_terms_parse(ctx, spec, &gan, &terms, &n_terms);
    if (terms_rc != LUMOS_OK) {
        /* a bad spec is a usage error; a feature network that fails to load is not */
        if (terms_spec && terms_rc == LUMOS_E_ARG) die_usage("--terms: %s", lumos_last_error(ctx));
        fprintf(stderr, "%s: error: %s\n", cli_prog, lumos_last_error(ctx));
        lumos_ctx_free(ctx);
        strlist_free(&data);
        return EXIT_SOME_FAILED;
    }
    for (int i = 0; i < n_terms; i++)
        if (terms[i].needs_aligned_target && o.mode != LUMOS__TRAIN_PAIRED && !dereflect)
            die_usage("--terms: %s needs --mode paired", terms[i].name);
    o.terms = terms;
    o.n_terms = n_terms;
    o.sources = (const char *const *)data.items;
    o.n_sources = (int)data.count;
    o.progress = !quiet;
    o.stop = &stop_requested;
    if (o.threads) lumos_ctx_set_threads(ctx, o.threads);
    lumos_ctx_set_notice(ctx, print_train_notice, NULL);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* A step allocates and frees the same few MB of maps and pipeline
     * intermediates again and again; glibc would hand those to mmap and
     * back, and the kernel zero every page anew (8 % of a discriminator
     * step here). Keep them in the heap instead. */
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);

    /* Under mpirun, one rank of several: rank 0 reports and writes. */
    lumos__train_comm comm;
    if (cli_mpi_start(NULL, NULL, &comm)) {
        o.comm = &comm;
        if (comm.rank) {
            quiet = 1;
            o.progress = 0;
            lumos_ctx_set_notice(ctx, NULL, NULL);
        }
    }
    lumos__train_result res;
    int rc = lumos__train(ctx, &o, &res);
    int code = rc != LUMOS_OK ? EXIT_SOME_FAILED : res.interrupted ? EXIT_INTERRUPTED : EXIT_ALL_OK;
    if (rc != LUMOS_OK) {
        fprintf(stderr, "%s: error: %s\n", cli_prog, lumos_last_error(ctx));
    } else if (!quiet) {
        fprintf(stderr, "%s: %s %s at step %" PRIu64 " of %" PRIu64 " (%" PRIu64 " this run, "
                "%.1f s, %.3f s/step); weights: %s", cli_prog, o.net,
                res.interrupted ? "interrupted" : "trained", res.step, o.steps,
                res.step - res.first_step, res.seconds, res.seconds_per_step, o.out);
        if (o.checkpoint) fprintf(stderr, "; checkpoint: %s", o.checkpoint);
        if (res.skipped_files) fprintf(stderr, "; %zu bad data files skipped", res.skipped_files);
        if (o.comm)
            fprintf(stderr, "; %d ranks: %.2f MB summed a step, %.2f s in the collectives",
                    o.comm->size, res.comm_bytes / 1e6, res.comm_seconds);
        fputc('\n', stderr);
    }
    cli_mpi_finish();
    for (int i = 0; i < n_terms; i++) lumos__train_term_free(&terms[i]);
    free(terms);
    lumos_ctx_free(ctx);
    strlist_free(&data);
    return code;
}

