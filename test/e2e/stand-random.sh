# Sourced by bench.sh after stand.sh: the second benchmark shape. The image
# is served by go-containerregistry's registry (e2etool registry) as a single
# gzip layer of the debootstrap rootfs; the artifacts are ten incompressible
# files of 12 MiB (and CNI's loopback, 1 MiB) in the upstream layouts, from a second loopback mirror.
# Sets REG2, MIR2 and VARS2 (the --var overrides of plans/kube-node.yaml).
log "starting go-containerregistry's registry on loopback"
"$E" registry --port-file "$WORK/registry2.port" >"$WORK/registry2.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/registry2.port" ] && break; sleep 0.05; done
REG2=$(cat "$WORK/registry2.port")
t=$EPOCHREALTIME
for shape in "1 gzip" "8 gzip" "8 zstd"; do
  set -- $shape
  "$E" push-layers --rootfs "$ROOTFS_TAR" --keep "$CACHE" --layers "$1" --compression "$2" --ref "$REG2/bench/node:$1-$2" >/dev/null \
    || die "push of the $1-layer $2 image failed"
done
echo "   pushed 1-layer gzip, 8-layer gzip and 8-layer zstd images in $(since "$t") s"

log "building the mirror of incompressible artifacts"
M2=$WORK/mirror2
rnd() { mkdir -p "$(dirname "$1")"; head -c "${2:-12582912}" /dev/urandom >"$1"; chmod 0755 "$1"; }
for b in kubectl kubelet kube-proxy; do
  f=$M2/kube/v$KUBE/bin/linux/amd64/$b; rnd "$f"
  sha256sum "$f" | cut -d' ' -f1 >"$f.sha256"
done
s=$WORK/r-crictl; rnd "$s/crictl"; mkdir -p "$M2/cri-tools/v$CRICTL"
tar -C "$s" -czf "$M2/cri-tools/v$CRICTL/crictl-v$CRICTL-linux-amd64.tar.gz" crictl
(cd "$M2/cri-tools/v$CRICTL" && sha256sum "crictl-v$CRICTL-linux-amd64.tar.gz" >"crictl-v$CRICTL-linux-amd64.tar.gz.sha256")
s=$WORK/r-ctd; for b in containerd ctr containerd-shim-runc-v2; do rnd "$s/bin/$b"; done; mkdir -p "$M2/containerd/v$CTD"
tar -C "$s" -czf "$M2/containerd/v$CTD/containerd-$CTD-linux-amd64.tar.gz" bin
(cd "$M2/containerd/v$CTD" && sha256sum "containerd-$CTD-linux-amd64.tar.gz" >"containerd-$CTD-linux-amd64.tar.gz.sha256sum")
rnd "$M2/runc/v$RUNC/runc.amd64"
(cd "$M2/runc/v$RUNC" && sha256sum runc.amd64 >runc.sha256sum)
s=$WORK/r-cni; for b in bridge host-local; do rnd "$s/$b"; done; rnd "$s/loopback" 1048576; mkdir -p "$M2/cni/v$CNI"
tar -C "$s" -czf "$M2/cni/v$CNI/cni-plugins-linux-amd64-v$CNI.tgz" .
(cd "$M2/cni/v$CNI" && sha256sum "cni-plugins-linux-amd64-v$CNI.tgz" >"cni-plugins-linux-amd64-v$CNI.tgz.sha256")
"$E" serve --dir "$M2" --port-file "$WORK/mirror2.port" >"$WORK/mirror2.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/mirror2.port" ] && break; sleep 0.05; done
MIR2=http://127.0.0.1:$(cat "$WORK/mirror2.port")
echo "   mirror: $(du -sh "$M2" | cut -f1)"
VARS2=(--var "image=$REG2/bench/node:1-gzip" --var arch=amd64
  --var "kubeVersion=$KUBE" --var "crictlVersion=$CRICTL" --var "containerdVersion=$CTD"
  --var "runcVersion=$RUNC" --var "cniVersion=$CNI"
  --var "kubeBaseURL=$MIR2/kube" --var "crictlBaseURL=$MIR2/cri-tools" --var "containerdBaseURL=$MIR2/containerd"
  --var "runcBaseURL=$MIR2/runc" --var "cniBaseURL=$MIR2/cni")
