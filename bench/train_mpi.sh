#!/bin/bash
# [NET=efficient] train_mpi.sh [LUMOS] [PHOTO_DIR] [STEPS] [RUNS] — `lumos train`'s throughput
# at 1 and 2 MPI ranks, one thread each, on the same global batch (the
# shipped recipe's: batch 8, crop 96, mse-classic + tv), and what the ranks
# exchange each step (the summary's bytes and collective time), so that a
# multi-node run can be estimated. Medians of RUNS runs, and the ratio.
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
