#!/usr/bin/env bash
# End-to-end test of rootfsctl on real components:
#   a Debian bookworm rootfs made by debootstrap, pushed as a multi-platform
#   OCI index to the Debian docker-registry on 127.0.0.1; an upstream-layout
#   artifact mirror built from Debian's containerd, runc, CNI plugins and
#   kubectl (plus stand-ins for kubelet, kube-proxy and crictl, which Debian
#   does not ship); plans/kube-node.yaml applied with only --var overrides;
#   the result checked inside the machine with systemd-nspawn and booted.
#
# Needs root (debootstrap, device nodes, /var/lib/machines, /etc/systemd).
# Installs: docker-registry debootstrap systemd-container busybox-static
# curl rpm (and goreleaser, cyclonedx-gomod from the Go module proxy, once,
# for make release-snapshot), and downloads (without installing) containerd runc
# containernetworking-plugins kubernetes-client. Caches the rootfs under
# $ROOTFSCTL_E2E_CACHE (default /var/cache/rootfsctl-e2e). Talks only to
# loopback, apart from apt and debootstrap, which use the machine's mirror.
# ROOTFSCTL_E2E_KEEP=1 keeps the work directory (logs, mirror) for debugging.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

if [ "$(id -u)" != 0 ]; then
  if [ -n "${CI:-}" ]; then
    echo "e2e: CI must run this as root (debootstrap, device nodes, systemd-nspawn need it)" >&2
    exit 1
  fi
  echo "e2e: SKIPPED: needs root for debootstrap, device nodes, /var/lib/machines and systemd-nspawn (run: sudo make e2e)"
  exit 0
fi

CACHE=${ROOTFSCTL_E2E_CACHE:-/var/cache/rootfsctl-e2e}
MACHINE=rootfsctl-e2e
MACHINE_DIR=/var/lib/machines/$MACHINE
NSPAWN_FILE=/etc/systemd/nspawn/$MACHINE.nspawn
DROPIN_DIR=/etc/systemd/system/systemd-nspawn@$MACHINE.service.d
WORK=$(mktemp -d /tmp/rootfsctl-e2e.XXXXXX)
T_START=$EPOCHREALTIME

cleanup() {
  stop_started
  rm -rf "$MACHINE_DIR" "$NSPAWN_FILE" "$DROPIN_DIR"
  rm -rf /var/lib/machines/rootfsctl-air* /var/lib/machines/rootfsctl-fleet-* /var/lib/machines/.rootfsctl-air* /var/lib/machines/.rootfsctl-fleet-* \
    /etc/systemd/nspawn/rootfsctl-air*.nspawn /etc/systemd/nspawn/rootfsctl-fleet-*.nspawn \
    /etc/systemd/system/systemd-nspawn@rootfsctl-air*.service.d /etc/systemd/system/systemd-nspawn@rootfsctl-fleet-*.service.d
  if [ -n "${ROOTFSCTL_E2E_KEEP:-}" ]; then echo "e2e: kept $WORK"; else rm -rf "$WORK"; fi
  rm -rf /var/lib/machines/."$MACHINE".rootfsctl-*
}
trap cleanup EXIT
trap 'exit 130' INT TERM

source "$REPO/test/e2e/lib.sh"
source "$REPO/test/e2e/stand.sh"

# --- 5. plans/kube-node.yaml with only --var overrides ----------------------
log "the plan is the shipped one, changed only by --var"
if git -C "$REPO" rev-parse --verify -q HEAD >/dev/null; then
  check_eq "plans/kube-node.yaml is the committed file" "$(sha256sum <"$PLAN")" "$(git -C "$REPO" show HEAD:"$PLAN" | sha256sum)"
fi
rm -rf "$MACHINE_DIR" "$NSPAWN_FILE" "$DROPIN_DIR"

