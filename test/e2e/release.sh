# Sourced by run.sh after the machine booted, while the stand's upstream
# registry and mirror still run: the release build and its
# packages, for real. `make release-snapshot` (goreleaser, offline) must give
# static linux/amd64 and linux/arm64 binaries, checksums, CycloneDX SBOMs
# and .deb/.rpm packages; the .deb is installed into a copy of the
# debootstrap rootfs, where rootfsctl must run and validate the shipped
# plan; then that rootfs is booted as a host whose systemd starts
# rootfsctl-apply@.service, which must provision a machine from
# /etc/rootfsctl/<machine>.yaml (the stand's registry and mirror, on the
# loopback this container shares).

# --- 11. release build ------------------------------------------------------
if ! command -v rpm >/dev/null; then
  log "installing rpm (to list the .rpm's files)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rpm >/dev/null || die "apt-get install rpm failed"
fi
log "make release-snapshot (goreleaser, offline)"
t=$EPOCHREALTIME
if (cd "$REPO" && make -s release-snapshot >"$WORK/release.log" 2>&1); then
  ok "make release-snapshot in $(since "$t")s"
else
  bad "make release-snapshot" "$(tail -15 "$WORK/release.log")"
fi
DIST=$REPO/dist
check "checksums.txt covers every archive, SBOM and package" sh -c "cd '$DIST' && sha256sum -c --quiet checksums.txt && [ \$(wc -l <checksums.txt) -eq 8 ]"
for arch in amd64:X86-64 arm64:AArch64; do
  a=${arch%%:*}; machine=${arch#*:}
  dir=$(mktemp -d "$WORK/archive-$a.XXXX")
  tar -xzf "$DIST/rootfsctl_linux_$a.tar.gz" -C "$dir" 2>/dev/null
  hdr=$(readelf -h "$dir/rootfsctl" 2>&1); prog=$(readelf -l "$dir/rootfsctl" 2>&1)
  check_has "linux/$a binary is for $machine" "$hdr" "$machine"
  if printf '%s' "$prog" | grep -q INTERP; then bad "linux/$a binary is static" "it has a program interpreter"; else ok "linux/$a binary is static (no program interpreter)"; fi
  for f in README.md plans/kube-node.yaml plans/hello.yaml machine.example.yaml completions/rootfsctl.bash man/rootfsctl-apply.1.gz systemd/rootfsctl-apply@.service; do
    [ -f "$dir/$f" ] || bad "linux/$a archive has $f"
  done
  sbom=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["bomFormat"], d["specVersion"], " ".join(c.get("name","") for c in d.get("components",[])))' "$DIST/rootfsctl_linux_$a.cdx.json" 2>&1)
  check_has "linux/$a SBOM is CycloneDX" "$sbom" "CycloneDX"
  check_has "linux/$a SBOM lists the modules linked in" "$sbom" "github.com/google/go-containerregistry"
  if [ "$a" = amd64 ]; then
    bomver=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metadata"]["component"]["version"])' "$DIST/rootfsctl_linux_$a.cdx.json" 2>&1)
    check_eq "the SBOM names the binary's version" "$bomver" "v$("$dir/rootfsctl" version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')"
  fi
done
DEB=$(ls "$DIST"/rootfsctl_*_amd64.deb 2>/dev/null | head -1)
RPM=$(ls "$DIST"/rootfsctl-*.x86_64.rpm 2>/dev/null | head -1)
debfiles=$(dpkg-deb -c "$DEB" 2>&1)
rpmfiles=$(rpm -qlp "$RPM" 2>&1)
for f in /usr/bin/rootfsctl /usr/share/rootfsctl/plans/kube-node.yaml /usr/share/man/man1/rootfsctl-apply.1.gz \
  /usr/share/bash-completion/completions/rootfsctl /usr/share/zsh/vendor-completions/_rootfsctl \
  /usr/share/fish/vendor_completions.d/rootfsctl.fish /usr/lib/systemd/system/rootfsctl-apply@.service \
  /usr/share/rootfsctl/machine.example.yaml; do
  check_has ".deb installs $f" "$debfiles" ".$f"
  check_has ".rpm installs $f" "$rpmfiles" "$f"
