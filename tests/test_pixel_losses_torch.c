/* test_pixel_losses_torch.c PYTHON PIXEL_LOSSES_PY — the reflection-removal
 * pixel losses of train/losses.h (gradient L1, exclusion) against the
 * float64 PyTorch reference of tests/torch/pixel_losses.py: value and every
 * gradient element by autograd, on random images of several shapes (odd
 * sides that avg_pool2d crops, three pyramid levels, two, none, a row), and
 * on a reflection constant along its rows (its x differences all 0: alpha's
 * fallback and the zero-mean convention, beside a live y term). Errors are
 * relative with a max(1, |want|) denominator, and, as gradient elements are
 * far below 1, also relative to the array's largest element.
 * Skips (77) when the interpreter cannot import torch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "train/losses.h"
#include "train/unprocess.h"

#define TOL 1e-5

static const struct {
    int w, h, flat_rows; /* the reflection constant along each row */
} cases[] = {{9, 7, 0}, {16, 12, 0}, {33, 20, 0}, {5, 3, 0}, {7, 1, 0}, {12, 8, 1}};
enum { NCASES = sizeof cases / sizeof *cases };

static int write_file(const char *path, const float *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, sizeof *data, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* Checks got against want (n elements); returns the max relative error. */
static double compare(const char *what, int w, int h, const float *got, const float *want, size_t n)
{
    double worst = 0, big = 0, diff = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        worst = fmax(worst, e / fmax(1.0, fabs((double)want[i])));
        diff = fmax(diff, e);
        big = fmax(big, fabs((double)want[i]));
        if (!(e == e)) worst = INFINITY; /* NaN */
    }
    const double of_largest = big > 0 ? diff / big : diff;
    CHECK(worst <= TOL, "%dx%d %s: max relative error %.3e vs PyTorch", w, h, what, worst);
    CHECK(of_largest <= TOL, "%dx%d %s: max error %.3e of the largest element", w, h, what, of_largest);
    printf("%2dx%-2d %-17s max relative error %.2e (%.2e of its largest element %.3g)\n", w, h,
           what, worst, of_largest, big);
    return worst;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PYTHON pixel_losses.py\n", argv[0]);
        return 2;
    }
    if (!torch_importable(argv[1])) return 77;
    char dir[] = "/tmp/lumos-pixel-losses-XXXXXX", path[512], cmd[2048];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    float *a[NCASES], *b[NCASES];
    uint64_t rng = 4242;
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    FILE *list = fopen(path, "w");
    CHECK(list != NULL, "cannot write %s", path);
    for (int k = 0; k < NCASES; k++) {
        const size_t n = (size_t)cases[k].w * cases[k].h * 3;
        a[k] = malloc(n * sizeof *a[k]);
        b[k] = malloc(n * sizeof *b[k]);
        if (!a[k] || !b[k]) return 1;
        for (size_t i = 0; i < n; i++) {
            a[k][i] = (float)lumos__rng_uniform(&rng);
            b[k][i] = !cases[k].flat_rows ? (float)lumos__rng_uniform(&rng)
                      : i % (3 * (size_t)cases[k].w) < 3 ? (float)lumos__rng_uniform(&rng)
                                                         : b[k][i - 3];
        }
        snprintf(path, sizeof path, "%s/%d.a.f32", dir, k);
        CHECK(write_file(path, a[k], n), "cannot write %s", path);
        snprintf(path, sizeof path, "%s/%d.b.f32", dir, k);
        CHECK(write_file(path, b[k], n), "cannot write %s", path);
        if (list) fprintf(list, "%d %d %d\n", k, cases[k].w, cases[k].h);
    }
    if (list) fclose(list);
    snprintf(cmd, sizeof cmd, "%s %s %s", argv[1], argv[2], dir);
    CHECK(system(cmd) == 0, "%s failed", cmd);

    for (int k = 0; k < NCASES; k++) {
        const int w = cases[k].w, h = cases[k].h;
        const size_t n = (size_t)w * h * 3;
        size_t bytes = 0;
        snprintf(path, sizeof path, "%s/%d.out.f32", dir, k);
        float *want = (float *)read_all(path, &bytes);
        float *got = malloc((3 * n + 2) * sizeof *got);
        if (want && got && bytes == (3 * n + 2) * sizeof *want) {
            /* the same layout as the script's: value, gradient(s) */
            got[0] = (float)lumos__loss_gradient_l1(a[k], b[k], w, h, got + 1);
            got[n + 1] = (float)lumos__loss_exclusion(a[k], b[k], w, h, got + n + 2, got + 2 * n + 2);
            compare("gradient l1", w, h, got, want, 1);
            compare("d gradient l1/da", w, h, got + 1, want + 1, n);
            compare(cases[k].flat_rows ? "exclusion, r rows" : "exclusion", w, h, got + n + 1,
                    want + n + 1, 1);
            compare("d exclusion/dt", w, h, got + n + 2, want + n + 2, n);
            compare("d exclusion/dr", w, h, got + 2 * n + 2, want + 2 * n + 2, n);
            if (w >= 2 && h >= 2)
                CHECK(want[n + 1] > 0, "%dx%d: PyTorch's exclusion is %g", w, h, want[n + 1]);
        } else {
            CHECK(0, "%s missing or of the wrong size (%zu bytes)", path, bytes);
        }
        free(want);
        free(got);
        free(a[k]);
        free(b[k]);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", dir);
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