log "rootfsctl preflight"
out=$("$R" preflight "$PLAN" "${VARS[@]}" 2>&1); rc=$?
check_eq "preflight passes" "$rc" 0
check_has "preflight names every check" "$out" "nspawn-machine-provisioning"
printf '%s\n' "$out" | sed 's/^/   /'

log "rootfsctl apply (cold)"
t=$EPOCHREALTIME
"$R" apply -o json "$PLAN" "${VARS[@]}" >"$WORK/apply1.json" 2>"$WORK/apply1.log"; rc=$?
COLD=$(since "$t")
check_eq "cold apply exits 0" "$rc" 0
statuses() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(" ".join(s["id"]+"="+s["status"] for s in r["steps"]))' "$1"; }
check_eq "cold apply: every step changed" "$(statuses "$WORK/apply1.json")" \
  "workspace=changed kube=changed cri=changed cni=changed os=changed resolved=changed"
[ "$rc" = 0 ] || { tail -20 "$WORK/apply1.log"; }

# --- 6. a second apply changes nothing --------------------------------------
manifest_all() { "$E" manifest --mtime "$MACHINE_DIR"; "$E" manifest --mtime "$(dirname "$NSPAWN_FILE")"; "$E" manifest --mtime "$DROPIN_DIR"; }
manifest_all >"$WORK/m1"
t=$EPOCHREALTIME
"$R" apply --log-level warn -o json "$PLAN" "${VARS[@]}" >"$WORK/apply2.json" 2>"$WORK/apply2.log"; rc=$?
WARM=$(since "$t")
check_eq "warm apply exits 0" "$rc" 0
check_eq "warm apply: every step unchanged" "$(statuses "$WORK/apply2.json")" \
  "workspace=unchanged kube=unchanged cri=unchanged cni=unchanged os=unchanged resolved=unchanged"
manifest_all >"$WORK/m2"
check "warm apply changed no file (paths, modes, owners, sizes, digests)" cmp -s "$WORK/m1" "$WORK/m2"

# --- 7. another containerd version changes only cri and its files -----------
"$R" apply --log-level warn -o json "$PLAN" "${VARS[@]}" --var "containerdVersion=$CTD2" >"$WORK/apply3.json" 2>"$WORK/apply3.log"; rc=$?
check_eq "containerd $CTD2: apply exits 0" "$rc" 0
check_eq "containerd $CTD2: only cri changed" "$(statuses "$WORK/apply3.json")" \
  "workspace=unchanged kube=unchanged cri=changed cni=unchanged os=unchanged resolved=unchanged"
manifest_all >"$WORK/m3"
changed=$(diff "$WORK/m2" "$WORK/m3" | sed -n 's/^[<>] \([^\t]*\)\t.*/\1/p' | grep -v '^var/lib/rootfsctl/claims/' | sort -u | tr '\n' ' ')
check_eq "containerd $CTD2: only containerd's files and cri's record changed" "$changed" \
  "usr/local/bin/containerd usr/local/bin/containerd-shim-runc-v2 usr/local/bin/containerd-stress usr/local/bin/ctr var/lib/rootfsctl/step-cri.json "
# 1.6.21 ships containerd-stress, which 1.6.20 (Debian's) lacks: cri claims
# that one new path, and no other claim changes.
claims=$(diff "$WORK/m2" "$WORK/m3" | sed -n 's/^[<>] \(var\/lib\/rootfsctl\/claims\/[^\t]*\)\t.*/\1/p' | sort -u | wc -l)
check_eq "containerd $CTD2: one new claim (containerd-stress)" "$claims" 1

