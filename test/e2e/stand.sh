# Sourced by run.sh and bench.sh: installs what they need, builds the
# debootstrap rootfs (cached), starts docker-registry and the artifact mirror
# on loopback, and sets REG, MIR, E (e2etool), R (rootfsctl, with a cache in
# $WORK/cache), PLAN and VARS (the --var overrides of plans/kube-node.yaml).
# Needs root. The caller defines CACHE, WORK and MACHINE, sources lib.sh
# first, and has a cleanup that runs on exit.
# --- 1. what we need from Debian -------------------------------------------
log "installing what the test needs"
need=()
for p in docker-registry debootstrap systemd-container busybox-static curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ] || ! apt-cache policy containerd | grep -q 'Candidate: [0-9]'; then
  apt-get update -qq || die "apt-get update failed"
fi
if [ "${#need[@]}" -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
fi
mkdir -p "$CACHE/debs"
for p in containerd runc containernetworking-plugins kubernetes-client; do
  ls "$CACHE/debs/${p}_"*.deb >/dev/null 2>&1 || (cd "$CACHE/debs" && apt-get download -qq "$p") || die "apt-get download $p failed"
done
if [ ! -d /lib/modules ]; then
  # The generated .nspawn binds /lib/modules read-only, as on every real
  # host; this VM has no kernel modules directory, and nspawn refuses a
  # missing bind source.
  mkdir -p /lib/modules
fi

log "building rootfsctl"
(cd "$REPO" && go build -o "$WORK/rootfsctl" ./cmd/rootfsctl && go build -o "$WORK/e2etool" ./test/e2e/e2etool) || die "go build failed"
# A cache of its own, so the cold apply is really cold.
rootfsctl() { "$WORK/rootfsctl" --cache-dir "$WORK/cache" --log-format json "$@"; }
R=rootfsctl
E=$WORK/e2etool

# --- 2. a bootable Debian rootfs (cached by its inputs) ---------------------
MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$MIRROR" ] || die "cannot find the Debian mirror in the apt sources"
INCLUDE=systemd-sysv,dbus,passwd
KEY=$(printf 'bookworm minbase %s v1' "$INCLUDE" | sha256sum | cut -c1-16)
ROOTFS_TAR=$CACHE/bookworm-$KEY.tar
if [ ! -f "$ROOTFS_TAR" ]; then
  log "debootstrap bookworm (cached afterwards in $CACHE)"
  t=$EPOCHREALTIME
  debootstrap --variant=minbase --include="$INCLUDE" bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; die "debootstrap failed"; }
  tar --numeric-owner --xattrs --xattrs-include='*' -C "$WORK/rootfs" -cf "$ROOTFS_TAR.tmp" . || die "tar of the rootfs failed"
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf "$WORK/rootfs"
  echo "   debootstrap took $(since "$t") s"
fi

# --- 3. the registry, and the image as a two-platform index -----------------
log "starting docker-registry on loopback"
REG=$(start_registry upstream) || die "docker-registry did not start: $(tail -5 "$WORK/registry-upstream.log")"
t=$EPOCHREALTIME
"$E" push-image --rootfs "$ROOTFS_TAR" --ref "$REG/e2e/node:v1" >"$WORK/push.txt" || die "push failed"
echo "   pushed in $(since "$t") s: $(tr '\n' ' ' <"$WORK/push.txt")"

