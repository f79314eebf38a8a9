/* main.c — the `lumos` command: a thin client of include/lumos.h.
 *
 * Each command lives in its own file (cli/cmd_*.c); the file-processing ones
 * share the batch runner (cli/batch.h). Exit codes: 0 every input done (or
 * skipped), 1 some failed, 2 usage; train: 130 when interrupted. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "lumos.h"

static const struct {
    const char *name, *summary;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"convert", "convert IN...   develop camera RAW files into JPEG, PNG or TIFF", cmd_convert},
    {"dereflect", "dereflect IN... remove reflections from JPEG, PNG or TIFF photos",
     cmd_dereflect},
    {"info", "info IN...      print RAW metadata (camera, CFA, levels, white balance, EXIF)",
     cmd_info},
    {"train", "train ...       train a network (a learned ISP) on photos and RAW files",
     cmd_train},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *f)
{
    fputs("usage: lumos <command> [options]\n\ncommands:\n", f);
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %s\n", commands[i].summary);
    fputs("\n  lumos <command> --help   options of a command\n  lumos --version\n", f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return EXIT_ALL_OK;
    }
    if (!strcmp(cmd, "--version")) {
        printf("lumos %s\n", lumos_version());
        return EXIT_ALL_OK;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    die_usage("unknown command '%s'", cmd);
}
