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
  for f in "$WORK"/registry-*.pid; do [ -f "$f" ] && stop_pid "$(cat "$f")"; done
  return 0
}
# stop_pid PID: stops a process that is not our child, and waits for it.
stop_pid() {
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null; return 0
}
# since T: seconds elapsed since T (an $EPOCHREALTIME value). The clock is
# read first: the arithmetic's own process start is not counted.
since() { local now=$EPOCHREALTIME; awk -v a="$1" -v b="$now" 'BEGIN { printf "%.3f\n", b - a }'; }


# start_registry NAME [PORT]: starts a docker-registry on loopback with its
# storage in $WORK/registry-NAME and an access log in
# $WORK/registry-NAME.log, and prints its host:port. Its pid is
# $WORK/registry-NAME.pid (and in PIDS).
start_registry() {
  local name=$1 port=${2:-}
  [ -n "$port" ] || port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$WORK/registry-$name.yml" <<YML
version: 0.1
log: {level: warn, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $WORK/registry-$name}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YML
  docker-registry serve "$WORK/registry-$name.yml" >>"$WORK/registry-$name.log" 2>&1 &
  echo $! >"$WORK/registry-$name.pid"
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/v2/" >/dev/null || return 1
  echo "127.0.0.1:$port"
}
