/* test_checkpoint.c — checkpoint → read → continue is bit-identical to an
 * uninterrupted run; damaged or mismatched files are refused with
 * LUMOS_E_FORMAT naming the file and the reason, leaving the caller's state
 * alone; a failed write (file-size limit mid-write, a rename that cannot
 * happen) keeps the previous checkpoint and leaves no temporary. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "lumos.h"
#include "train/checkpoint.h"

enum { K = 3 }; /* D steps every K-th step */
static const char NET[] = "toy"; /* the network a checkpoint is of */

/* A stand-in trainer: G and D groups whose grads depend on the params and
 * on an RNG, a data cursor, and the step: everything a resume must restore. */
typedef struct sim {
    size_t ng, nd;
    float *g, *gg, *d, *gd;
    lumos__adam opt;
    uint64_t rng[2], cursor[1], step;
} sim;

static uint64_t xorshift(uint64_t s[2]) /* xorshift128+ */
{
    uint64_t a = s[0], b = s[1];
    s[0] = b;
    a ^= a << 23;
    s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
    return s[1] + b;
}
static float noise(uint64_t s[2]) { return (float)((xorshift(s) >> 40) / 16777216.0 - 0.5); }

static void sim_init(lumos_ctx *ctx, sim *s, size_t ng, size_t nd, uint64_t seed, int extra)
{
    memset(s, 0, sizeof *s);
    s->ng = ng, s->nd = nd;
    s->g = calloc(ng, 4), s->gg = calloc(ng, 4), s->d = calloc(nd, 4), s->gd = calloc(nd, 4);
    if (!s->g || !s->gg || !s->d || !s->gd) exit(1);
    s->rng[0] = seed, s->rng[1] = seed * 31 + 7;
    for (size_t i = 0; i < ng; i++) s->g[i] = 2 * noise(s->rng);
    for (size_t i = 0; i < nd; i++) s->d[i] = 2 * noise(s->rng);
    lumos__adam_init(&s->opt);
    lumos__adam_hparams hg = {5e-4, 0.5, 0.9, 1e-8, 0}, hd = {1e-5, 0.5, 0.9, 1e-8, 0};
    CHECK(!lumos__adam_add_group(ctx, &s->opt, "G", &hg, s->g, s->gg, ng), "add G");
    CHECK(!lumos__adam_add_group(ctx, &s->opt, "D", &hd, s->d, s->gd, nd), "add D");
    if (extra) CHECK(!lumos__adam_add_group(ctx, &s->opt, "E", &hd, s->d, s->gd, nd), "add E");
}

static void sim_free(sim *s)
{
    lumos__adam_free(&s->opt);
    free(s->g), free(s->gg), free(s->d), free(s->gd);
}

static void sim_step(lumos_ctx *ctx, sim *s)
{
    for (size_t i = 0; i < s->ng; i++) s->gg[i] = s->g[i] - 0.3f + noise(s->rng);
    CHECK(!lumos__adam_step(ctx, &s->opt, 0), "%s", lumos_last_error(ctx));
    if (s->step % K == K - 1) {
        for (size_t i = 0; i < s->nd; i++) s->gd[i] = s->d[i] * s->d[i] + noise(s->rng);
        CHECK(!lumos__adam_step(ctx, &s->opt, 1), "%s", lumos_last_error(ctx));
    }
    s->cursor[0] += 16; /* a batch of 16 */
    s->step++;
}

static lumos__checkpoint ck_of(sim *s, char *meta)
{
    lumos__checkpoint ck = {NET, s->step, &s->opt, s->rng, 2, s->cursor, 1, meta};
    return ck;
}

static int same(const sim *a, const sim *b)
{
    int ok = a->step == b->step && !memcmp(a->rng, b->rng, sizeof a->rng) &&
             a->cursor[0] == b->cursor[0] && a->opt.count == b->opt.count;
    for (size_t k = 0; ok && k < a->opt.count; k++) {
        const lumos__adam_group *x = &a->opt.groups[k], *y = &b->opt.groups[k];
        ok = x->n == y->n && x->step == y->step && !memcmp(x->params, y->params, 4 * x->n) &&
             !x->m == !y->m && (!x->m || (!memcmp(x->m, y->m, 4 * x->n) &&
                                          !memcmp(x->v, y->v, 4 * x->n)));
    }
    return ok;
}

