#!/bin/bash
# [NET=efficient] train_mpi.sh [LUMOS] [PHOTO_DIR] [STEPS] [RUNS] — `lumos train`'s throughput
# at 1 and 2 MPI ranks, one thread each, on the same global batch (the
# shipped recipe's: batch 8, crop 96, mse-classic + tv), and what the ranks
# exchange each step (the summary's bytes and collective time), so that a
# multi-node run can be estimated. Medians of RUNS runs, and the ratio.
#
# Then the same comparison in CPU time, which other work on the machine
# hardly moves (two ranks on two busy cores cannot run side by side, and
# Open MPI spins while it waits): the CPU seconds of a step of one process,
# and of each of 2 ranks run alone under a stand-in for MPI's five calls
# (every allreduce gives size × this rank's buffer, as if every rank sent
# the same: a rank's work, not one process's weights); CPU of 2×STEPS
# steps minus STEPS steps, so that the start cancels out. Their ratio is
# the speed-up 2 free cores would give, less the collectives' time.
set -eu
LUMOS=${1:-build/lumos} PHOTOS=${2:-/usr/lib/python3/dist-packages/skimage/data}
STEPS=${3:-20} RUNS=${4:-3} NET=${NET:-efficient}
T=$(mktemp -d /tmp/lumos-bench-mpi.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir "$T/data"
for p in astronaut chelsea coffee motorcycle_left motorcycle_right rocket; do
    ln -s "$PHOTOS/$p.png" "$T/data/"
done
run=(train --net "$NET" --data "$T/data" --crop 96 --batch 8 --threads 1 --seed 1
     --terms mse-classic,tv:0.1 --steps "$STEPS" --out "$T/w.st")
mpi=(mpirun --oversubscribe --bind-to none --mca btl self,vader)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
rate() {  # steps per second from the summary line "(..., X s/step)"
    grep -o '[0-9.]* s/step' "$1" | awk '{print 1 / $1}'
}
for ranks in 1 2; do
    : >"$T/rates$ranks"
    for r in $(seq "$RUNS"); do
        if [ "$ranks" -eq 1 ]; then "$LUMOS" "${run[@]}" 2>"$T/err" >/dev/null
        else "${mpi[@]}" -np "$ranks" "$LUMOS" "${run[@]}" 2>"$T/err" >/dev/null; fi
        rate "$T/err" >>"$T/rates$ranks"
        [ "$ranks" -gt 1 ] && grep -o '[0-9]* ranks: .*collectives' "$T/err" >"$T/comm"
    done
    echo "$ranks rank(s): $(median <"$T/rates$ranks") steps/s (median of $RUNS runs of $STEPS steps)"
done
echo "exchanged per step at 2 ranks, and over the run: $(cat "$T/comm")"
awk -v a="$(median <"$T/rates1")" -v b="$(median <"$T/rates2")" \
    'BEGIN {printf "2 ranks / 1 rank: %.2fx the throughput\n", b / a}'

command -v mpicc >/dev/null || { echo "(no mpicc: no CPU-time comparison)"; exit 0; }
cat >"$T/alone.c" <<'C'
#include <mpi.h>
#include <stdlib.h>
static int rank, size = 1;
int MPI_Init(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    rank = atoi(getenv("ALONE_RANK"));
    size = atoi(getenv("ALONE_SIZE"));
    return MPI_SUCCESS;
}
int MPI_Comm_rank(MPI_Comm c, int *r) { (void)c; *r = rank; return MPI_SUCCESS; }
int MPI_Comm_size(MPI_Comm c, int *s) { (void)c; *s = size; return MPI_SUCCESS; }
int MPI_Allreduce(const void *in, void *buf, int n, MPI_Datatype type, MPI_Op op, MPI_Comm c)
{
    (void)in, (void)op, (void)c;
    for (int i = 0; i < n; i++)
        if (type == MPI_DOUBLE) ((double *)buf)[i] *= size;
        else ((float *)buf)[i] *= size;
    return MPI_SUCCESS;
}
int MPI_Finalize(void) { return MPI_SUCCESS; }
C
mpicc -O2 -shared -fPIC -o "$T/alone.so" "$T/alone.c"
cpu() {  # CPU seconds of the command (user + system)
    /usr/bin/python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r.ru_utime + r.ru_stime)' "$@"
}
step_ms() {  # CPU milliseconds a step of the command (the arguments of run after its steps)
    local n=$(cpu "$@" "${run[@]}") m=$(cpu "$@" "${run[@]}" --steps $((2 * STEPS)))
    awk -v n="$n" -v m="$m" -v s="$STEPS" 'BEGIN {print 1000 * (m - n) / s}'
}
alone=(env OMPI_COMM_WORLD_SIZE=2 ALONE_SIZE=2 LD_PRELOAD="$T/alone.so")
: >"$T/cpu1"; : >"$T/cpu2_0"; : >"$T/cpu2_1"
for r in $(seq "$RUNS"); do
    step_ms "$LUMOS" >>"$T/cpu1"
    step_ms "${alone[@]}" ALONE_RANK=0 "$LUMOS" >>"$T/cpu2_0"
    step_ms "${alone[@]}" ALONE_RANK=1 "$LUMOS" >>"$T/cpu2_1"
done
awk -v a="$(median <"$T/cpu1")" -v r0="$(median <"$T/cpu2_0")" -v r1="$(median <"$T/cpu2_1")" \
    -v n="$RUNS" 'BEGIN {m = r0 > r1 ? r0 : r1
    printf "CPU a step (medians of %d): 1 process %.1f ms; of 2 ranks, rank 0 %.1f ms, rank 1 %.1f ms\n", n, a, r0, r1
    printf "1 process / the slower rank: %.2fx (2 free cores, the collectives aside)\n", a / m}'
