#!/bin/bash
# test_train_nompi.sh NOMPI LUMOS PHOTO_DIR — the command built without MPI
# (NOMPI: lumos-nompi, the CLI's sources without LUMOS_WITH_MPI) links no
# MPI, prints its help, and trains in one process: one step gives the
# weights LUMOS (the build with MPI, when there is one) gives in one
# process, and so does a launcher's environment (an mpirun without MPI
# support in the program would start independent copies: each is one
# process, and says nothing of ranks).
set -u
NOMPI=$1 LUMOS=$2 PHOTOS=$3
T=$(mktemp -d /tmp/lumos-train-nompi.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
photo_data "$T/data" "$PHOTOS"
run=(train --net efficient --data "$T/data" --crop 32 --batch 2 --threads 1 --seed 4
     --terms mse-classic,tv:0.1 --steps 1)

[ -x "$NOMPI" ] || { echo "FAIL: no $NOMPI (the build without MPI)"; exit 1; }
# A program older than its sources proves nothing about them (a failed build).
for f in "$(dirname "$0")"/../cli/*.[ch]; do
    [ "$f" -nt "$NOMPI" ] && fail "$NOMPI is older than $f: build it again"
done
! ldd "$NOMPI" | grep -q libmpi || fail "$NOMPI links MPI: $(ldd "$NOMPI" | grep libmpi)"
expect 0 "--help" -- "$NOMPI" --help
grep -q "train" "$T/out" || fail "lumos --help does not list train"
expect 0 "train --help" -- "$NOMPI" train --help
grep -q -- "--threads" "$T/out" || fail "train --help misses --threads"

expect 0 "one step" -- "$NOMPI" "${run[@]}" --out "$T/nompi.st"
grep -q "trained at step 1 of 1" "$T/err" || fail "no summary: $(cat "$T/err")"
grep -q "ranks" "$T/err" && fail "one process speaks of ranks: $(cat "$T/err")"
expect 0 "one step under a launcher's environment" -- \
    env OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=1 PMI_SIZE=2 PMIX_RANK=1 \
    "$NOMPI" "${run[@]}" --out "$T/launched.st"
grep -q "trained at step 1 of 1" "$T/err" && ! grep -q "ranks" "$T/err" ||
    fail "not one process reporting: $(cat "$T/err")"
expect 0 "one step, the build with MPI" -- "$LUMOS" "${run[@]}" --out "$T/mpi.st"
cmp -s "$T/nompi.st" "$T/mpi.st" || fail "without MPI, other weights than the MPI build's"
cmp -s "$T/nompi.st" "$T/launched.st" || fail "under a launcher's environment, other weights"

[ "$fails" -eq 0 ] && echo "test_train_nompi: all checks passed" || echo "test_train_nompi: $fails failed"
[ "$fails" -eq 0 ]
