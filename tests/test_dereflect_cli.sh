#!/bin/bash
# test_dereflect_cli.sh LUMOS PHOTO_DIR [PYTHON] — `lumos dereflect` as a script
# would use it: JPEG, PNG and TIFF in and out (8/16-bit, gray or RGB) with
# their ICC profile and EXIF kept, format and depth overrides, batches that go
# on past bad files (truncated, not an image, CMYK, a header claiming
# 100000x100000 pixels), --skip-existing, --shard, a network without weights,
# the preview sheet, exit codes, and never a partial output.
# The inputs are made by tools/dereflect_photos.py from skimage's photos
# (exit 77 without them, or without numpy, PIL and tifffile).
set -u
LUMOS=$1 PHOTOS=$2 PYTHON=${3:-/usr/bin/python3}
HERE=$(dirname "$0")
TOOL="$HERE/tools/dereflect_photos.py"
for p in astronaut coffee; do
    [ -r "$PHOTOS/$p.png" ] || { echo "[SKIP] $PHOTOS/$p.png not found (install python3-skimage)"; exit 77; }
done
"$PYTHON" -c 'import numpy, PIL, tifffile' 2>/dev/null ||
    { echo "[SKIP] $PYTHON lacks numpy, PIL or tifffile"; exit 77; }