static char dir[512];

static void path_of(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

/* Entries of dir holding ".part-" (temporaries), reported. */
static int temporaries(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".part-")) {
            fprintf(stderr, "  temporary left: %s\n", e->d_name);
            n++;
        }
    if (d) closedir(d);
    return n;
}

static int write_file(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(b, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static void resume_is_bit_identical(lumos_ctx *ctx)
{
    enum { BEFORE = 13, AFTER = 20 };
    char path[600];
    path_of(path, sizeof path, "resume.ckp");
    sim a, b, c;
    sim_init(ctx, &a, 300, 50, 1, 0);
    for (int i = 0; i < BEFORE + AFTER; i++) sim_step(ctx, &a);

    sim_init(ctx, &b, 300, 50, 1, 0);
    for (int i = 0; i < BEFORE; i++) sim_step(ctx, &b);
    lumos__checkpoint ck = ck_of(&b, "{\"net\":\"toy\",\"lr_g\":5e-4}");
    CHECK(!lumos__checkpoint_write(ctx, path, &ck), "write: %s", lumos_last_error(ctx));
    CHECK(temporaries() == 0, "temporary after a good write");
    sim_free(&b);

    /* Another seed: every value must come from the file. */
    sim_init(ctx, &c, 300, 50, 99, 0);
    lumos__checkpoint rd = ck_of(&c, NULL);
    CHECK(!lumos__checkpoint_read(ctx, path, &rd), "read: %s", lumos_last_error(ctx));
    c.step = rd.step;
    CHECK(rd.step == BEFORE, "step %llu", (unsigned long long)rd.step);
    CHECK(rd.meta && !strcmp(rd.meta, "{\"net\":\"toy\",\"lr_g\":5e-4}"), "meta \"%s\"",
          rd.meta ? rd.meta : "(null)");
    free(rd.meta);
    CHECK(c.opt.groups[0].step == BEFORE && c.opt.groups[1].step == BEFORE / K,
          "group steps %llu %llu", (unsigned long long)c.opt.groups[0].step,
          (unsigned long long)c.opt.groups[1].step);
    for (int i = 0; i < AFTER; i++) sim_step(ctx, &c);
    CHECK(same(&a, &c), "resumed run differs from the uninterrupted one");
    /* And the comparison can tell: one step more differs. */
    sim_step(ctx, &c);
    CHECK(!same(&a, &c), "one extra step compares equal");
    sim_free(&a);
    sim_free(&c);

    /* Before any step: no moments yet, written as zeros, read back. */
    sim_init(ctx, &a, 10, 5, 3, 0);
    sim_init(ctx, &b, 10, 5, 4, 0);
    ck = ck_of(&a, NULL);
    rd = ck_of(&b, NULL);
    CHECK(!lumos__checkpoint_write(ctx, path, &ck), "write at step 0: %s", lumos_last_error(ctx));
    CHECK(!lumos__checkpoint_read(ctx, path, &rd), "read at step 0: %s", lumos_last_error(ctx));
    CHECK(rd.meta && !*rd.meta, "meta of a NULL string");
    free(rd.meta);
    for (int i = 0; i < 5; i++) sim_step(ctx, &a), sim_step(ctx, &b);
    CHECK(same(&a, &b), "resume from step 0 differs");
    sim_free(&a);
    sim_free(&b);
    unlink(path);
}

/* The sections of a good file: offset and whole length (header + payload). */
typedef struct span {
    size_t off, len;
    char name[64];
} span;

static uint32_t rd32(const uint8_t *b) { return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24; }
static void wr32(uint8_t *b, uint32_t v)
{
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> 8 * i);
}
static void wr64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> 8 * i);
}
static uint64_t rd64(const uint8_t *b) { return rd32(b) | (uint64_t)rd32(b + 4) << 32; }

