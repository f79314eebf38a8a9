/* mpi_comm.h — `lumos train` across processes under mpirun (Open MPI): the
 * collective the trainer's lumos__train_comm asks for. Its MPI part is built
 * only when CMake finds MPI and LUMOS_MPI is on (LUMOS_WITH_MPI; the build
 * without it is lumos-nompi, see test_train_nompi); the library itself links
 * no MPI. */
#ifndef LUMOS_CLI_MPI_H
#define LUMOS_CLI_MPI_H

#include "train/trainer.h"

/* Under mpirun (its environment says so): MPI started, *comm filled, 1.
 * Otherwise (a plain run, or a build without MPI): 0, and nothing started. */
int cli_mpi_start(int *argc, char ***argv, lumos__train_comm *comm);
void cli_mpi_finish(void);

#endif