# --- 8. a corrupted artifact fails its step and keeps the installed binary --
before=$(sha256sum "$MACHINE_DIR/usr/local/bin/runc")
"$R" apply --log-level warn -o json "$PLAN" "${VARS[@]}" --var "containerdVersion=$CTD2" --var "runcVersion=$RUNC_BAD" >"$WORK/apply4.json" 2>"$WORK/apply4.log"; rc=$?
check_eq "corrupted runc: apply exits 1" "$rc" 1
err=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print([s for s in r["steps"] if s["id"]=="cri"][0].get("error",""))' "$WORK/apply4.json")
check_has "corrupted runc: cri fails with a checksum message" "$err" "download runc $RUNC_BAD linux/amd64: verify sha256: got"
check_eq "corrupted runc: the installed runc is intact" "$(sha256sum "$MACHINE_DIR/usr/local/bin/runc")" "$before"
check_eq "corrupted runc: no temporary files left" "$(find "$MACHINE_DIR/usr/local/bin" -name '.rootfsctl-tmp-*' | wc -l)" 0

# --- 9. the machine, as a user sees it ---------------------------------------
log "inside the machine (systemd-nspawn --pipe)"
# stdout only: nspawn reports harmless "Attempted to remove disk file system
# under /run/systemd/nspawn/propagate" on stderr on this kind of host.
nsp() { systemd-nspawn -q -D "$MACHINE_DIR" --register=no --keep-unit --pipe "$@" </dev/null 2>>"$WORK/nspawn.log"; }
check_has "containerd --version" "$(nsp /usr/local/bin/containerd --version)" "containerd github.com/containerd/containerd 1.6.20"
check_has "runc --version" "$(nsp /usr/local/bin/runc --version)" "runc version 1.1.5"
check_has "ctr --version" "$(nsp /usr/local/bin/ctr --version)" "ctr github.com/containerd/containerd"
check_has "kubectl version --client" "$(nsp /usr/local/bin/kubectl version --client)" "Client Version"
check_eq "kubelet --version" "$(nsp /usr/local/bin/kubelet --version)" "Kubernetes v$KUBE"
check_eq "crictl --version" "$(nsp /usr/local/bin/crictl --version)" "crictl version v$CRICTL"
check_has "CNI loopback answers CNI_COMMAND=VERSION" "$(nsp env CNI_COMMAND=VERSION /opt/cni/bin/loopback)" '"supportedVersions"'
check_eq "CNI docs not installed as plugins" "$(ls "$MACHINE_DIR/opt/cni/bin" | grep -c LICENSE)" 0
check_eq "unpacked the amd64 platform" "$(cat "$MACHINE_DIR/etc/e2e-platform")" amd64
check "etc/resolv.conf is a regular file" test -f "$MACHINE_DIR/etc/resolv.conf" -a ! -L "$MACHINE_DIR/etc/resolv.conf"
check "etc/resolv.conf equals the host's" cmp -s "$MACHINE_DIR/etc/resolv.conf" "$(readlink -f /etc/resolv.conf)"
check_eq "systemd-resolved is masked" "$(readlink "$MACHINE_DIR/etc/systemd/system/systemd-resolved.service")" /dev/null
check_eq "etc/hostname is the host's" "$(cat "$MACHINE_DIR/etc/hostname")" "$(hostname)"
check_has "modules-load lists overlay and br_netfilter" "$(cat "$MACHINE_DIR/etc/modules-load.d/kubernetes.conf")" $'overlay\nbr_netfilter'
check_has "tmpfiles links /dev/kmsg" "$(cat "$MACHINE_DIR/etc/tmpfiles.d/kmsg.conf")" "L /dev/kmsg - - - - /dev/console"
check_has "apt sources for the suite" "$(cat "$MACHINE_DIR/etc/apt/sources.list")" "noble-security main restricted universe multiverse"
check_eq "/usr/bin/passwd is setuid root (inside)" "$(nsp stat -c '%A %U' /usr/bin/passwd)" "-rwsr-xr-x root"
check_eq "/etc/shadow is root:shadow 0640 (inside)" "$(nsp stat -c '%a %U %G' /etc/shadow)" "640 root shadow"
check_eq "device node from the image" "$(stat -c '%F %t:%T %a' "$MACHINE_DIR/dev/e2e-null")" "character special file 1:3 666"
# Every entry of the image (bar what the steps rewrite) has the image's
# type, mode and owner in the machine.
mism=$(python3 - "$ROOTFS_TAR" "$MACHINE_DIR" <<'PY'
import os, stat, sys, tarfile
tar, root = sys.argv[1], sys.argv[2]
skip = ("etc/resolv.conf", "etc/hostname", "etc/apt/sources.list", "etc/systemd/system/systemd-resolved.service",
        "var/lib/rootfsctl", "usr/local/bin", "opt/cni/bin")
bad, n = [], 0
kinds = {tarfile.REGTYPE: stat.S_IFREG, tarfile.AREGTYPE: stat.S_IFREG, tarfile.DIRTYPE: stat.S_IFDIR,
         tarfile.SYMTYPE: stat.S_IFLNK, tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK, tarfile.FIFOTYPE: stat.S_IFIFO}
with tarfile.open(tar) as t:
    for m in t:
        name = os.path.normpath(m.name)
        if name == "." or name.startswith(skip):
            continue
        n += 1
        try:
            st = os.lstat(os.path.join(root, name))
        except FileNotFoundError:
            bad.append(name + ": missing"); continue
        if m.type == tarfile.LNKTYPE:
            continue
        want = (kinds.get(m.type), m.mode & 0o7777, m.uid, m.gid)
        got = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode) if m.type != tarfile.SYMTYPE else m.mode & 0o7777, st.st_uid, st.st_gid)
        if want != got:
            bad.append(f"{name}: got {got}, want {want}")