static size_t spans_of(const uint8_t *b, size_t n, span *sp, size_t max)
{
    size_t k = 0, off = LUMOS__CKP_HEADER_SIZE;
    while (off + LUMOS__CKP_SECTION_HEADER_SIZE <= n && k < max) {
        sp[k].off = off;
        sp[k].len = LUMOS__CKP_SECTION_HEADER_SIZE + (size_t)rd64(b + off + 64);
        memcpy(sp[k].name, b + off, 64);
        sp[k].name[63] = 0;
        off += sp[k++].len;
    }
    return k;
}

/* A file of the good header and the sections listed (indices into sp,
 * -1 ends), with the counts, size and CRC fixed up: damage the CRCs cannot
 * see, for the structural checks. */
static size_t rebuild(const uint8_t *good, const span *sp, const int *take, uint8_t *out)
{
    size_t off = LUMOS__CKP_HEADER_SIZE;
    uint32_t count = 0;
    memcpy(out, good, off);
    for (; *take >= 0; take++, count++) {
        memcpy(out + off, good + sp[*take].off, sp[*take].len);
        off += sp[*take].len;
    }
    wr64(out + 24, off);
    wr32(out + 32, count);
    wr32(out + 60, lumos__crc32(0, out, 60));
    return off;
}

/* Reads path into a fresh trainer (one group extra, or G one shorter, when
 * asked) and expects LUMOS_E_FORMAT with a message naming path and holding
 * `reason`, with the trainer's state untouched. */
static void expect_bad(lumos_ctx *ctx, const char *path, const char *reason, const char *what,
                       int extra, size_t ng, const char *net)
{
    sim s, before;
    sim_init(ctx, &s, ng, 50, 5, extra);
    sim_init(ctx, &before, ng, 50, 5, extra);
    lumos__checkpoint ck = ck_of(&s, NULL);
    ck.net = net;
    int st = lumos__checkpoint_read(ctx, path, &ck);
    const char *msg = lumos_last_error(ctx);
    CHECK(st == LUMOS_E_FORMAT && strstr(msg, path) && strstr(msg, reason),
          "%s: status %d, \"%s\" (expected \"%s\")", what, st, msg, reason);
    CHECK(same(&s, &before) && ck.meta == NULL && ck.step == 0, "%s: state changed by a refused read",
          what);
    sim_free(&s);
    sim_free(&before);
}

