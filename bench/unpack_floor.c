/* unpack_floor — the least any LibRaw-based converter must do: open the file
 * and decode the raw samples (libraw_open_file + libraw_unpack), nothing
 * else. convert_speed.py times it as the floor under every converter.
 *
 *   unpack_floor FILE...      exit 0 when every file decoded */
#include <stdio.h>

#include <libraw/libraw.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: unpack_floor FILE...\n");
        return 2;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        libraw_data_t *lr = libraw_init(0);
        if (!lr) {
            fprintf(stderr, "unpack_floor: libraw_init failed\n");
            return 1;
        }
        int st = libraw_open_file(lr, argv[i]);
        if (st == LIBRAW_SUCCESS)
            st = libraw_unpack(lr);
        if (st != LIBRAW_SUCCESS) {
            fprintf(stderr, "unpack_floor: %s: %s\n", argv[i], libraw_strerror(st));
            rc = 1;
        }
        libraw_close(lr);
    }
    return rc;
}