print(f"{len(bad)} of {n}")
for b in bad[:10]:
    print(b, file=sys.stderr)
PY
)
check_eq "every image entry keeps its type, mode and owner" "${mism%% of *}" 0
echo "   compared ${mism#* of } entries"

# --- 10. boot --------------------------------------------------------------
log "booting the machine (systemd-nspawn --boot)"
t=$EPOCHREALTIME
systemd-nspawn --boot --register=no --keep-unit -D "$MACHINE_DIR" </dev/null >"$WORK/boot.log" 2>&1 &
BOOT_PID=$!
PIDS+=("$BOOT_PID")
booted=""
for _ in $(seq 600); do
  if grep -qE 'login:|Reached target .*Multi-User' "$WORK/boot.log"; then booted=yes; break; fi
  kill -0 "$BOOT_PID" 2>/dev/null || break
  sleep 0.1
done
BOOT=$(since "$t")
if [ -n "$booted" ]; then ok "the machine boots in ${BOOT}s: $(grep -m1 -oE 'login:|Reached target .*Multi-User.*' "$WORK/boot.log")"; else bad "the machine boots" "$(tail -15 "$WORK/boot.log")"; fi
kill -TERM "$BOOT_PID" 2>/dev/null
rc=124
for _ in $(seq 300); do
  if ! kill -0 "$BOOT_PID" 2>/dev/null; then wait "$BOOT_PID"; rc=$?; break; fi
  sleep 0.1
done
check_eq "SIGTERM shuts the machine down cleanly (exit 0)" "$rc" 0
boot_log=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/boot.log")
check_has "shutdown went through systemd's shutdown.target" "$boot_log" "Reached target shutdown.target"
check_has "nspawn reports the container shut down" "$boot_log" "has been shut down."
[ "$rc" = 0 ] || tail -15 "$WORK/boot.log"

# --- 11-13. release build, the .deb, the systemd unit ------------------------
# (before the air gaps, which stop the upstream registry and mirror that the
# unit provisions from)
source "$REPO/test/e2e/release.sh"

# --- 14. fleets and air gaps -----------------------------------------------
source "$REPO/test/e2e/airgap.sh"

# --- summary ---------------------------------------------------------------
log "summary"
printf '   cold apply %ss, warm apply %ss, boot %ss, whole run %ss\n' "$COLD" "$WARM" "$BOOT" "$(since "$T_START")"
printf 'e2e: %d passed, %d failed\n' "$PASS" "$FAIL"
[ "$FAIL" = 0 ]