done

# --- 12. the .deb in a clean Debian rootfs -----------------------------------
log "installing the .deb into a fresh debootstrap rootfs"
HOSTROOT=$WORK/pkghost
mkdir -p "$HOSTROOT"
tar --numeric-owner -xf "$ROOTFS_TAR" -C "$HOSTROOT"
cp "$DEB" "$HOSTROOT/var/tmp/rootfsctl.deb" # nspawn mounts a tmpfs on /tmp
# stdout and stderr, without nspawn's harmless propagate notice
inroot() { systemd-nspawn -q -D "$HOSTROOT" --register=no --keep-unit --pipe "$@" </dev/null 2>&1 | grep -v 'nspawn/propagate'; }
out=$(inroot dpkg -i /var/tmp/rootfsctl.deb)
check_has "dpkg -i installs the package" "$out" "Setting up rootfsctl"
ver=$(inroot rootfsctl version)
check_has "rootfsctl version in the rootfs" "$ver" "$(cd "$REPO" && git rev-parse HEAD)"
out=$(inroot rootfsctl validate /usr/share/rootfsctl/plans/kube-node.yaml)
check_has "rootfsctl validate of the shipped plan" "$out" "valid: plan kube-node"
# --man=no: a minbase rootfs has no man-db; the page itself is checked above
out=$(inroot systemd-analyze verify --man=no rootfsctl-apply@node1.service)
check_eq "systemd-analyze verify rootfsctl-apply@node1.service finds nothing" "$out" ""
check "the man page the unit documents is installed" test -f "$HOSTROOT/usr/share/man/man1/rootfsctl-apply.1.gz"