# --- 4. the artifact mirror from Debian's binaries --------------------------
log "building the upstream-layout mirror"
X=$WORK/debs; M=$WORK/mirror
for d in "$CACHE"/debs/*.deb; do dpkg-deb -x "$d" "$X"; done
standin() { printf '#!/bin/sh\n# stand-in: Debian ships no %s\necho "%s"\n' "$1" "$2" >"$3"; chmod 0755 "$3"; }
mk() { mkdir -p "$(dirname "$1")"; }
# kubectl is real; kubelet and kube-proxy are stand-ins with the real version line.
for b in kubectl kubelet kube-proxy; do
  f=$M/kube/v$KUBE/bin/linux/amd64/$b; mk "$f"
  if [ "$b" = kubectl ]; then cp "$X/usr/bin/kubectl" "$f"; else standin "$b" "Kubernetes v$KUBE" "$f"; fi
  sha256sum "$f" | cut -d' ' -f1 >"$f.sha256"
done
mkdir -p "$WORK/crictl" "$M/cri-tools/v$CRICTL"
standin crictl "crictl version v$CRICTL" "$WORK/crictl/crictl"
tar -C "$WORK/crictl" -czf "$M/cri-tools/v$CRICTL/crictl-v$CRICTL-linux-amd64.tar.gz" crictl
(cd "$M/cri-tools/v$CRICTL" && sha256sum "crictl-v$CRICTL-linux-amd64.tar.gz" >"crictl-v$CRICTL-linux-amd64.tar.gz.sha256")
for v in "$CTD" "$CTD2"; do
  s=$WORK/ctd-$v; mkdir -p "$s/bin" "$M/containerd/v$v"
  cp "$X/usr/bin/containerd" "$X/usr/bin/ctr" "$X/usr/bin/containerd-shim-runc-v2" "$s/bin/"
  [ "$v" = "$CTD2" ] && standin containerd-stress "containerd-stress v$v" "$s/bin/containerd-stress"
  tar -C "$s" -czf "$M/containerd/v$v/containerd-$v-linux-amd64.tar.gz" bin
  (cd "$M/containerd/v$v" && sha256sum "containerd-$v-linux-amd64.tar.gz" >"containerd-$v-linux-amd64.tar.gz.sha256sum")
done
mkdir -p "$M/runc/v$RUNC" "$M/runc/v$RUNC_BAD"
cp "$X/usr/sbin/runc" "$M/runc/v$RUNC/runc.amd64"
(cd "$M/runc/v$RUNC" && sha256sum runc.amd64 >runc.sha256sum && echo "$(sha256sum runc.amd64 | cut -d' ' -f1)  runc.arm64" >>runc.sha256sum)
# A corrupted release: the binary on the mirror is not the one its published
# checksum describes (that of a runc build nothing has cached yet).
{ cat "$X/usr/sbin/runc"; printf 'release build'; } | sha256sum | sed 's/ .*/  runc.amd64/' >"$M/runc/v$RUNC_BAD/runc.sha256sum"
printf 'tampered' >"$M/runc/v$RUNC_BAD/runc.amd64"
mkdir -p "$WORK/cni" "$M/cni/v$CNI"
cp "$X"/usr/lib/cni/* "$WORK/cni/"
cp "$X/usr/share/doc/containernetworking-plugins/copyright" "$WORK/cni/LICENSE"
chmod 0644 "$WORK/cni/LICENSE"
tar -C "$WORK/cni" -czf "$M/cni/v$CNI/cni-plugins-linux-amd64-v$CNI.tgz" .
(cd "$M/cni/v$CNI" && sha256sum "cni-plugins-linux-amd64-v$CNI.tgz" >"cni-plugins-linux-amd64-v$CNI.tgz.sha256")
"$E" serve --dir "$M" --port-file "$WORK/mirror.port" --log "$WORK/mirror-requests.log" >"$WORK/mirror.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/mirror.port" ] && break; sleep 0.05; done
MIR=http://127.0.0.1:$(cat "$WORK/mirror.port")
check "mirror answers ranged requests (206)" sh -c "curl -s -o /dev/null -w '%{http_code}' -r 0-0 $MIR/runc/v$RUNC/runc.amd64 | grep -qx 206"
echo "   mirror: $(du -sh "$M" | cut -f1)"

PLAN=plans/kube-node.yaml
VARS=(--var "machine=$MACHINE" --var "image=$REG/e2e/node:v1" --var arch=amd64
  --var "kubeVersion=$KUBE" --var "crictlVersion=$CRICTL" --var "containerdVersion=$CTD"
  --var "runcVersion=$RUNC" --var "cniVersion=$CNI"
  --var "kubeBaseURL=$MIR/kube" --var "crictlBaseURL=$MIR/cri-tools" --var "containerdBaseURL=$MIR/containerd"
  --var "runcBaseURL=$MIR/runc" --var "cniBaseURL=$MIR/cni")
