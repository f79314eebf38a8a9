/* test_dereflect_train.c [PHOTO_DIR] — the reflection-removal training task
 * (train/dereflect_task.c) on a few of skimage's photos: a short run of the
 * uhd network lowers its loss below the untrained network's on the same
 * batches, and its weights load back as a uhd network;
 * held-out pairs are made the same way twice and differ from their target;
 * wrong networks, crops and terms are refused. Skips (77) without the
 * photos. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "lumos.h"
#include "train/data.h"
#include "train/dereflect_task.h"
#include "train/trainer.h"

static const char *photos[] = {"astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
                               "motorcycle_left.png", "hubble_deep_field.jpg", "ihc.png",
                               "retina.jpg"};
enum { N_PHOTOS = sizeof photos / sizeof *photos, STEPS = 300, WINDOW = 100 };

typedef struct seen {
    double l1[STEPS];
    int n, finite;
} seen;

static void record(void *user, const lumos__train_report *r)
{
    seen *s = user;
    if (s->n < STEPS) s->l1[s->n] = r->value[0];
    for (int i = 0; i < r->n_terms; i++) s->finite &= isfinite(r->value[i]);
    s->n++;
}

static double mean(const double *v, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    return sum / n;
}

static void base_options(lumos__train_options *o, const char *const *src)
{
    lumos__train_options_init(o);
    o->task = "dereflect";
    o->net = "uhd";
    o->sources = src;
    o->n_sources = 1;
    o->crop = 128;
    o->batch = 4;
    o->threads = 2;
    o->lr_g = 1e-3;
}

/* l1 over a run's last WINDOW steps (the same samples whatever the rate:
 * one seed draws one sequence), and the weights it wrote. */
static double last_l1(lumos_ctx *ctx, const char *const *src, const lumos__train_term *terms,
                      int n_terms, double lr, const char *out, double *rate)
{
    lumos__train_options o;
    base_options(&o, src);
    o.terms = terms;
    o.n_terms = n_terms;
    o.steps = STEPS;
    o.lr_g = lr;
    o.out = out;
    seen s = {.finite = 1};
    o.on_step = record;
    o.user = &s;
    lumos__train_result res;
    int rc = lumos__train(ctx, &o, &res);
    CHECK(rc == LUMOS_OK && s.n == STEPS, "run at rate %g: %s", lr, lumos_last_error(ctx));
    CHECK(s.finite, "a loss was not finite at rate %g", lr);
    *rate = res.seconds_per_step;
    return mean(s.l1 + STEPS - WINDOW, WINDOW);
}

/* Training beats the network as it starts (T = I, the input: its reflection
 * layers start at 0) on the very same batches: a run at a rate too small to
 * move it is the baseline. */
static void test_loss_falls(lumos_ctx *ctx, const char *const *src, const char *dir)
{
    lumos__train_term *terms = NULL;
    int n_terms = 0;
    CHECK(lumos__train_terms_parse(ctx, "l1:1,gradient:1,exclusion:0.1", NULL, &terms, &n_terms) == 0,
          "terms: %s", lumos_last_error(ctx));
    char out[512];
    snprintf(out, sizeof out, "%s/uhd.safetensors", dir);
    double rate;
    const double still = last_l1(ctx, src, terms, n_terms, 1e-9, out, &rate);
    const double trained = last_l1(ctx, src, terms, n_terms, 1e-3, out, &rate);
    printf("uhd, l1 + gradient + exclusion, %d steps: l1 over the last %d %.4f, %.4f untrained on "
           "the same batches (%.2f s/step)\n", STEPS, WINDOW, trained, still, rate);
    CHECK(trained < 0.95 * still, "training did not lower the loss: %.4f vs %.4f untrained", trained,
          still);
    lumos_net *net = NULL;
    CHECK(lumos_net_load(ctx, "uhd", out, &net) == LUMOS_OK, "weights: %s", lumos_last_error(ctx));
    lumos_net_free(net);
    for (int i = 0; i < n_terms; i++) lumos__train_term_free(&terms[i]);
    free(terms);
}