# --- 13. rootfsctl-apply@.service started by systemd ---------------------------
log "booting that rootfs as a host: systemd starts rootfsctl-apply@rootfsctl-unit"
UNIT_MACHINE=rootfsctl-unit
mkdir -p "$HOSTROOT/etc/rootfsctl"
{
  echo "# written by test/e2e/release.sh: the stand's registry and mirror"
  for ((i = 1; i < ${#VARS[@]}; i += 2)); do
    kv=${VARS[i]}
    [ "${kv%%=*}" = machine ] || printf '%s: "%s"\n' "${kv%%=*}" "${kv#*=}"
  done
} >"$HOSTROOT/etc/rootfsctl/$UNIT_MACHINE.yaml"
# this "host" is itself a container: no kernel modules to bind, no
# systemd-nspawn package to check for
printf 'ROOTFSCTL_ARGS=--ignore-preflight-errors=all\n' >"$HOSTROOT/etc/rootfsctl/$UNIT_MACHINE.env"
mkdir -p "$HOSTROOT/lib/modules"
# What systemd says of the unit, where the test can read it: the console
# truncates unit names, and a failed apply must show its output.
mkdir -p "$HOSTROOT/etc/systemd/system/rootfsctl-apply@.service.d" "$HOSTROOT/var/log/journal"
cat >"$HOSTROOT/etc/systemd/system/rootfsctl-apply@.service.d/e2e.conf" <<'CONF'
[Service]
ExecStartPost=/bin/sh -c 'echo success >/var/tmp/rootfsctl-apply-%i.result'
ExecStopPost=/bin/sh -c 'echo "$SERVICE_RESULT $EXIT_CODE $EXIT_STATUS" >>/var/tmp/rootfsctl-apply-%i.result'
CONF
RESULT=$HOSTROOT/var/tmp/rootfsctl-apply-$UNIT_MACHINE.result
# systemd-container is not in this minbase host either: a stand-in
# systemd-nspawn@.service records that it was started, so the test sees
# whether the unit lets a machine start, and when
cat >"$HOSTROOT/etc/systemd/system/systemd-nspawn@.service" <<'UNIT'
[Unit]
Description=stand-in for systemd-nspawn@%i (records its start)
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'echo started >/var/tmp/nspawn-%i.started'
[Install]
WantedBy=machines.target
UNIT
# a second machine whose var file is missing: its apply must fail, and its
# machine must not start
out=$(inroot systemctl enable "systemd-nspawn@$UNIT_MACHINE.service" "systemd-nspawn@rootfsctl-novars.service" "rootfsctl-apply@rootfsctl-novars.service")
out=$(inroot systemctl enable "rootfsctl-apply@$UNIT_MACHINE.service")
check_has "systemctl enable follows the unit's [Install]" "$out" "systemd-nspawn@$UNIT_MACHINE.service.requires/rootfsctl-apply@$UNIT_MACHINE.service"
# machines.target comes with systemd-container, which this minbase host
# lacks: the host's copy stands in (the package enables it on real hosts)
cp /lib/systemd/system/machines.target "$HOSTROOT/lib/systemd/system/"
out=$(inroot systemctl enable machines.target)
check_has "machines.target is enabled" "$out" "multi-user.target.wants/machines.target"
t=$EPOCHREALTIME
systemd-nspawn --boot --register=no --keep-unit -D "$HOSTROOT" </dev/null >"$WORK/pkghost-boot.log" 2>&1 &
HOST_PID=$!
PIDS+=("$HOST_PID")
for _ in $(seq 1800); do
  [ -s "$RESULT" ] && [ -e "$HOSTROOT/var/tmp/nspawn-$UNIT_MACHINE.started" ] && break
  kill -0 "$HOST_PID" 2>/dev/null || break
  sleep 0.1
done
check_eq "systemd ran rootfsctl-apply@$UNIT_MACHINE.service to success (took $(since "$t")s)" "$(head -1 "$RESULT" 2>/dev/null)" success
check "then systemd-nspawn@$UNIT_MACHINE started" test -e "$HOSTROOT/var/tmp/nspawn-$UNIT_MACHINE.started"
sleep 1 # the other machine's jobs ran in the same boot transaction
check "without its var file, systemd-nspawn@rootfsctl-novars did not start" test ! -e "$HOSTROOT/var/tmp/nspawn-rootfsctl-novars.started"
kill -TERM "$HOST_PID" 2>/dev/null
for _ in $(seq 300); do kill -0 "$HOST_PID" 2>/dev/null || break; sleep 0.1; done
wait "$HOST_PID" 2>/dev/null
check_has "rootfsctl-apply@rootfsctl-novars failed its assertion" \
  "$(inroot journalctl --no-pager -o cat -u rootfsctl-apply@rootfsctl-novars.service)" "Assertion failed"
UNIT_DIR=$HOSTROOT/var/lib/machines/$UNIT_MACHINE
check "the unit provisioned the machine's rootfs" test -f "$UNIT_DIR/etc/os-release"
check "the unit installed kubelet" test -x "$UNIT_DIR/usr/local/bin/kubelet"
check "the unit wrote the nspawn settings" test -f "$HOSTROOT/etc/systemd/nspawn/$UNIT_MACHINE.nspawn"
if [ "$(head -1 "$RESULT" 2>/dev/null)" != success ]; then
  echo "   unit result: $(cat "$RESULT" 2>/dev/null)"
  inroot journalctl --no-pager -o cat -u "rootfsctl-apply@$UNIT_MACHINE.service" | tail -20
fi
# dpkg --purge takes everything but the operator's files away
out=$(inroot dpkg --purge rootfsctl)
check "dpkg --purge removes the binary" test ! -e "$HOSTROOT/usr/bin/rootfsctl"
check "dpkg --purge keeps the operator's machine file" test -f "$HOSTROOT/etc/rootfsctl/$UNIT_MACHINE.yaml"
rm -rf "$HOSTROOT"
