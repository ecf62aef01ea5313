# Helpers shared by run.sh and bench.sh: progress lines, assertions that
# count passes and failures, and a timer.
log()  { printf '== %s\n' "$*"; }
die()  { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }
ok()   { PASS=$((PASS+1)); [ -n "${QUIET_OK:-}" ] || printf '  ok    %s\n' "$1"; }
bad()  { FAIL=$((FAIL+1)); printf '  FAIL  %s\n' "$1"; [ -n "${2:-}" ] && printf '        %s\n' "$2"; return 0; }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what" "command: $*"; fi; }
check_eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1" "got: $(printf %q "$2")  want: $(printf %q "$3")"; fi; }
check_has() { if printf '%s' "$2" | grep -qF -- "$3"; then ok "$1"; else bad "$1" "got: $(printf '%s' "$2" | head -c 300)  want it to contain: $3"; fi; }
# The release versions the stand publishes and the tests ask for; the
# servers the scripts start (stopped by PID); the assertion counts.
KUBE=1.33.1 CRICTL=1.33.0 CTD=1.6.20 CTD2=1.6.21 RUNC=1.1.5 RUNC_BAD=1.1.6 CNI=1.1.1
PIDS=() PASS=0 FAIL=0
stop_started() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
# since T: seconds elapsed since T (an $EPOCHREALTIME value). The clock is
# read first: the arithmetic's own process start is not counted.
since() { local now=$EPOCHREALTIME; awk -v a="$1" -v b="$now" 'BEGIN { printf "%.3f\n", b - a }'; }