T=$(mktemp -d /tmp/lumos-dereflect.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$HERE/lib.sh"
no_partials() {  # no temporary or partial file anywhere under $1
    local left; left=$(find "$1" -name '*.part' -o -name '.*.part*' | head -n 3)
    [ -z "$left" ] || fail "temporary files left: $left"
}
info() { "$PYTHON" "$TOOL" info "$@" 2>&1; }
# has FILE FACT...: every key=value FACT is in the file's info line
has() {
    local f=$1 line; shift; line=$(info "$f")
    for fact in "$@"; do
        [[ " $line " == *" $fact "* ]] || fail "$f: wanted $fact, got: $line"
    done
}

mkdir "$T/in"
"$PYTHON" "$TOOL" make "$T/in" "$PHOTOS" || { echo "FAIL: making the inputs"; exit 1; }
IN=$T/in
icc=$(info "$IN/refl.jpg" | sed -n 's/.* icc=\([^ ]*\).*/\1/p')
[ -n "$icc" ] && [ "$icc" != none ] || fail "the input JPEG has no ICC profile: $(info "$IN/refl.jpg")"

# ---- usage: exit 2, nothing written
expect 0 "--help" -- "$LUMOS" dereflect --help
for o in --net --weights --tile --format --bits --quality --preview --jobs --shard --skip-existing; do
    grep -q -- "$o" "$T/out" || fail "dereflect --help misses $o"
done
grep -q "default classic" "$T/out" || fail "--help does not say classic is the default"
grep -q rrformer "$T/out" && fail "--help lists rrformer, which does not exist yet"
expect 0 "lumos --help" -- "$LUMOS" --help
grep -q "dereflect IN" "$T/out" || fail "lumos --help does not list dereflect"
expect 2 "no inputs" -- "$LUMOS" dereflect
expect 2 "unknown option" -- "$LUMOS" dereflect --frobnicate "$IN/refl.jpg"
expect 2 "--net rrformer" -- "$LUMOS" dereflect --net rrformer "$IN/refl.jpg" -o "$T/u.jpg"
grep -q "rrformer: not implemented yet (issue 13)" "$T/err" || fail "rrformer: $(cat "$T/err")"
expect 2 "unknown --net" -- "$LUMOS" dereflect --net vgg19 "$IN/refl.jpg" -o "$T/u.jpg"
grep -q "classic or uhd" "$T/err" || fail "--net does not list the methods: $(cat "$T/err")"
expect 2 "16-bit JPEG" -- "$LUMOS" dereflect --bits 16 "$IN/refl.jpg" -o "$T/u.jpg"
expect 2 "--format exr" -- "$LUMOS" dereflect --format exr "$IN/refl.jpg" -o "$T/u.exr"
expect 2 "EXR output name" -- "$LUMOS" dereflect "$IN/refl.jpg" -o "$T/u.exr"
expect 2 "unknown output suffix" -- "$LUMOS" dereflect "$IN/refl.jpg" -o "$T/u.xyz"
expect 2 "--weights with classic" -- "$LUMOS" dereflect --weights w.safetensors "$IN/refl.jpg" -o "$T/u.jpg"
expect 2 "--tile with classic" -- "$LUMOS" dereflect --tile 256 "$IN/refl.jpg" -o "$T/u.jpg"
expect 2 "--tile not a multiple of 8" -- "$LUMOS" dereflect --net uhd --tile 100 "$IN/refl.jpg" -o "$T/u.jpg"
expect 2 "--preview suffix" -- "$LUMOS" dereflect --preview "$T/p.gif" "$IN/refl.jpg" -o "$T/u.jpg"
cp "$IN/refl.jpg" "$IN/victim.jpg"
expect 2 "--preview over an input" -- "$LUMOS" dereflect --preview "$IN/victim.jpg" "$IN/victim.jpg" -o "$T/u.jpg"
cmp -s "$IN/refl.jpg" "$IN/victim.jpg" || fail "--preview replaced an input"
[ -z "$(ls "$T" | grep -Ev '^(in|out|err)$')" ] || fail "usage errors wrote: $(ls "$T")"

# ---- networks: uhd has no shipped weights yet; the message says what to do
expect 1 "--net uhd without weights" -- env LUMOS_DATA_DIR="$T/no-data" "$LUMOS" dereflect --net uhd "$IN/refl.jpg" -o "$T/u.jpg"
grep -q "no default weights for the uhd network" "$T/err" || fail "uhd: $(cat "$T/err")"
grep -q -- "--weights FILE, or use --net classic" "$T/err" || fail "uhd: no hint: $(cat "$T/err")"
expect 1 "--net uhd with a bad weights file" -- "$LUMOS" dereflect --net uhd --weights "$IN/notimage.jpg" "$IN/refl.jpg" -o "$T/u.jpg"
grep -q "notimage.jpg" "$T/err" || fail "bad weights not named: $(cat "$T/err")"
[ ! -e "$T/u.jpg" ] || fail "a failed network load wrote an output"
# with weights (random ones, from the PyTorch reference; when torch is there)
if ! "$PYTHON" -c 'import torch, torchvision' 2>/dev/null; then
    echo "note: no torch: --net uhd with weights not run"
elif ! "$PYTHON" "$HERE/torch/dereflect_nets.py" make "$T/uhd" --width 128 --height 128 --seed 1 >/dev/null; then
    fail "tests/torch/dereflect_nets.py make failed"
else
    expect 0 "--net uhd --weights" -- "$LUMOS" dereflect --net uhd --weights "$T/uhd/weights.safetensors" \
        --tile 128 "$IN/refl.jpg" "$IN/refl16.png" -o "$T/uhd-out"
    has "$T/uhd-out/refl.jpg" format=JPEG size=512x512 "icc=$icc" make=LumosTest orientation=6
    has "$T/uhd-out/refl16.png" format=PNG bits=16 color=2
fi

# ---- one file each: format, depth, profile and EXIF kept; the input untouched
before=$(sha256sum "$IN/refl.jpg" | cut -d' ' -f1)
expect 0 "JPEG -> JPEG" -- "$LUMOS" dereflect "$IN/refl.jpg" -o "$T/refl.jpg"
has "$T/refl.jpg" format=JPEG size=512x512 mode=RGB "icc=$icc" make=LumosTest orientation=6
[ "$(sha256sum "$IN/refl.jpg" | cut -d' ' -f1)" = "$before" ] || fail "the input was changed"
# the reflection is weakened: closer to the transmission than the input is
# (measured 15.83 -> 16.20 dB; the classical method keeps the reflection's
# mean, see test_dereflect_classic)
read -r p_in p_out < <("$PYTHON" "$TOOL" psnr "$IN/refl.jpg" "$T/refl.jpg" "$IN/truth.png")
echo "PSNR to the transmission: input $p_in dB, output $p_out dB"
"$PYTHON" -c "import sys; sys.exit(0 if $p_out > $p_in + 0.2 else 1)" ||
    fail "the output is not closer to the transmission ($p_in -> $p_out dB)"
expect 0 "-q 60" -- "$LUMOS" dereflect -q 60 "$IN/refl.jpg" -o "$T/q60.jpg"
[ "$(stat -c %s "$T/q60.jpg")" -lt "$(stat -c %s "$T/refl.jpg")" ] || fail "-q 60 is not smaller"
expect 0 "PNG 16 -> PNG 16" -- "$LUMOS" dereflect "$IN/refl16.png" -o "$T/refl16.png"
has "$T/refl16.png" format=PNG size=512x512 bits=16 color=2
expect 0 "PNG 16 -> --bits 8" -- "$LUMOS" dereflect --bits 8 "$IN/refl16.png" -o "$T/refl16-8.png"
has "$T/refl16-8.png" format=PNG bits=8 color=2
expect 0 "TIFF 16 -> TIFF 16" -- "$LUMOS" dereflect "$IN/refl16.tif" -o "$T/refl16.tif"
has "$T/refl16.tif" format=TIFF dtype=uint16 shape=512x512x3
expect 0 "TIFF 8 -> TIFF 8, profile kept" -- "$LUMOS" dereflect "$IN/refl8.tif" -o "$T/refl8.tif"
has "$T/refl8.tif" format=TIFF dtype=uint8 "icc=$icc"
expect 0 "gray 16-bit PNG" -- "$LUMOS" dereflect "$IN/gray16.png" -o "$T/gray16.png"
has "$T/gray16.png" format=PNG size=512x512 bits=16 color=0
expect 0 "1x1 PNG" -- "$LUMOS" dereflect "$IN/one.png" -o "$T/one.png"
has "$T/one.png" format=PNG size=1x1 bits=8
# the format: --format, else -o's suffix, else the input's
expect 0 "-o FILE.png for a JPEG" -- "$LUMOS" dereflect "$IN/refl.jpg" -o "$T/as.png"
has "$T/as.png" format=PNG bits=8 "icc=$icc" make=LumosTest orientation=6
expect 0 "--format tiff" -- "$LUMOS" dereflect --format tiff "$IN/refl.jpg" -o "$T/fmt/"
has "$T/fmt/refl.tif" format=TIFF "icc=$icc" dtype=uint8
expect 0 "--format jpeg from 16-bit PNG" -- "$LUMOS" dereflect --format jpeg "$IN/refl16.png" -o "$T/fmt/"
has "$T/fmt/refl16.jpg" format=JPEG mode=RGB
# without -o: beside the input as NAME-dereflect.EXT, not taken as an input again
mkdir "$T/beside" && cp "$IN/refl.jpg" "$IN/one.png" "$T/beside/"
expect 0 "beside the input" -- "$LUMOS" dereflect "$T/beside/refl.jpg"
has "$T/beside/refl-dereflect.jpg" format=JPEG make=LumosTest
expect 0 "a directory with an earlier output" -- "$LUMOS" dereflect "$T/beside" -o "$T/beside-out"
[ "$(ls "$T/beside-out" | tr '\n' ' ')" = "one.png refl.jpg " ] || fail "beside: $(ls "$T/beside-out")"
grep -q "dereflected 2 of 2 files" "$T/err" || fail "beside summary: $(cat "$T/err")"
no_partials "$T"

# ---- bad inputs, each alone: exit 1, the file and the reason named, no output
for f in truncated.jpg notimage.jpg cmyk.jpg huge.png missing.png; do
    expect 1 "bad input $f" -- "$LUMOS" dereflect "$IN/$f" -o "$T/bad-$f"
    grep -q "$IN/$f" "$T/err" || fail "$f: the error does not name the file: $(cat "$T/err")"
    [ ! -e "$T/bad-$f" ] || fail "$f: an output was written"
done
grep -Eq "damaged|truncated|Premature" <("$LUMOS" dereflect "$IN/truncated.jpg" -o "$T/x.jpg" 2>&1) ||
    fail "truncated JPEG: no reason given"
grep -q "not a JPEG, PNG, TIFF" <("$LUMOS" dereflect "$IN/notimage.jpg" -o "$T/x.jpg" 2>&1) ||
    fail "non-image: no reason given"
grep -q "CMYK" <("$LUMOS" dereflect "$IN/cmyk.jpg" -o "$T/x.jpg" 2>&1) || fail "CMYK: no reason given"
grep -Eiq "memory|truncated|damaged" <("$LUMOS" dereflect "$IN/huge.png" -o "$T/x.png" 2>&1) ||
    fail "huge PNG: no reason given"
[ ! -e "$T/x.jpg" ] && [ ! -e "$T/x.png" ] || fail "a bad input wrote an output"

# ---- a batch goes on past bad files, reports them, and leaves no output for them
mkdir "$T/batch-in"
cp "$IN/refl.jpg" "$IN/refl16.png" "$IN/refl16.tif" "$IN/truncated.jpg" "$IN/cmyk.jpg" \
   "$IN/notimage.jpg" "$IN/huge.png" "$T/batch-in/"
expect 1 "batch with bad files" -- "$LUMOS" dereflect "$T/batch-in" -o "$T/batch" --jobs 2 --preview "$T/sheet.jpg"
[ "$(ls "$T/batch" | tr '\n' ' ')" = "refl.jpg refl16.png refl16.tif " ] || fail "batch outputs: $(ls -A "$T/batch")"
grep -q "dereflected 3 of 7 files" "$T/err" || fail "batch summary: $(tail -n 8 "$T/err")"
grep -q "4 failed" "$T/err" || fail "batch: failures not counted: $(tail -n 8 "$T/err")"
for f in truncated.jpg cmyk.jpg notimage.jpg huge.png; do
    grep -q "batch-in/$f" "$T/err" || fail "batch: $f not reported"
done
# the sheet: one row a good file, input | output, rows 512 high (8-pixel gaps)
has "$T/sheet.jpg" format=JPEG size=1048x1568
no_partials "$T"

# ---- --skip-existing, --shard, and a one-file preview
touch -d '2001-01-01' "$T/batch/refl.jpg"
mkdir "$T/good" && cp "$IN/refl.jpg" "$T/good/a.jpg" && cp "$IN/refl16.png" "$T/good/b.png" &&
    cp "$IN/one.png" "$T/good/c.png"
expect 0 "skip existing" -- "$LUMOS" dereflect "$T/batch-in/refl.jpg" --skip-existing -o "$T/batch/refl.jpg"
[ "$(stat -c %Y "$T/batch/refl.jpg")" -lt 1000000000 ] || fail "--skip-existing rewrote a file"
expect 0 "skip existing in a batch" -- "$LUMOS" dereflect "$T/good" -o "$T/good-out"
expect 0 "skip existing in a batch, again" -- "$LUMOS" dereflect "$T/good" --skip-existing -o "$T/good-out"
grep -q "3 skipped" "$T/err" || fail "skip-existing: $(cat "$T/err")"
expect 0 "shard 1/2" -- "$LUMOS" dereflect "$T/good" --shard 1/2 -o "$T/sh"
[ "$(ls "$T/sh" | tr '\n' ' ')" = "a.jpg c.png " ] || fail "shard 1/2: $(ls "$T/sh")"
expect 0 "preview of one file" -- "$LUMOS" dereflect "$IN/refl16.png" -o "$T/p.png" --preview "$T/p-sheet.png"
has "$T/p-sheet.png" format=PNG size=1048x528 mode=RGB
expect 0 "preview of a 1x1 image" -- "$LUMOS" dereflect "$IN/one.png" -o "$T/p1.png" --preview "$T/p1-sheet.tif"
has "$T/p1-sheet.tif" format=TIFF size=26x17
expect 1 "preview with nothing done" -- "$LUMOS" dereflect "$IN/cmyk.jpg" -o "$T/p2.jpg" --preview "$T/p2-sheet.jpg"
[ ! -e "$T/p2-sheet.jpg" ] || fail "a preview of nothing was written"
no_partials "$T"

[ "$fails" -eq 0 ] && echo "test_dereflect_cli: all passed" || echo "test_dereflect_cli: $fails failures"
[ "$fails" -eq 0 ]