static void bad_checkpoints(lumos_ctx *ctx)
{
    char good[600], bad[600];
    path_of(good, sizeof good, "good.ckp");
    path_of(bad, sizeof bad, "bad.ckp");
    sim s;
    sim_init(ctx, &s, 300, 50, 1, 0);
    for (int i = 0; i < 7; i++) sim_step(ctx, &s);
    lumos__checkpoint ck = ck_of(&s, "step=7");
    CHECK(!lumos__checkpoint_write(ctx, good, &ck), "write: %s", lumos_last_error(ctx));
    sim_free(&s);
    size_t n;
    uint8_t *b = read_all(good, &n);
    CHECK(b && n > 1000, "good file: %zu bytes", n);
    if (!b) return;
    uint8_t *m = malloc(2 * n);
    span sp[16];
    size_t ns = spans_of(b, n, sp, 16);
    CHECK(ns == 12 && sp[ns - 1].off + sp[ns - 1].len == n, "%zu sections", ns);
    /* The good file reads (so the refusals below are the damage's doing). */
    sim t;
    sim_init(ctx, &t, 300, 50, 5, 0);
    lumos__checkpoint ok = ck_of(&t, NULL);
    CHECK(!lumos__checkpoint_read(ctx, good, &ok), "good: %s", lumos_last_error(ctx));
    free(ok.meta);
    sim_free(&t);

    /* Truncated: in the magic, the header, a section header, payloads. */
    size_t cuts[] = {0, 5, 10, 40, 63, 64, 64 + 30, sp[1].off + 83, sp[5].off + 200, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu", cuts[i]);
        write_file(bad, b, cuts[i]);
        expect_bad(ctx, bad, cuts[i] ? "truncated" : "empty", what, 0, 300, NET);
    }
    /* A flipped byte in each section's payload, then in its header. */
    for (size_t k = 0; k < ns; k++) {
        char what[96];
        size_t plen = sp[k].len - LUMOS__CKP_SECTION_HEADER_SIZE;
        memcpy(m, b, n);
        m[sp[k].off + LUMOS__CKP_SECTION_HEADER_SIZE + plen / 2] ^= 0x10;
        write_file(bad, m, n);
        snprintf(what, sizeof what, "flipped byte in %s", sp[k].name);
        expect_bad(ctx, bad, "CRC mismatch", what, 0, 300, NET);
        CHECK(strstr(lumos_last_error(ctx), sp[k].name), "%s: message names no section", what);
        memcpy(m, b, n);
        m[sp[k].off + 65] ^= 0x01; /* the size field */
        write_file(bad, m, n);
        snprintf(what, sizeof what, "flipped size of %s", sp[k].name);
        expect_bad(ctx, bad, "header CRC mismatch", what, 0, 300, NET);
    }
    memcpy(m, b, n);
    m[17] ^= 0x40; /* the step */
    write_file(bad, m, n);
    expect_bad(ctx, bad, "header CRC mismatch", "flipped step", 0, 300, NET);

    memcpy(m, b, n);
    m[0] = 'X';
    write_file(bad, m, n);
    expect_bad(ctx, bad, "magic", "wrong magic", 0, 300, NET);
    memcpy(m, b, n);
    wr32(m + 8, 1);
    wr32(m + 60, lumos__crc32(0, m, 60)); /* so the version, not the CRC, is the fault */
    write_file(bad, m, n);
    expect_bad(ctx, bad, "version 1", "wrong version", 0, 300, NET);
    {
        sim s;
        sim_init(ctx, &s, 300, 50, 5, 0);
        lumos__checkpoint other = ck_of(&s, NULL);
        other.net = "tay";
        int st = lumos__checkpoint_read(ctx, good, &other);
        CHECK(st == LUMOS_E_ARG && strstr(lumos_last_error(ctx), "a checkpoint of the toy network, not tay"),
              "another network: %d %s", st, lumos_last_error(ctx));
        sim_free(&s);
    }
    expect_bad(ctx, good, "\"adam.G.params\": 1200 bytes, this trainer expects 1196",
               "G one shorter", 0, 299, NET);
    expect_bad(ctx, good, "Adam groups", "a group more", 1, 300, NET);
    memcpy(m, b, n);
    memcpy(m + n, "xyz", 3);
    write_file(bad, m, n + 3);
    expect_bad(ctx, bad, "trailing", "trailing bytes", 0, 300, NET);

    /* Structural damage with valid CRCs. */
    int drop_last[16], dup_rng[16];
    for (size_t k = 0; k < ns; k++) drop_last[k] = dup_rng[k] = (int)k;
    drop_last[ns - 1] = -1;
    dup_rng[ns] = 2, dup_rng[ns + 1] = -1; /* sections: net, meta, rng, ... */
    write_file(bad, m, rebuild(b, sp, drop_last, m));
    expect_bad(ctx, bad, "missing section \"adam.D.v\"", "missing section", 0, 300, NET);
    write_file(bad, m, rebuild(b, sp, dup_rng, m));
    expect_bad(ctx, bad, "\"rng\" appears twice", "duplicate section", 0, 300, NET);
    memcpy(m, b, n);
    memcpy(m + sp[0].off, "mega", 4);
    wr32(m + sp[0].off + 76, lumos__crc32(0, m + sp[0].off, 76));
    write_file(bad, m, n);
    expect_bad(ctx, bad, "unexpected section \"mega\"", "unknown section", 0, 300, NET);

    /* Not there at all: an I/O error naming the file. */
    unlink(bad);
    sim_init(ctx, &t, 300, 50, 5, 0);
    ok = ck_of(&t, NULL);
    int st = lumos__checkpoint_read(ctx, bad, &ok);
    CHECK(st == LUMOS_E_IO && strstr(lumos_last_error(ctx), bad), "missing file: %d %s", st,
          lumos_last_error(ctx));
    sim_free(&t);
    free(m);
    free(b);
    unlink(good);
}

