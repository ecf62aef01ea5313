# Sourced by run.sh after the single-machine checks: fleets and air gaps.
# The plan is mirrored into a second docker-registry and carried through
# an OCI layout into a third; with the upstream stand-ins stopped,
# machines are provisioned from the mirrors; ten machines are provisioned
# at once (own caches, then one shared cache); and the mirror fails in
# three ways. Uses REG, MIR, PLAN, VARS, R, E and WORK from stand.sh.

air_machines=()
air_vars() { printf '%s\n' "${VARS[@]}" --var "machine=$1"; }
# air_apply MACHINE CACHE ARGS...: applies the plan to MACHINE with its own
# cache dir; the JSON report goes to $WORK/air-MACHINE.json.
air_apply() {
  local m=$1 c=$2; shift 2
  air_machines+=("$m")
  mapfile -t v < <(air_vars "$m")
  "$WORK/rootfsctl" --cache-dir "$c" --log-format json --log-level warn apply -o json "$@" "$PLAN" "${v[@]}" \
    >"$WORK/air-$m.json" 2>"$WORK/air-$m.log"
}
air_cleanup() {
  for m in "${air_machines[@]}"; do
    rm -rf "/var/lib/machines/$m" "/etc/systemd/nspawn/$m.nspawn" "/etc/systemd/system/systemd-nspawn@$m.service.d"
  done
}
# files of a machine, without what names it (hostname) or records when
# and from where it was provisioned.
air_manifest() { "$E" manifest "/var/lib/machines/$1" | grep -vE '^(etc/hostname|var/lib/rootfsctl/step-|var/lib/rootfsctl/workspace)'; }
requests() { grep -cE '"(GET|HEAD) /v2/' "$WORK/registry-$1.log"; }

log "fleets and air gaps: mirror, carry, provision with upstream stopped"
MREG=$(start_registry site) || die "site registry did not start"
t=$EPOCHREALTIME
"$R" mirror --to "oci://$MREG/rootfsctl" "$PLAN" "${VARS[@]}" >"$WORK/mirror1.txt" 2>"$WORK/mirror1.log"; rc=$?
MIRROR_T=$(since "$t")
check_eq "mirror into the site registry exits 0" "$rc" 0
MIRROR_SIZE=$(du -sh "$WORK/registry-site" | cut -f1)
"$R" mirror --to "oci://$MREG/rootfsctl" "$PLAN" "${VARS[@]}" >"$WORK/mirror2.txt" 2>&1
check_has "a second mirror transfers nothing and says so" "$(cat "$WORK/mirror2.txt")" "nothing was transferred"
"$R" artifacts -o json "$PLAN" "${VARS[@]}" >"$WORK/artifacts.json"
check_eq "artifacts lists the image and 7 artifacts" \
  "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["images"]), len(d["artifacts"]))' "$WORK/artifacts.json")" "1 7"

"$R" mirror --to "oci-layout:$WORK/carry" "$PLAN" "${VARS[@]}" >"$WORK/carry.txt" 2>&1
check "mirror into an OCI layout" test -s "$WORK/carry/index.json"
CREG=$(start_registry carried) || die "second site registry did not start"
"$R" mirror --from "oci-layout:$WORK/carry" --to "oci://$CREG/rootfsctl" >"$WORK/carry2.txt" 2>&1; rc=$?
check_eq "the carried layout is pushed into a second registry" "$rc" 0

t=$EPOCHREALTIME
air_apply rootfsctl-air-up "$WORK/cache-up"; rc=$?
UP_T=$(since "$t")
check_eq "a machine provisioned from upstream (for comparison)" "$rc" 0

# Upstream goes away: the source registry and the artifact server.
stop_pid "$(cat "$WORK/registry-upstream.pid")"
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
check "the upstream registry is stopped" sh -c "! curl -sf http://$REG/v2/"
check "the upstream artifact server is stopped" sh -c "! curl -sf $MIR/"

before=$(requests site)
t=$EPOCHREALTIME
air_apply rootfsctl-air "$WORK/cache-air" --mirror "oci://$MREG/rootfsctl"; rc=$?
AIR_T=$(since "$t")
check_eq "apply --mirror with upstream stopped exits 0" "$rc" 0
check "the machine from the mirror is file for file the one from upstream" \
  cmp -s <(air_manifest rootfsctl-air-up) <(air_manifest rootfsctl-air)
