# lib.sh — shared helpers of the shell tests (sourced after T is set).
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect CODE DESCRIPTION -- COMMAND...: runs it, keeps stderr in $T/err
expect() {
    local want=$1 what=$2; shift 3
    "$@" >"$T/out" 2>"$T/err"; local got=$?
    [ "$got" -eq "$want" ] || { fail "$what: exit $got, wanted $want"; sed 's/^/    /' "$T/err"; }
}
# photo_data DIR PHOTO_DIR: DIR holds links to four of python3-skimage's
# photos; exits 77 (skip) when they are not there.
photo_data() {
    local p
    for p in astronaut chelsea coffee motorcycle_left; do
        [ -r "$2/$p.png" ] || { echo "[SKIP] $2/$p.png not found (install python3-skimage)"; exit 77; }
    done
    mkdir -p "$1"
    for p in astronaut chelsea coffee motorcycle_left; do ln -s "$2/$p.png" "$1/"; done
}
