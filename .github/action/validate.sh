#!/usr/bin/env bash
# The GitHub Action's body (action.yml): install rootfsctl, then validate the
# plans with --format github so that problems become annotations. Reads the
# inputs from ROOTFSCTL_* and the runner's GITHUB_ACTION_PATH, GITHUB_WORKSPACE,
# RUNNER_TEMP, RUNNER_OS, RUNNER_ARCH, GITHUB_PATH and GITHUB_OUTPUT. Runs the
# same way on a workstation with those set by hand (test/ci does).
set -euo pipefail

die() { echo "::error title=rootfsctl action::$*"; exit 2; }

: "${GITHUB_ACTION_PATH:?not set: run me from action.yml or set it to the checkout of the action}"
: "${RUNNER_TEMP:?not set}"
version=${ROOTFSCTL_VERSION:-latest}
release_url=${ROOTFSCTL_RELEASE_URL%/}
cd "${GITHUB_WORKSPACE:-.}"

# --- install ---------------------------------------------------------------
bindir="$RUNNER_TEMP/rootfsctl-bin"
mkdir -p "$bindir"
if [ "$version" = source ]; then
  command -v go >/dev/null || die "version: source needs Go on the runner (actions/setup-go)"
  (cd "$GITHUB_ACTION_PATH" && CGO_ENABLED=0 go build -trimpath -o "$bindir/rootfsctl" ./cmd/rootfsctl) ||
    die "could not build rootfsctl from $GITHUB_ACTION_PATH"
else
  [ "${RUNNER_OS:-Linux}" = Linux ] || die "rootfsctl releases are built for Linux; this runner is ${RUNNER_OS}"
  case "${RUNNER_ARCH:-$(uname -m)}" in
    X64 | x86_64 | amd64) arch=amd64 ;;
    ARM64 | aarch64 | arm64) arch=arm64 ;;
    *) die "no rootfsctl release for runner architecture ${RUNNER_ARCH:-$(uname -m)}" ;;
  esac
  if [ "$version" = latest ]; then
    base="$release_url/latest/download"
  elif [[ "$version" =~ ^v[0-9]+(\.[0-9]+){0,2}([-+][0-9A-Za-z.-]+)?$ ]] && [[ "$version" != *..* ]]; then
    base="$release_url/download/$version"
  else
    die "version: \"$version\": use latest, a tag such as v1.2.0, or source"
  fi
  archive="rootfsctl_linux_${arch}.tar.gz"
  dl="$RUNNER_TEMP/rootfsctl-dl"
  mkdir -p "$dl"
  for f in "$archive" checksums.txt; do
    curl -fsSL --retry 3 --connect-timeout 10 --max-time 300 --max-filesize 268435456 -o "$dl/$f" "$base/$f" ||
      die "download $base/$f failed"
  done
  want=$(tr -d '\r' <"$dl/checksums.txt" | awk -v f="$archive" '$2 == f || $2 == "*" f { print $1 }' | sort -u)
  [ -n "$want" ] || die "checksums.txt of $version does not list $archive"
  [ "$(printf '%s\n' "$want" | wc -l)" = 1 ] || die "checksums.txt of $version lists $archive with different sums; not using it"
  got=$(sha256sum "$dl/$archive" | cut -d' ' -f1)
  [ "$got" = "$want" ] || die "$archive: sha256 $got, but checksums.txt says $want; not using it"
  # into a fresh directory, and only a regular file: a link in the archive
  # must not point the install (or chmod) anywhere else
  unpack="$dl/unpack"
  rm -rf "$unpack" && mkdir -p "$unpack"
  tar -xzf "$dl/$archive" -C "$unpack" --no-same-owner rootfsctl 2>/dev/null || die "$archive has no rootfsctl binary"
  [ -f "$unpack/rootfsctl" ] && [ ! -L "$unpack/rootfsctl" ] || die "$archive: rootfsctl is not a regular file; not using it"
  rm -f "$bindir/rootfsctl"
  mv "$unpack/rootfsctl" "$bindir/rootfsctl"
fi
chmod +x "$bindir/rootfsctl"
line=$("$bindir/rootfsctl" version 2>&1 | head -1) || die "the rootfsctl from $version does not run here: $line"
echo "$line"
[ -z "${GITHUB_PATH:-}" ] || echo "$bindir" >>"$GITHUB_PATH"

# --- validate --------------------------------------------------------------
shopt -s globstar nullglob
files=()
read -r -d '' -a patterns <<<"${ROOTFSCTL_PLANS:-plans/*.yaml}" || true
for p in "${patterns[@]}"; do
  case "$p" in -*) die "plans: \"$p\" is not a file or glob (it would be read as a flag)" ;; esac
  # unquoted on purpose: each pattern is a glob
  # shellcheck disable=SC2206
  matched=($p)
  [ "${#matched[@]}" -gt 0 ] || die "plans: \"$p\" matches no file"
  files+=("${matched[@]}")
done
[ "${#files[@]}" -gt 0 ] || die "plans: no pattern given"
# one NAME=VALUE per line: a value may hold spaces
args=()
while IFS= read -r v; do
  v=${v%$'\r'}
  [ -n "${v//[[:space:]]/}" ] && args+=(--var "$v")
done <<<"${ROOTFSCTL_VARS:-}"

rc=0
err="$RUNNER_TEMP/rootfsctl-validate.err"
"$bindir/rootfsctl" --log-format console validate --format github "${args[@]}" -- "${files[@]}" 2>"$err" || rc=$?
cat "$err" >&2
if [ "$rc" != 0 ] && [ "$rc" != 1 ]; then
  # not a verdict on the plans: a bad input (a --var), say so where it shows
  die "rootfsctl validate exited $rc: $(tail -1 "$err")"
fi
if [ -n "${ROOTFSCTL_SARIF:-}" ]; then
  : >"$ROOTFSCTL_SARIF" 2>/dev/null || die "sarif-file: cannot write $ROOTFSCTL_SARIF"
  "$bindir/rootfsctl" validate --format sarif "${args[@]}" -- "${files[@]}" >"$ROOTFSCTL_SARIF" 2>/dev/null || true
fi
problems=$("$bindir/rootfsctl" validate --format json "${args[@]}" -- "${files[@]}" 2>/dev/null | grep -c '"message"' || true)
[ -z "${GITHUB_OUTPUT:-}" ] || echo "problems=$problems" >>"$GITHUB_OUTPUT"
if [ "$rc" = 0 ]; then
  echo "rootfsctl: ${#files[@]} plan(s) valid"
fi
exit "$rc"