echo "   from the mirror: $(( $(requests site) - before )) registry requests"
air_apply rootfsctl-air-carried "$WORK/cache-carried" --mirror "oci://$CREG/rootfsctl"; rc=$?
check_eq "apply from the carried copy exits 0" "$rc" 0
air_apply rootfsctl-air-up "$WORK/cache-up" --mirror "oci://$MREG/rootfsctl"; rc=$?
check_eq "an upstream machine moved to the mirror: every step unchanged" \
  "$(statuses "$WORK/air-rootfsctl-air-up.json")" \
  "workspace=unchanged kube=unchanged cri=unchanged cni=unchanged os=unchanged resolved=unchanged"
air_cleanup; air_machines=()

log "a fleet on one host: 10 machines at once from the mirror"
fleet() { # fleet LABEL CACHE-OF-i
  local before t fails=0 pids=()
  before=$(requests site)
  t=$EPOCHREALTIME
  for i in $(seq 0 9); do air_apply "rootfsctl-fleet-$i" "$($2 "$i")" --mirror "oci://$MREG/rootfsctl" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || fails=$((fails+1)); done
  for i in $(seq 0 9); do air_machines+=("rootfsctl-fleet-$i"); done
  check_eq "fleet ($1): 10 applies succeed" "$fails" 0
  printf '   fleet (%s): %ss wall, %d registry requests\n' "$1" "$(since "$t")" "$(( $(requests site) - before ))"
  air_cleanup; air_machines=()
}
own() { echo "$WORK/cache-fleet-$1"; }
shared() { echo "$WORK/cache-fleet-shared"; }
fleet "own caches" own
fleet "one shared cache" shared

log "faults of the mirror"
# The mirror stops mid-pull: the apply fails cleanly, the next converges.
air_apply rootfsctl-air-stop "$WORK/cache-stop" --mirror "oci://$MREG/rootfsctl" &
ap=$!
sleep 0.5
SITE_PORT=${MREG##*:}
stop_pid "$(cat "$WORK/registry-site.pid")"
wait "$ap"; rc=$?
check "the registry stopping mid-apply fails the apply" test "$rc" -ne 0
start_registry site "$SITE_PORT" >/dev/null || die "site registry did not restart"
air_apply rootfsctl-air-stop "$WORK/cache-stop" --mirror "oci://$MREG/rootfsctl"; rc=$?
check_eq "the next apply converges" "$rc" 0
air_apply rootfsctl-air-stop "$WORK/cache-stop" --mirror "oci://$MREG/rootfsctl"
check_eq "and a further apply changes nothing" "$(statuses "$WORK/air-rootfsctl-air-stop.json")" \
  "workspace=unchanged kube=unchanged cri=unchanged cni=unchanged os=unchanged resolved=unchanged"

# A tampered artifact: runc's blob in the registry's storage is altered.
d=$(sha256sum "$WORK/mirror/runc/v$RUNC/runc.amd64" | cut -d' ' -f1)
blob=$WORK/registry-site/docker/registry/v2/blobs/sha256/${d:0:2}/$d/data
cp "$blob" "$WORK/runc-blob"
printf 'X' | dd of="$blob" bs=1 seek=100 conv=notrunc 2>/dev/null
air_apply rootfsctl-air-evil "$WORK/cache-evil" --mirror "oci://$MREG/rootfsctl"; rc=$?
check "a tampered artifact fails the apply" test "$rc" -ne 0
check_has "cri names the mismatch" "$(python3 -c 'import json,sys; print([s["error"] for s in json.load(open(sys.argv[1]))["steps"] if s["id"]=="cri"][0])' "$WORK/air-rootfsctl-air-evil.json")" "sha256"
check "nothing of runc was installed" test ! -e /var/lib/machines/rootfsctl-air-evil/usr/local/bin/runc
cp "$WORK/runc-blob" "$blob"

# A mirror without the plan's items: preflight names them.
mapfile -t v < <(air_vars rootfsctl-air-none)
out=$("$WORK/rootfsctl" --cache-dir "$WORK/cache-none" --log-format json preflight --mirror "oci://$MREG/empty" "$PLAN" "${v[@]}" 2>&1); rc=$?
check "preflight against an empty mirror fails" test "$rc" -ne 0
check_has "and names a missing item" "$out" "is not in the mirror"
air_cleanup
printf '   mirror %ss (%s in the registry); apply from upstream %ss, from the mirror %ss\n' "$MIRROR_T" "$MIRROR_SIZE" "$UP_T" "$AIR_T"
