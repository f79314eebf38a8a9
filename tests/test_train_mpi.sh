#!/bin/bash
# test_train_mpi.sh LUMOS PHOTO_DIR [MPIRUN] — `lumos train` across two MPI
# ranks (mpirun -np 2 --oversubscribe) gives the weights one process gives
# for the same global batch, to float rounding (the ranks' gradient sums add
# in another order); a checkpoint written by two ranks resumes on one, and
# one written by one process resumes on two, to the same weights.
set -u
LUMOS=$1 PHOTOS=$2 MPIRUN=${3:-mpirun}
command -v "$MPIRUN" >/dev/null || { echo "[SKIP] no $MPIRUN (install openmpi-bin)"; exit 77; }
ldd "$LUMOS" | grep -q libmpi || { echo "[SKIP] lumos built without MPI (libopenmpi-dev, LUMOS_MPI)"; exit 77; }
T=$(mktemp -d /tmp/lumos-train-mpi.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
photo_data "$T/data" "$PHOTOS"
run=(train --net robust --data "$T/data" --crop 32 --batch 4 --threads 1 --seed 3
     --terms mse-classic,tv:0.1)
# Two ranks on whatever cores there are, over shared memory, as root in CI.
mpi=("$MPIRUN" -np 2 --oversubscribe --bind-to none --mca btl self,vader)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)

expect 0 "one process, 6 steps" -- "$LUMOS" "${run[@]}" --steps 6 --out "$T/one.st"
expect 0 "two ranks, 6 steps" -- "${mpi[@]}" "$LUMOS" "${run[@]}" --steps 6 --out "$T/two.st"
[ "$(grep -c "trained at step 6 of 6" "$T/err")" -eq 1 ] && grep -q "2 ranks" "$T/err" ||
    fail "not one summary, by rank 0, saying 2 ranks: $(cat "$T/err")"
expect 0 "two ranks, 3 steps, checkpoint" -- "${mpi[@]}" "$LUMOS" "${run[@]}" --steps 3 \
    --checkpoint "$T/a.ckp" --out "$T/a3.st"
expect 0 "resumed on one process" -- "$LUMOS" "${run[@]}" --steps 6 --checkpoint "$T/a.ckp" \
    --resume --out "$T/a6.st"
expect 0 "one process, 3 steps, checkpoint" -- "$LUMOS" "${run[@]}" --steps 3 \
    --checkpoint "$T/b.ckp" --out "$T/b3.st"
expect 0 "resumed on two ranks" -- "${mpi[@]}" "$LUMOS" "${run[@]}" --steps 6 \
    --checkpoint "$T/b.ckp" --resume --out "$T/b6.st"
expect 1 "more ranks than samples" -- "$MPIRUN" -np 3 --oversubscribe --bind-to none \
    --mca btl self,vader $([ "$(id -u)" -eq 0 ] && echo --allow-run-as-root) \
    "$LUMOS" train --net robust --data "$T/data" --crop 32 --batch 2 --threads 1 \
    --terms mse-classic,tv:0.1 --steps 1 --out "$T/x.st"

# Every tensor of each file against one.st: equal to 1e-5, and not all
# equal to the start (so the comparison compares trained weights).
/usr/bin/python3 - "$T" <<'PY' || fail "weights differ (above)"
import json, struct, sys
def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__": continue
        s, e = v["data_offsets"]
        out[k] = struct.unpack("<%df" % ((e - s) // 4), b[8 + n + s:8 + n + e])
    return out
d = sys.argv[1]
one = tensors(d + "/one.st")
ok = True
for other in ("two.st", "a6.st", "b6.st"):
    t = tensors(d + "/" + other)
    worst = max(abs(a - b) for k in one for a, b in zip(one[k], t[k]))
    print("%s vs one process: max |difference| %.3g" % (other, worst))
    ok &= set(t) == set(one) and worst <= 1e-5
three = tensors(d + "/a3.st")
moved = max(abs(a - b) for k in one for a, b in zip(one[k], three[k]))
print("3 steps vs 6: max |difference| %.3g" % moved)
ok &= moved > 1e-6
sys.exit(0 if ok else 1)
PY
[ "$fails" -eq 0 ] && echo "test_train_mpi: all checks passed" || echo "test_train_mpi: $fails failed"
[ "$fails" -eq 0 ]
