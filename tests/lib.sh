# lib.sh — shared helpers of the shell tests (sourced after T is set).
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect CODE DESCRIPTION -- COMMAND...: runs it, keeps stderr in $T/err
expect() {
    local want=$1 what=$2; shift 3
    "$@" >"$T/out" 2>"$T/err"; local got=$?
    [ "$got" -eq "$want" ] || { fail "$what: exit $got, wanted $want"; sed 's/^/    /' "$T/err"; }
}
