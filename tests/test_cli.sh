#!/bin/bash
# test_cli.sh LUMOS CR2 [PYTHON ISP_NETS_PY] — the command line as a script
# would use it: bad inputs, batches that go on past them, exit codes, shards,
# learned ISPs and their weights, and never a partial output or a touched input.
set -u
LUMOS=$1 CR2=$2 PYTHON=${3:-/usr/bin/python3} NETS_PY=${4:-} MKDNG=${5:-}
[ -r "$CR2" ] || { echo "[SKIP] $CR2 not found (install rawtran-doc)"; exit 77; }
T=$(mktemp -d /tmp/lumos-cli.XXXXXX)
cleanup() { umount "$T/full" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
. "$(dirname "$0")/lib.sh"
no_partials() {  # no temporary or partial file anywhere under $1
    local left; left=$(find "$1" -name '*.part' -o -name '.*.part*' | head -n 3)
    [ -z "$left" ] || fail "temporary files left: $left"
}

# ---- usage
expect 0 "--help" -- "$LUMOS" --help
grep -q "usage: lumos" "$T/out" || fail "--help prints no usage"
expect 0 "convert --help" -- "$LUMOS" convert --help
grep -q -- "--shard" "$T/out" || fail "convert --help misses --shard"
expect 0 "--version" -- "$LUMOS" --version
grep -Eq "^lumos [0-9]+\.[0-9]+\.[0-9]+$" "$T/out" || fail "--version: $(cat "$T/out")"
expect 2 "no command" -- "$LUMOS"
expect 2 "unknown option" -- "$LUMOS" convert --frobnicate "$CR2"
expect 2 "no inputs" -- "$LUMOS" convert
expect 2 "bad shard" -- "$LUMOS" convert --shard 3/2 "$CR2"
expect 2 "16-bit JPEG" -- "$LUMOS" convert --bits 16 "$CR2" -o "$T/x.jpg"
expect 2 "bad quality" -- "$LUMOS" convert -q 0 "$CR2" -o "$T/x.jpg"
expect 2 "bad wb" -- "$LUMOS" convert --wb 1,0,1 "$CR2" -o "$T/x.jpg"
expect 2 "EXR without --linear" -- "$LUMOS" convert "$CR2" -o "$T/x.exr"
expect 2 "32-bit PNG" -- "$LUMOS" convert --bits 32 --linear "$CR2" -o "$T/x.png"
expect 2 "32-bit learned ISP" -- "$LUMOS" convert --bits 32 --isp efficient "$CR2" -o "$T/x.tif"
expect 2 "unknown ISP" -- "$LUMOS" convert --isp vgg19 "$CR2" -o "$T/x.jpg"
grep -q "efficient, robust or rmfa-tiny" "$T/err" || fail "--isp does not list the networks: $(cat "$T/err")"
[ ! -e "$T/x.jpg" ] && [ ! -e "$T/x.exr" ] && [ ! -e "$T/x.png" ] && [ ! -e "$T/x.tif" ] ||
    fail "usage errors wrote an output"

# ---- one good file; the input is never touched
before=$(sha256sum "$CR2" | cut -d' ' -f1)
expect 0 "convert CR2" -- "$LUMOS" convert "$CR2" -o "$T/one.jpg"
[ -s "$T/one.jpg" ] || fail "no JPEG written"
[ "$(head -c 2 "$T/one.jpg" | od -An -tx1 | tr -d ' ')" = "ffd8" ] || fail "not a JPEG"
# scene-linear float: OpenEXR and 32-bit TIFF (the library's tests check the values)
expect 0 "convert to EXR" -- "$LUMOS" convert "$CR2" --half --linear -o "$T/lin.exr"
[ "$(head -c 4 "$T/lin.exr" | od -An -tx1 | tr -d ' ')" = "762f3101" ] || fail "not an OpenEXR file"
expect 0 "convert to float TIFF" -- "$LUMOS" convert "$CR2" --half --linear --bits 32 -o "$T/lin.tif"
[ -s "$T/lin.tif" ] || fail "no 32-bit TIFF written"
expect 0 "info" -- "$LUMOS" info "$CR2"
grep -q "EOS 30D" "$T/out" || fail "info: no camera model"
expect 0 "info --json" -- "$LUMOS" info --json "$CR2"
grep -q '"model":"EOS 30D"' "$T/out" || fail "info --json: $(cat "$T/out")"

# ---- bad inputs, each alone: exit 1, the file and reason named, no output
mkdir -p "$T/bad"
head -c 1000000 "$CR2" >"$T/bad/truncated.CR2"
head -c 200000 /dev/urandom >"$T/bad/random.CR2"
: >"$T/bad/empty.CR2"
mkdir "$T/bad/folder.CR2"
printf '\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9' >"$T/bad/photo.CR2"
mkdir "$T/emptydir"
for f in truncated random empty folder photo; do
    expect 1 "bad input $f" -- "$LUMOS" convert "$T/bad/$f.CR2" -o "$T/bad-$f.jpg"
    grep -q "$f.CR2" "$T/err" || fail "$f: error does not name the file: $(cat "$T/err")"
    [ ! -e "$T/bad-$f.jpg" ] || fail "$f: an output was written"
    expect 1 "info on $f" -- "$LUMOS" info "$T/bad/$f.CR2"
done
grep -Eq "truncated|damaged" <("$LUMOS" convert "$T/bad/truncated.CR2" -o "$T/t.jpg" 2>&1) ||
    fail "truncated: reason not given"
grep -q "empty" <("$LUMOS" convert "$T/bad/empty.CR2" -o "$T/t.jpg" 2>&1) || fail "empty: reason"
grep -q "directory" <("$LUMOS" convert "$T/bad/folder.CR2" -o "$T/t.jpg" 2>&1) || fail "dir: reason"
expect 1 "missing file" -- "$LUMOS" convert "$T/bad/none.CR2" -o "$T/t.jpg"
expect 1 "directory without RAW files" -- "$LUMOS" convert "$T/emptydir" -o "$T/o"
grep -q "emptydir" "$T/err" || fail "empty directory not named: $(cat "$T/err")"

# ---- a batch goes on past bad files and reports them at the end
cp "$CR2" "$T/bad/good.CR2"
expect 1 "batch with bad files" -- "$LUMOS" convert "$T/bad" --half -o "$T/batch"
[ -s "$T/batch/good.jpg" ] || fail "batch: the good file was not converted"
[ "$(find "$T/batch" -type f | wc -l)" -eq 1 ] || fail "batch: outputs for bad files: $(ls "$T/batch")"
grep -q "converted 1 of 6 files" "$T/err" || fail "batch summary: $(tail -n 8 "$T/err")"
grep -q "5 failed" "$T/err" || fail "batch: failures not counted"
no_partials "$T"

# ---- outputs that cannot be written
if [ "$(id -u)" -eq 0 ]; then ro=/proc; else mkdir "$T/ro" && chmod 555 "$T/ro" && ro=$T/ro; fi
expect 1 "unwritable output directory" -- "$LUMOS" convert "$CR2" --half -o "$ro/"
grep -q "$ro" "$T/err" || fail "unwritable: path not named: $(cat "$T/err")"
mkdir "$T/full"
if mount -t tmpfs -o size=256k tmpfs "$T/full" 2>/dev/null; then
    expect 1 "full disk" -- "$LUMOS" convert "$CR2" -o "$T/full/x.tif" --format tiff --bits 16
    grep -qi "no space" "$T/err" || fail "full disk: reason not given: $(cat "$T/err")"
    [ -z "$(ls -A "$T/full")" ] || fail "full disk: files left: $(ls -A "$T/full")"
    umount "$T/full"
else
    echo "note: cannot mount a small tmpfs here; full-disk case left to test_io"
fi

# ---- existing outputs: replaced, skipped, or refused; shards split a batch
mkdir "$T/many"
for i in 1 2 3 4 5; do ln -s "$CR2" "$T/many/img$i.CR2"; done
expect 0 "shard 1/2" -- "$LUMOS" convert "$T/many" --half --shard 1/2 -o "$T/sh"
expect 0 "shard 2/2" -- "$LUMOS" convert "$T/many" --half --shard 2/2 -o "$T/sh2"
a=$(ls "$T/sh" | sort) b=$(ls "$T/sh2" | sort)
[ "$(printf '%s\n%s\n' "$a" "$b" | sort | uniq -d)" = "" ] || fail "shards overlap"
[ "$(printf '%s\n%s\n' "$a" "$b" | grep -c jpg)" -eq 5 ] || fail "shards miss files: $a / $b"
[ "$a" = "$(printf 'img1.jpg\nimg3.jpg\nimg5.jpg')" ] || fail "shard 1/2 is not every 2nd: $a"
touch -d '2001-01-01' "$T/sh/img1.jpg"
expect 0 "skip existing" -- "$LUMOS" convert "$T/many" --half --shard 1/2 --skip-existing -o "$T/sh"
grep -q "3 skipped" "$T/err" || fail "skip-existing: $(cat "$T/err")"
[ "$(stat -c %Y "$T/sh/img1.jpg")" -lt 1000000000 ] || fail "skip-existing rewrote a file"
expect 1 "no-overwrite" -- "$LUMOS" convert "$T/many/img1.CR2" --half --no-overwrite -o "$T/sh/img1.jpg"
[ "$(stat -c %Y "$T/sh/img1.jpg")" -lt 1000000000 ] || fail "--no-overwrite replaced the file"
expect 0 "overwrite" -- "$LUMOS" convert "$T/many/img1.CR2" --half -o "$T/sh/img1.jpg"
[ "$(stat -c %Y "$T/sh/img1.jpg")" -gt 1000000000 ] || fail "the output was not replaced"
expect 0 "quoted glob, jobs 2" -- "$LUMOS" convert "$T/many/img[24].CR2" --half -j 2 -o "$T/glob"
[ "$(ls "$T/glob" | tr '\n' ' ')" = "img2.jpg img4.jpg " ] || fail "glob: $(ls "$T/glob")"
no_partials "$T"

# ---- learned ISPs: weights required, checked, and then a real conversion
expect 1 "learned ISP without weights" -- env LUMOS_DATA_DIR="$T/no-data" "$LUMOS" convert "$CR2" --isp robust -o "$T/l.jpg"
grep -q "no default weights" "$T/err" || fail "missing default weights not said: $(cat "$T/err")"
# the shipped default (data/weights/, trained by lumos train: README)
# on the CR2, and on a DNG of another camera (camera space linear sRGB, GRBG)
# made from the CR2's half-size render: each network's colour means there
# within 0.15 of the classical ISP's (a dead or wrong colour fails)
if [ -n "$MKDNG" ]; then
    expect 0 "half render for a DNG" -- "$LUMOS" convert "$CR2" --half --tone 0 -o "$T/half.png"
    "$MKDNG" "$T/half.png" "$T/other.dng" --cfa grbg >/dev/null || fail "mkdng failed"
    expect 0 "classical ISP on the DNG" -- "$LUMOS" convert "$T/other.dng" -o "$T/dng-classic.png"
fi
for net in efficient robust rmfa-tiny; do
    if [ -f "$(dirname "$0")/../data/weights/$net.safetensors" ]; then
        expect 0 "shipped $net weights" -- "$LUMOS" convert "$CR2" --isp $net -o "$T/shipped-$net.jpg"
        if [ "$net" = efficient ] && "$PYTHON" -c 'import imageio, numpy' 2>/dev/null; then
            # the shipped weights take the exposure: +1 EV renders brighter
            expect 0 "shipped $net weights at +1 EV" -- "$LUMOS" convert "$CR2" --isp $net --exposure 1 -o "$T/shipped-$net-ev1.jpg"
            "$PYTHON" - "$T/shipped-$net.jpg" "$T/shipped-$net-ev1.jpg" <<'PY' || fail "$net: +1 EV is not brighter"
import sys, imageio, numpy as np
a, b = (imageio.imread(p)[..., :3].astype(np.float64).mean() for p in sys.argv[1:])
print("mean at 0 EV %.1f, at +1 EV %.1f" % (a, b))
sys.exit(0 if b > a * 1.2 else 1)
PY
        fi
        [ -n "$MKDNG" ] || continue
        expect 0 "shipped $net weights on a DNG" -- "$LUMOS" convert "$T/other.dng" --isp $net -o "$T/dng-$net.png"
        if "$PYTHON" -c 'import imageio, numpy' 2>/dev/null; then
            "$PYTHON" - "$T/dng-classic.png" "$T/dng-$net.png" <<'PY' || fail "$net on the DNG: colours off"
import sys, imageio, numpy as np
a, b = (imageio.imread(p)[..., :3].astype(np.float64) / 255 for p in sys.argv[1:])
d = np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1)))
print("channel means, classical vs network:", a.mean(axis=(0, 1)).round(3), b.mean(axis=(0, 1)).round(3))
sys.exit(0 if a.shape == b.shape and d.max() < 0.15 else 1)
PY
        fi
    fi
