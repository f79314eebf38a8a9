/* mpi_comm.c — the MPI collective of `lumos train` (see mpi_comm.h). */
#include "mpi_comm.h"

#include <stdlib.h>

#ifdef LUMOS_WITH_MPI
#include <mpi.h>

static int started;

/* In place, in pieces: MPI counts are ints. */
static int allreduce_sum(void *buf, size_t n, MPI_Datatype type, size_t size)
{
    const size_t piece = (size_t)1 << 28;
    for (size_t at = 0; at < n; at += piece) {
        int k = (int)(n - at < piece ? n - at : piece);
        if (MPI_Allreduce(MPI_IN_PLACE, (char *)buf + at * size, k, type, MPI_SUM, MPI_COMM_WORLD))
            return -1;
    }
    return 0;
}

static int sum_f64(void *user, double *buf, size_t n)
{
    (void)user;
    return allreduce_sum(buf, n, MPI_DOUBLE, sizeof *buf);
}

static int sum_f32(void *user, float *buf, size_t n)
{
    (void)user;
    return allreduce_sum(buf, n, MPI_FLOAT, sizeof *buf);
}

int cli_mpi_start(int *argc, char ***argv, lumos__train_comm *comm)
{
    /* Only under a launcher: a plain run stays one process, with no MPI
     * start-up (which can be slow, or fail, on a machine with no network). */
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK")) return 0;
    if (MPI_Init(argc, argv) != MPI_SUCCESS) return 0;
    started = 1;
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    *comm = (lumos__train_comm){rank, size, sum_f64, sum_f32, NULL};
    return size > 1;
}

void cli_mpi_finish(void)
{
    if (started) MPI_Finalize();
    started = 0;
}

#else

int cli_mpi_start(int *argc, char ***argv, lumos__train_comm *comm)
{
    (void)argc, (void)argv, (void)comm;
    return 0;
}

void cli_mpi_finish(void) {}

#endif