/* A write that fails part-way, or at the rename, keeps the old file. */
static void failed_writes(lumos_ctx *ctx)
{
    char path[600], sub[600], inner[700];
    path_of(path, sizeof path, "keep.ckp");
    sim s;
    sim_init(ctx, &s, 5000, 50, 1, 0);
    sim_step(ctx, &s);
    lumos__checkpoint ck = ck_of(&s, "old");
    CHECK(!lumos__checkpoint_write(ctx, path, &ck), "write: %s", lumos_last_error(ctx));
    size_t n0;
    uint8_t *old = read_all(path, &n0);
    for (int i = 0; i < 3; i++) sim_step(ctx, &s);
    ck = ck_of(&s, "new");

    /* A file-size limit stops the temporary half-way (EFBIG), as a full
     * disk would: the limit binds root too, needs no mount, and SIGXFSZ is
     * ignored so write(2) reports it. */
    struct rlimit was, lim;
    getrlimit(RLIMIT_FSIZE, &was);
    lim = was;
    lim.rlim_cur = n0 / 2;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) {
        printf("[SKIP] RLIMIT_FSIZE: %s\n", strerror(errno));
    } else {
        int st = lumos__checkpoint_write(ctx, path, &ck);
        setrlimit(RLIMIT_FSIZE, &was);
        const char *msg = lumos_last_error(ctx);
        CHECK(st == LUMOS_E_IO && strstr(msg, path) && strstr(msg, strerror(EFBIG)),
              "write past the size limit: %d \"%s\"", st, msg);
        size_t n1;
        uint8_t *now = read_all(path, &n1);
        CHECK(now && n1 == n0 && !memcmp(now, old, n0), "old checkpoint changed by a failed write");
        free(now);
        CHECK(temporaries() == 0, "temporary left by a failed write");
    }
    signal(SIGXFSZ, prev);

    /* The rename fails: the destination is a directory that is not empty. */
    path_of(sub, sizeof sub, "dir.ckp");
    snprintf(inner, sizeof inner, "%s/x", sub);
    mkdir(sub, 0755);
    write_file(inner, (const uint8_t *)"x", 1);
    int st = lumos__checkpoint_write(ctx, sub, &ck);
    CHECK(st == LUMOS_E_IO && strstr(lumos_last_error(ctx), sub), "rename onto a directory: %d %s",
          st, lumos_last_error(ctx));
    CHECK(temporaries() == 0, "temporary left by a failed rename");
    unlink(inner);
    rmdir(sub);

    /* A directory that does not exist: nothing created. */
    path_of(sub, sizeof sub, "no/such.ckp");
    st = lumos__checkpoint_write(ctx, sub, &ck);
    CHECK(st == LUMOS_E_IO && strstr(lumos_last_error(ctx), sub), "missing directory: %d %s", st,
          lumos_last_error(ctx));

    /* And the old file still reads, then is replaced by a good write. */
    sim t;
    sim_init(ctx, &t, 5000, 50, 9, 0);
    lumos__checkpoint rd = ck_of(&t, NULL);
    CHECK(!lumos__checkpoint_read(ctx, path, &rd) && rd.meta && !strcmp(rd.meta, "old"),
          "old checkpoint after failures: %s", lumos_last_error(ctx));
    free(rd.meta);
    CHECK(!lumos__checkpoint_write(ctx, path, &ck), "rewrite: %s", lumos_last_error(ctx));
    rd = ck_of(&t, NULL);
    CHECK(!lumos__checkpoint_read(ctx, path, &rd) && rd.meta && !strcmp(rd.meta, "new") &&
              rd.step == 4,
          "new checkpoint: %s", lumos_last_error(ctx));
    free(rd.meta);
    free(old);
    unlink(path);
    sim_free(&s);
    sim_free(&t);
}

int main(void)
{
    /* The CRC is zlib's: its check value, and continuation. */
    CHECK(lumos__crc32(0, "123456789", 9) == 0xCBF43926u, "crc32 check value");
    CHECK(lumos__crc32(lumos__crc32(0, "1234", 4), "56789", 5) == 0xCBF43926u, "crc32 continued");

    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/lumos-ckp-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    lumos_ctx *ctx = lumos_ctx_new();
    resume_is_bit_identical(ctx);
    bad_checkpoints(ctx);
    failed_writes(ctx);
    lumos_ctx_free(ctx);
    CHECK(rmdir(dir) == 0, "%s not empty at the end: %s", dir, strerror(errno));
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
