/* test_ref_nets.c — the plain-C reference of the three lightweight ISP nets
 * (tests/ref/isp_nets_ref.c) against our PyTorch modules (tests/torch/isp_nets.py)
 * on random weights and image-like mosaics; and its bilinear resampler alone
 * against nn.Upsample / F.interpolate on odd and even sizes.
 *
 *   test_ref_nets PYTHON ISP_NETS_PY
 *
 * Exits 77 when PYTHON cannot import torch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ref/isp_nets_ref.h"
#include "ref/st_min.h"

static const char *python, *script;
static char workdir[256];

static int run(const char *cmd) {
    fflush(stdout);
    int rc = system(cmd);
    return rc;
}

/* ref_tensor_fn over an st_file; `hide` names one tensor to report missing. */
typedef struct {
    const st_file *st;
    const char *hide;
} lookup;

static const float *find_tensor(void *user, const char *name) {
    const lookup *l = user;
    if (l->hide && !strcmp(name, l->hide)) return NULL;
    const st_tensor *t = st_find(l->st, name);
    return t ? t->data : NULL;
}

/* Every tensor of the file is in the table with the same shape and back. */
static void check_specs(ref_net net, const st_file *st) {
    const ref_tensor_spec *specs;
    size_t n = ref_isp_tensors(net, &specs);
    int64_t params = 0;
    CHECK(n == st->count, "%s: %zu tensors in the table, %zu in the file", ref_isp_name(net), n,
          st->count);
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = st_find(st, specs[i].name);
        CHECK(t != NULL, "%s: %s not in the file", ref_isp_name(net), specs[i].name);
        if (!t) continue;
        int same = t->ndim == specs[i].ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == specs[i].shape[d];
        CHECK(same, "%s: %s: shape differs from the table", ref_isp_name(net), specs[i].name);
        int64_t c = 1;
        for (int d = 0; d < specs[i].ndim; d++) c *= specs[i].shape[d];
        params += c;
    }
    static const int64_t expected[] = {3060, 1616, 29223};
    CHECK(params == expected[net], "%s: %lld parameters in the table", ref_isp_name(net),
          (long long)params);
}

/* One case: isp_nets.py make, then the C reference on the same inputs. */
static void net_case(ref_net net, int width, int height, int seed, const char *black_arg,
                     double gain) {
    char cmd[1024], path[512], err[256];
    snprintf(cmd, sizeof cmd,
             "'%s' '%s' make %s '%s' --width %d --height %d --seed %d --gain %g%s%s", python,
             script, ref_isp_name(net), workdir, width, height, seed, gain,
             black_arg ? " --black " : "", black_arg ? black_arg : "");
    int rc = run(cmd);
    CHECK(rc == 0, "%s failed (%d)", cmd, rc);
    if (rc) return;

    snprintf(path, sizeof path, "%s/meta.txt", workdir);
    FILE *f = fopen(path, "r");
    int mw = 0, mh = 0;
    float black[4] = {0}, white = 0;
    int got = f ? fscanf(f, "%d %d %f %f %f %f %f", &mw, &mh, &black[0], &black[1], &black[2],
                         &black[3], &white)
                : 0;
    if (f) fclose(f);
    CHECK(got == 7 && mw == width && mh == height, "%s: meta.txt unreadable", ref_isp_name(net));
    if (got != 7) return;

    size_t msize = 0, osize = 0;
    snprintf(path, sizeof path, "%s/mosaic.u16", workdir);
    uint16_t *mosaic = (uint16_t *)read_all(path, &msize);
    snprintf(path, sizeof path, "%s/output.f32", workdir);
    float *want = (float *)read_all(path, &osize);
    size_t n = (size_t)3 * width * height;
    st_file st;
    snprintf(path, sizeof path, "%s/weights.safetensors", workdir);
    int st_rc = st_load(path, &st, err, sizeof err);
    CHECK(st_rc == 0, "%s", err);
    CHECK(mosaic && msize == sizeof *mosaic * width * height, "mosaic.u16: bad size %zu", msize);
    CHECK(want && osize == sizeof *want * n, "output.f32: bad size %zu", osize);
    if (st_rc || !mosaic || !want || msize != sizeof *mosaic * width * height ||
        osize != sizeof *want * n) {
        if (!st_rc) st_free(&st);
        free(mosaic);
        free(want);
        return;
    }
    check_specs(net, &st);

    float *got_out = malloc(sizeof *got_out * n);
    lookup l = {&st, NULL};
    rc = ref_isp_forward(net, find_tensor, &l, mosaic, width, height, black, white, got_out);
    CHECK(rc == 0, "%s %dx%d: ref_isp_forward returned %d", ref_isp_name(net), width, height, rc);
    if (rc == 0) {
        double max_abs = 0, max_rel = 0, max_want = 0;
        size_t worst = 0;
        for (size_t i = 0; i < n; i++) {
            double e = fabs((double)got_out[i] - want[i]);
            double rel = e / fmax(1.0, fabs(want[i]));
            if (!(rel <= max_rel)) {
                max_rel = rel;
                worst = i;
            }
            if (e > max_abs) max_abs = e;
            if (fabs(want[i]) > max_want) max_want = fabs(want[i]);
        }
        printf("%-9s %3dx%-3d black %g/%g/%g/%g gain %g: max |ref - torch| %.3g, scaled %.3g "
               "(max |torch| %.3g)\n",
               ref_isp_name(net), width, height, black[0], black[1], black[2], black[3], gain,
               max_abs, max_rel, max_want);
        size_t hw = (size_t)width * height;
        CHECK(max_rel <= 1e-5, "%s %dx%d: error %.3g at c%zu y%zu x%zu (ref %.9g, torch %.9g)",
              ref_isp_name(net), width, height, max_rel, worst / hw, worst % hw / width,
              worst % width, got_out[worst], want[worst]);
    }

    /* A missing tensor is reported, not dereferenced. */
    const ref_tensor_spec *specs;
    size_t nspec = ref_isp_tensors(net, &specs);
    l.hide = specs[nspec - 1].name;
    rc = ref_isp_forward(net, find_tensor, &l, mosaic, width, height, black, white, got_out);
    CHECK(rc == -1, "%s: missing %s: returned %d", ref_isp_name(net), l.hide, rc);

    free(got_out);
    st_free(&st);
    free(mosaic);
    free(want);
}

