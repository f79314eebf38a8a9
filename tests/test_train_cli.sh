#!/bin/bash
# test_train_cli.sh LUMOS PHOTO_DIR — `lumos train` as a script would run it:
# usage errors (exit 2, nothing written), failures (exit 1, the file named),
# a short run (exit 0), Ctrl-C (exit 130 with checkpoint and weights) and
# --resume after it.
set -u
LUMOS=$1 PHOTOS=$2
T=$(mktemp -d /tmp/lumos-train-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
photo_data "$T/data" "$PHOTOS"
quick=(--net efficient --data "$T/data" --crop 32 --batch 2 --threads 2 --terms mse-classic,tv:0.1)
# (pixel terms: the method's default terms need the feature network, see below)

# ---- help and usage errors
expect 0 "--help" -- "$LUMOS" --help
grep -q "train" "$T/out" || fail "lumos --help does not list train"
expect 0 "train --help" -- "$LUMOS" train --help
for o in --net --input --data --out --resume --checkpoint-every --preview-every --terms 130; do
    grep -q -- "$o" "$T/out" || fail "train --help misses $o"
done
expect 2 "no --net" -- "$LUMOS" train --data "$T/data" --out "$T/w.safetensors"
expect 2 "bad --net" -- "$LUMOS" train --net classic --data "$T/data" --out "$T/w.safetensors"
expect 2 "no --data" -- "$LUMOS" train --net efficient --out "$T/w.safetensors"
expect 2 "--data without sources" -- "$LUMOS" train --net efficient --data --out "$T/w.safetensors"
expect 2 "no --out" -- "$LUMOS" train "${quick[@]}"
expect 2 "odd --crop" -- "$LUMOS" train "${quick[@]}" --crop 33 --out "$T/w.safetensors"
expect 2 "--batch 0" -- "$LUMOS" train "${quick[@]}" --batch 0 --out "$T/w.safetensors"
expect 2 "bad --lr-g" -- "$LUMOS" train "${quick[@]}" --lr-g fast --out "$T/w.safetensors"
expect 2 "bad --beta1" -- "$LUMOS" train "${quick[@]}" --beta1 1.5 --out "$T/w.safetensors"
expect 2 "bad --mode" -- "$LUMOS" train "${quick[@]}" --mode both --out "$T/w.safetensors"
expect 2 "unknown --task" -- "$LUMOS" train "${quick[@]}" --task svbrdf --out "$T/w.safetensors"
expect 2 "unknown --net" -- "$LUMOS" train "${quick[@]}" --net vgg19 --out "$T/w.safetensors"
expect 2 "bad --input" -- "$LUMOS" train "${quick[@]}" --input infrared --out "$T/w.safetensors"
expect 2 "unknown option" -- "$LUMOS" train "${quick[@]}" --frobnicate --out "$T/w.safetensors"
expect 2 "stray argument" -- "$LUMOS" train "${quick[@]}" --out "$T/w.safetensors" extra
expect 2 "--resume without --checkpoint" -- "$LUMOS" train "${quick[@]}" --resume --out "$T/w.safetensors"
expect 2 "unknown term" -- "$LUMOS" train "${quick[@]}" --terms tv,bogus --out "$T/w.safetensors"
grep -q "bogus" "$T/err" || fail "unknown term not named: $(cat "$T/err")"
expect 2 "l1 unpaired" -- "$LUMOS" train "${quick[@]}" --terms l1 --out "$T/w.safetensors"
expect 2 "preview not png" -- "$LUMOS" train "${quick[@]}" --preview "$T/p.jpg" --out "$T/w.safetensors"
[ ! -e "$T/w.safetensors" ] || fail "a usage error wrote the weights"

# ---- failures: exit 1, the file named
expect 1 "missing data" -- "$LUMOS" train --net efficient --data "$T/nowhere" --terms tv --out "$T/w.safetensors"
grep -q "nowhere" "$T/err" || fail "missing data not named: $(cat "$T/err")"
expect 1 "missing feature network" -- "$LUMOS" train --net efficient --data "$T/data" \
    --features "$T/no-features.safetensors" --out "$T/w.safetensors"
grep -q "no-features.safetensors.*fetch-mobilenet" "$T/err" || fail "missing features not said: $(cat "$T/err")"
expect 1 "missing VGG-19" -- "$LUMOS" train "${quick[@]}" --terms content,tv \
    --content-features "$T/no-vgg.safetensors" --out "$T/w.safetensors"
grep -q "no-vgg.safetensors" "$T/err" || fail "missing VGG-19 not named: $(cat "$T/err")"
printf 'LUMOSCKP but not really' >"$T/bad.ckp"
expect 1 "damaged checkpoint" -- "$LUMOS" train "${quick[@]}" --checkpoint "$T/bad.ckp" --resume --out "$T/w.safetensors"
grep -q "bad.ckp" "$T/err" || fail "damaged checkpoint not named: $(cat "$T/err")"
[ ! -e "$T/w.safetensors" ] || fail "a failed run wrote the weights"

# ---- a short run
expect 0 "3 steps" -- "$LUMOS" train "${quick[@]}" --steps 3 --out "$T/w.safetensors" --log "$T/log.csv"
[ -s "$T/w.safetensors" ] || fail "no weights written"
[ "$(wc -l <"$T/log.csv")" -eq 4 ] || fail "log: $(cat "$T/log.csv")"
grep -q "trained at step 3 of 3" "$T/err" || fail "no summary: $(cat "$T/err")"
head -c 1024 "$T/w.safetensors" | grep -Eq '"lumos_input": ?"sensor"' || fail "weights do not say sensor"

# ---- the camera-agnostic input: recorded in the weights, refused where it does not match
expect 0 "agnostic" -- "$LUMOS" train "${quick[@]}" --input agnostic --steps 2 --out "$T/a.safetensors"
head -c 1024 "$T/a.safetensors" | grep -Eq '"lumos_input": ?"agnostic"' || fail "weights do not say agnostic"
expect 1 "--init of another input" -- "$LUMOS" train "${quick[@]}" --init "$T/a.safetensors" \
    --steps 1 --out "$T/b.safetensors"
grep -q "a.safetensors: weights for the agnostic input" "$T/err" || fail "init mismatch: $(cat "$T/err")"
[ ! -e "$T/b.safetensors" ] || fail "a refused --init wrote weights"

# ---- Ctrl-C: ends after the step, writes checkpoint and weights, exit 130
"$LUMOS" train "${quick[@]}" --steps 100000 --out "$T/i.safetensors" --checkpoint "$T/i.ckp" \
    --checkpoint-every 100000 --log "$T/i.csv" >"$T/out" 2>"$T/err" &
pid=$!
for _ in $(seq 100); do  # until it has taken two steps (at most 10 s)
    [ -s "$T/i.csv" ] && [ "$(wc -l <"$T/i.csv")" -ge 3 ] && break
    sleep 0.1
done
kill -INT $pid
wait $pid; got=$?
[ "$got" -eq 130 ] || { fail "SIGINT: exit $got, wanted 130"; sed 's/^/    /' "$T/err"; }
[ -s "$T/i.ckp" ] && [ -s "$T/i.safetensors" ] || fail "SIGINT: no checkpoint or weights"
grep -q "interrupted at step" "$T/err" || fail "SIGINT: no summary: $(cat "$T/err")"
done_steps=$(($(wc -l <"$T/i.csv") - 1))
expect 0 "resume after SIGINT" -- "$LUMOS" train "${quick[@]}" --steps $((done_steps + 2)) \
    --out "$T/i.safetensors" --checkpoint "$T/i.ckp" --log "$T/i.csv" --resume
[ "$(wc -l <"$T/i.csv")" -eq $((done_steps + 3)) ] || fail "resumed log: $(tail -n 3 "$T/i.csv")"
expect 1 "resume with another --net" -- "$LUMOS" train "${quick[@]}" --net robust --steps 9 \
    --out "$T/i.safetensors" --checkpoint "$T/i.ckp" --resume
grep -q "i.ckp: a checkpoint of the efficient network" "$T/err" || fail "net mismatch: $(cat "$T/err")"
expect 1 "resume with another --input" -- "$LUMOS" train "${quick[@]}" --input agnostic --steps 9 \
    --out "$T/i.safetensors" --checkpoint "$T/i.ckp" --resume
grep -q "made with the input sensor" "$T/err" || fail "input mismatch: $(cat "$T/err")"
left=$(find "$T" -name '.*.part*' | head -n 3)
[ -z "$left" ] || fail "temporary files left: $left"

[ $fails -eq 0 ] && echo ok || echo "$fails failures"
[ $fails -eq 0 ]