done
expect 2 "classic options with a learned ISP" -- "$LUMOS" convert "$CR2" --isp robust --wb auto -o "$T/l.jpg"
expect 2 "weights for the classic ISP" -- "$LUMOS" convert "$CR2" --weights x.safetensors -o "$T/l.jpg"
expect 2 "unknown ISP" -- "$LUMOS" convert "$CR2" --isp fancy -o "$T/l.jpg"
head -c 5000 /dev/urandom >"$T/junk.safetensors"
expect 1 "damaged weights" -- "$LUMOS" convert "$CR2" --isp efficient --weights "$T/junk.safetensors" -o "$T/l.jpg"
grep -q "junk.safetensors" "$T/err" || fail "damaged weights: file not named: $(cat "$T/err")"
[ ! -e "$T/l.jpg" ] || fail "a learned-ISP failure wrote an output"
if [ -n "$NETS_PY" ] && "$PYTHON" -c 'import torch' 2>/dev/null; then
    "$PYTHON" "$NETS_PY" make efficient "$T/eff" --width 8 --height 8 --seed 1 >/dev/null ||
        fail "isp_nets.py make failed"
    expect 1 "weights of another network" -- "$LUMOS" convert "$CR2" --isp robust --weights "$T/eff/weights.safetensors" -o "$T/l.jpg"
    grep -q "shape" "$T/err" || fail "wrong network's weights: $(cat "$T/err")"
    # weights made without lumos_exposure metadata were not trained to take it
    expect 1 "exposure to weights that predate it" -- "$LUMOS" convert "$CR2" --isp efficient --weights "$T/eff/weights.safetensors" --exposure 1 -o "$T/l.jpg"
    grep -q "0 EV" "$T/err" || fail "exposure refused without a reason: $(cat "$T/err")"
    [ ! -e "$T/l.jpg" ] || fail "a refused exposure wrote an output"
    expect 0 "learned ISP" -- "$LUMOS" convert "$CR2" --isp efficient --weights "$T/eff/weights.safetensors" -o "$T/l.png" --bits 16
    [ "$(od -An -tu1 -j16 -N8 "$T/l.png" | tr -s ' ')" = " 0 0 13 194 0 0 9 44" ] ||
        fail "learned ISP output is not 3522x2348: $(od -An -tu1 -j16 -N8 "$T/l.png")"
else
    echo "note: no torch here; the learned ISP's CLI run is left to test_learned"
fi
no_partials "$T"

[ "$before" = "$(sha256sum "$CR2" | cut -d' ' -f1)" ] || fail "the input CR2 changed"
if [ "$fails" -eq 0 ]; then echo "Success!"; exit 0; fi
echo "$fails failures"; exit 1