static void test_refusals(lumos_ctx *ctx, const char *const *src)
{
    lumos__train_options o;
    base_options(&o, src);
    o.steps = 1;
    o.crop = 96;
    CHECK(lumos__train(ctx, &o, NULL) == LUMOS_E_ARG, "crop 96 accepted");
    base_options(&o, src);
    o.net = "efficient";
    CHECK(lumos__train(ctx, &o, NULL) == LUMOS_E_ARG, "an ISP trained as dereflect");
    lumos__train_term *terms = NULL;
    int n = 0;
    CHECK(lumos__train_terms_parse(ctx, "l1,mse-classic", NULL, &terms, &n) == 0, "terms");
    base_options(&o, src);
    o.terms = terms;
    o.n_terms = n;
    CHECK(lumos__train(ctx, &o, NULL) == LUMOS_E_ARG, "mse-classic accepted");
    for (int i = 0; i < n; i++) lumos__train_term_free(&terms[i]);
    free(terms);
}

static void test_heldout(lumos_ctx *ctx, const char *const *src)
{
    lumos__dataset *ds = NULL;
    CHECK(lumos__dataset_open(ctx, src, 1, &ds) == 0, "dataset: %s", lumos_last_error(ctx));
    if (!ds) return;
    const size_t n_test = lumos__dataset_count(ds, LUMOS__SPLIT_TEST);
    /* the split of the photos linked here depends on their names only */
    if (n_test < 2) {
        CHECK(lumos__dereflect_heldout_make(ctx, ds, 0, 64, 1, NULL, NULL) == LUMOS_E_ARG,
              "a pair from a test split of %zu", n_test);
        lumos__dataset_free(ds);
        return;
    }
    const int size = 96;
    const size_t px = (size_t)size * size * 3;
    float *a = malloc(4 * px * sizeof *a), *at = a + px, *b = a + 2 * px, *bt = a + 3 * px;
    CHECK(lumos__dereflect_heldout_make(ctx, ds, 0, size, 7, a, at) == 0, "%s", lumos_last_error(ctx));
    CHECK(lumos__dereflect_heldout_make(ctx, ds, 0, size, 7, b, bt) == 0, "%s", lumos_last_error(ctx));
    CHECK(!memcmp(a, b, 2 * px * sizeof *a), "the same held-out pair differs between two makes");
    double diff = 0;
    for (size_t k = 0; k < px; k++) diff += fabs(a[k] - at[k]);
    CHECK(diff / px > 1e-3, "the mixture equals its target (mean difference %.2e)", diff / px);
    free(a);
    lumos__dataset_free(ds);
}

int main(int argc, char **argv)
{
    const char *photo_dir = argc > 1 ? argv[1] : "/usr/lib/python3/dist-packages/skimage/data";
    char tmp[] = "/tmp/lumos-dereflect-train-XXXXXX", data[600], cmd[1400];
    for (int i = 0; i < N_PHOTOS; i++) {
        snprintf(cmd, sizeof cmd, "%s/%s", photo_dir, photos[i]);
        if (access(cmd, R_OK)) {
            printf("[SKIP] %s not found (install python3-skimage)\n", cmd);
            return 77;
        }
    }
    if (!mkdtemp(tmp)) return 1;
    snprintf(data, sizeof data, "%s/photos", tmp);
    mkdir(data, 0700);
    for (int i = 0; i < N_PHOTOS; i++) {
        snprintf(cmd, sizeof cmd, "ln -s %s/%s %s/", photo_dir, photos[i], data);
        CHECK(system(cmd) == 0, "%s", cmd);
    }
    const char *src[] = {data};
    lumos_ctx *ctx = lumos_ctx_new();
    lumos_ctx_set_threads(ctx, 2);
    test_refusals(ctx, src);
    test_heldout(ctx, src);
    test_loss_falls(ctx, src, tmp);
    lumos_ctx_free(ctx);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", tmp);
    printf("%s\n", failures ? "FAILED" : "Success!");
    return failures ? 1 : 0;
}