/* resize.bin from `isp_nets.py resize`: the resampler alone. */
static void resize_cases(void) {
    char cmd[1024], path[512];
    snprintf(cmd, sizeof cmd, "'%s' '%s' resize '%s' --seed 7", python, script, workdir);
    int rc = run(cmd);
    CHECK(rc == 0, "%s failed (%d)", cmd, rc);
    if (rc) return;
    size_t size = 0;
    snprintf(path, sizeof path, "%s/resize.bin", workdir);
    unsigned char *buf = read_all(path, &size), *p = buf, *end = buf + size;
    CHECK(buf && size >= 4, "resize.bin unreadable");
    if (!buf || size < 4) {
        free(buf);
        return;
    }
    uint32_t count, hdr[6];
    memcpy(&count, p, 4);
    p += 4;
    double worst = 0;
    for (uint32_t k = 0; k < count; k++) {
        if (end - p < 24) break;
        memcpy(hdr, p, 24);
        p += 24;
        size_t nin = (size_t)hdr[0] * hdr[1] * hdr[2], nout = (size_t)hdr[0] * hdr[3] * hdr[4];
        if ((size_t)(end - p) < 4 * (nin + nout)) break;
        float *in = malloc(4 * nin), *want = malloc(4 * nout), *got = malloc(4 * nout);
        memcpy(in, p, 4 * nin);
        memcpy(want, p + 4 * nin, 4 * nout);
        p += 4 * (nin + nout);
        ref_bilinear_resize(in, (int)hdr[0], (int)hdr[1], (int)hdr[2], got, (int)hdr[3],
                            (int)hdr[4]);
        double e = 0;
        for (size_t i = 0; i < nout; i++) e = fmax(e, fabs((double)got[i] - want[i]));
        CHECK(e <= 1e-6, "resize %ux%u -> %ux%u (%s): max error %.3g", hdr[1], hdr[2], hdr[3],
              hdr[4], hdr[5] ? "interpolate" : "upsample x2", e);
        worst = fmax(worst, e);
        free(in);
        free(want);
        free(got);
    }
    CHECK(p == end, "resize.bin: %td bytes left over", end - p);
    printf("bilinear  %u cases (upsample x2 and interpolate, odd and even sizes): max error %.3g\n",
           count, worst);
    free(buf);
}

static void remove_workdir(void) {
    static const char *names[] = {"weights.safetensors", "mosaic.u16", "meta.txt", "output.f32",
                                  "resize.bin"};
    char path[512];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", workdir, names[i]);
        unlink(path);
    }
    rmdir(workdir);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PYTHON ISP_NETS_PY\n", argv[0]);
        return 2;
    }
    python = argv[1];
    script = argv[2];
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch' >/dev/null 2>&1", python);
    if (run(cmd) != 0) {
        printf("[SKIP] %s cannot import torch\n", python);
        return 77;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(workdir, sizeof workdir, "%s/lumos_ref_nets.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(workdir)) {
        perror("mkdtemp");
        return 1;
    }

    /* Unsupported sizes are refused without touching the tensors. */
    float black0[4] = {64, 64, 64, 64}, dummy[3 * 18 * 6];
    uint16_t zeros[18 * 6] = {0};
    lookup none = {NULL, NULL};
    CHECK(ref_isp_forward(REF_EFFICIENT, find_tensor, &none, zeros, 5, 6, black0, 1023, dummy) ==
              -2, "odd width accepted");
    CHECK(ref_isp_forward(REF_RMFA_TINY, find_tensor, &none, zeros, 6, 18, black0, 1023, dummy) ==
              -2, "RMFA at 18 rows (2 mod 4) accepted");

    resize_cases();

    static const int sizes[][2] = {{8, 8}, {16, 12}, {64, 48}, {36, 20}};
    int seed = 1;
    for (int net = REF_EFFICIENT; net <= REF_RMFA_TINY; net++) {
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
            net_case((ref_net)net, sizes[s][0], sizes[s][1], seed++, NULL, 1.0);
        /* Per-site black levels above some samples: the sites' order, the
         * 4-channel nets' negative inputs and RMFA's clamp at 0. */
        net_case((ref_net)net, 16, 12, seed++, "80,70,66,90", 1.0);
    }
    /* At torch's default init RMFA's output barely depends on some parts (its
     * channel attention moves it by ~1e-4); weights ×2 make them show. */
    net_case(REF_RMFA_TINY, 16, 12, seed++, "80,70,66,90", 2.0);
    net_case(REF_RMFA_TINY, 36, 20, seed++, NULL, 2.0);
    /* Sizes ≡ 1 (mod 4): up2(x1 + up2(x3)) is one short, so the final
     * F.interpolate runs (multiples of 4 never reach it). */
    net_case(REF_RMFA_TINY, 17, 13, seed++, NULL, 1.0);
    net_case(REF_RMFA_TINY, 21, 8, seed++, NULL, 1.0);
    net_case(REF_RMFA_TINY, 17, 13, seed++, NULL, 2.0);

    if (failures)
        fprintf(stderr, "%d failure(s); files kept in %s\n", failures, workdir);
    else
        remove_workdir();
    return failures ? 1 : 0;
}
