/* batch.h — the one batch runner every file-processing command uses.
 *
 * It expands the inputs (files, directories, quoted globs), takes this
 * shard's slice, names each output (beside the input or in -o DIR), refuses
 * an output that is an input or another input's output, runs a per-file
 * callback in --jobs worker processes (each with its own lumos_ctx; see
 * batch_run), draws a progress bar, reports failures at the end, and returns
 * the exit code. */
#ifndef LUMOS_CLI_BATCH_H
#define LUMOS_CLI_BATCH_H

#include <stddef.h>

#include "lumos.h"

typedef struct {
    const char *output; /* -o FILE|DIR; NULL: beside each input */
    int jobs;           /* files at once; 0: one per core */
    int shard_k, shard_n;
    int skip_existing;
    int quiet;
    double file_timeout; /* seconds one file may take in its worker process; 0: no limit */
} batch_options;

void batch_options_init(batch_options *o);

/* Takes argv[*i] (and its value) when it is one of the batch options: -o,
 * --output, -j, --jobs, --shard, --skip-existing, --quiet, --file-timeout. */
int batch_parse_option(batch_options *o, int argc, char **argv, int *i);

/* The usage lines of those options, for a command's --help. */
extern const char batch_usage_output[], batch_usage_batch[];

typedef struct batch batch;

/* Expands the arguments: a directory gives its files that `accept` takes
 * (sorted), a quoted glob its matches. Arguments that give nothing are
 * reported now and counted as failures. NULL when out of memory. */
batch *batch_open(const batch_options *o, int n_args, char **args, int (*accept)(const char *name),
                  const char *accept_what);
void batch_free(batch *b);

/* The file -o names when it names one output for one input (not a
 * directory), else NULL: its suffix may decide the format. */
const char *batch_single_output(const batch *b);

typedef struct {
    const char *verb;       /* "converted": the summary's word */
    const char *out_suffix; /* ".jpg"; "": the input's own suffix; NULL: the command
                               writes no files */
    const char *beside_tag; /* outputs beside their inputs (no -o) get it after their
                               stem ("-dereflect"), so that they never replace them;
                               NULL: none */
    int serial;             /* one file at a time, in order (printing commands) */
    /* Processes one input into out (NULL without outputs) on ctx; on failure
     * returns nonzero with ctx's last error set (it is reported). It runs in a
     * worker process (see batch_run): what it changes in memory is lost. */
    int (*process)(void *user, lumos_ctx *ctx, const char *in, const char *out);
    /* NULL, or called in the command's own process after each input that
     * succeeded, for state kept across files (dereflect's preview). */
    void (*after)(void *user, lumos_ctx *ctx, const char *in, const char *out);
    void *user;
} batch_spec;

/* Runs every input of this shard; returns EXIT_ALL_OK or EXIT_SOME_FAILED.
 *
 * Each input is processed in a worker process (one per --jobs slot, forked
 * once, each with its own lumos_ctx, started again after it dies), so that a
 * crash or a hang inside a dependency (LibRaw, libtiff, ...) fails that one
 * file, named with the signal or the time limit, and the batch goes on.
 * LUMOS_NO_ISOLATION=1 in the environment runs them on threads of this
 * process instead (for debuggers; no time limit, a crash ends the batch).
 *
 * With worker processes, SIGINT, SIGTERM or SIGHUP stop the batch: the
 * workers are killed, their temporaries removed (only complete outputs
 * remain, so that the batch resumes with --skip-existing), and the process
 * dies of that signal. */
int batch_run(batch *b, const batch_spec *spec);

#endif
