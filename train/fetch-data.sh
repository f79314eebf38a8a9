#!/bin/sh
# Installs the Debian packages whose photos lumos trains on and lists them.
#   train/fetch-data.sh [LIST]      LIST defaults to $HOME/.cache/lumos/photos.txt
# LIST gets one absolute path a line: every JPEG/PNG those packages installed
# that is at least MIN_SIDE pixels on its short side (icons, thumbnails and
# doc diagrams are not training photos). Give LIST to lumos__dataset_open; the
# train/test split is by file name, so it stays fixed however the list grows.
# Packages already installed are not installed again.
set -eu
LIST=${1:-${HOME:-/root}/.cache/lumos/photos.txt}
MIN_SIDE=${MIN_SIDE:-256}
PKGS="lomiri-wallpapers-16.04 mate-backgrounds plasma-workspace-wallpapers python3-skimage opencv-doc"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# apt-cache policy prints "Candidate: (none)" (or nothing) for an unknown name.
known() { apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [^(]'; }

missing=""
for p in $PKGS; do installed "$p" || missing="$missing $p"; done
if [ -n "$missing" ]; then
    unknown=""
    for p in $missing; do known "$p" || unknown="$unknown $p"; done
    if [ -n "$unknown" ]; then
        $SUDO apt-get update -qq
        unknown2=""
        for p in $unknown; do known "$p" || unknown2="$unknown2 $p"; done
        if [ -n "$unknown2" ]; then
            echo "fetch-data: no such package here:$unknown2" >&2
            exit 1
        fi
    fi
    echo "fetch-data: installing$missing"
    # shellcheck disable=SC2086  # the word splitting is the package list
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# Which of a package's files are photos: opencv-doc's HTML is full of
# diagrams, so only its sample data; skimage only its data folder (not the
# test folders' fixtures).
photos_of() {
    case $1 in
    opencv-doc) dpkg -L "$1" | grep '/examples/data/' ;;
    python3-skimage) dpkg -L "$1" | grep '/skimage/data/' ;;
    *) dpkg -L "$1" ;;
    esac | grep -i -E '\.(jpe?g|png)$' || true
}

# Reads paths on stdin, prints those that are regular files of at least
# MIN_SIDE pixels on the short side, from the PNG IHDR or the JPEG SOF header.
big_enough() {
    python3 -c '
import struct, sys
min_side = int(sys.argv[1])
def size(path):
    with open(path, "rb") as f:
        head = f.read(26)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head[:2] != b"\xff\xd8":
            return None
        f.seek(2)
        while True:
            m = f.read(2)
            if len(m) < 2 or m[0] != 0xFF:
                return None
            if m[1] == 0xFF:  # fill byte before a marker
                f.seek(-1, 1)
                continue
            if m[1] in (0xD8, 0x01) or 0xD0 <= m[1] <= 0xD7:
                continue
            n = f.read(2)
            if len(n) < 2:
                return None
            length = struct.unpack(">H", n)[0]
            if 0xC0 <= m[1] <= 0xCF and m[1] not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">xHH", f.read(5))
                return w, h
            f.seek(length - 2, 1)
for line in sys.stdin:
    p = line.rstrip("\n")
    try:
        wh = size(p)
    except OSError:
        wh = None
    if wh and min(wh) >= min_side:
        print(p)
' "$MIN_SIDE"
}

mkdir -p "$(dirname "$LIST")"
tmp="$LIST.tmp.$$"
trap 'rm -f "$tmp"' EXIT
: >"$tmp"
for p in $PKGS; do
    all=$(photos_of "$p" | sort -u)
    n_all=$(printf '%s' "$all" | grep -c . || true)
    kept=$(printf '%s\n' "$all" | grep . | big_enough || true)
    n_kept=$(printf '%s' "$kept" | grep -c . || true)
    [ -n "$kept" ] && printf '%s\n' "$kept" >>"$tmp"
    printf 'fetch-data: %-28s %5d photos (%d smaller than %d px skipped)\n' "$p" "$n_kept" \
        $((n_all - n_kept)) "$MIN_SIDE"
done
sort -u "$tmp" -o "$tmp"
mv "$tmp" "$LIST"
trap - EXIT
echo "fetch-data: $(wc -l <"$LIST") photos listed in $LIST"
