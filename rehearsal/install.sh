#!/usr/bin/env bash
# Installs what the VM rehearsal needs into a version-keyed cache outside the clone; every step is
# skipped when its cache entry exists (entries are built under *.partial and renamed when done,
# so an interrupted step is redone, never half-used).
#
#   rehearsal/install.sh [STEP...]          install (default: all steps), print TIMING lines
#   rehearsal/install.sh --check [STEP...]  exit 0 when every step is cached, else 1 (installs nothing)
#   rehearsal/install.sh env                print the cache paths as KEY=VALUE lines
#
# Steps: engine (Docker 26.1.5 + containerd 1.7.24 + compose 2.26.1, unpacked Debian trixie
# packages), sshd (Debian openssh-server + runc/tini/debootstrap/iptables from bookworm, system packages),
# pulumi (CLI v3.248.0 built from the Go module proxy, ≈ 5 CPU-min), base-image (debootstrap
# minbase + this machine's node, a tarball the rehearsal engine imports as node:20-bookworm-slim),
# pulumi-kubernetes (the provider plugin, ≈ 12 CPU-min and 4.6 GB peak; only the kube rehearsal
# asks for it).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"

ALL_STEPS=(sshd engine base-image pulumi)
NICE=${NICE:-nice -n 19}

cached() {
  case $1 in
    engine) [ -x "$ENGINE_ROOT/usr/sbin/dockerd" ] ;;
    sshd) [ -x /usr/sbin/sshd ] && command -v runc >/dev/null && [ -x /usr/bin/tini-static ] &&
      command -v debootstrap >/dev/null && command -v iptables >/dev/null ;;
    pulumi) [ -x "$PULUMI_DIR/bin/pulumi" ] ;;
    pulumi-kubernetes) [ -x "$PULUMI_K8S_DIR/bin/pulumi-resource-kubernetes" ] ;;
    base-image) [ -s "$BASE_IMAGE_TAR" ] ;;
    *) die "unknown step '$1' (expected: ${ALL_STEPS[*]})" 2 ;;
  esac
}

# ---- system packages (bookworm): sshd for the host, runc/tini for the engine, debootstrap ------
install_sshd() {
  local p pkgs=() guard=""
  # Only what is missing: naming an installed package would upgrade it as a side effect.
  for p in openssh-server runc tini debootstrap ca-certificates iptables; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || pkgs+=("$p")
  done
  [ ${#pkgs[@]} -gt 0 ] || return 0
  # Debian would start the system's own sshd on port 22 after installing it; a policy-rc.d that
  # answers 101 forbids that (one may already exist; only ours is removed again).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    guard=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$guard" && chmod 755 "$guard"
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" \
    >"$CACHE/apt-install.log" 2>&1 || {
    log "apt-get install failed; updating the package lists once"
    apt-get update -q >>"$CACHE/apt-install.log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" \
        >>"$CACHE/apt-install.log" 2>&1
  } || rc=$?
  [ -n "$guard" ] && rm -f "$guard"
  [ $rc = 0 ] || { tail -20 "$CACHE/apt-install.log" >&2; die "apt-get install ${pkgs[*]} failed"; }
}

# ---- Docker engine from trixie, unpacked (the machine stays bookworm) ----------------------------
# Picks the suite's version of each package and refuses it unless the upstream version is the
# pinned one, so the cache key cannot lie when trixie moves on.
install_engine() {
  local A=$CACHE/apt-$ENGINE_SUITE P=$ENGINE_DIR.partial
  rm -rf "$P" "$A/debs"
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/debs" "$P/root"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) $ENGINE_SUITE main" \
    >"$A/sources.list"
  local O=(-o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o Debug::NoLocking=1)
  apt-get "${O[@]}" update -q >"$A/update.log" 2>&1 || {
    tail -5 "$A/update.log" >&2
    die "apt-get update of the scratch $ENGINE_SUITE list failed"
  }
  local spec want pkg ver specs=()
  for spec in docker.io:$DOCKER_VERSION docker-cli:$DOCKER_VERSION \
    containerd:$CONTAINERD_VERSION docker-compose:$COMPOSE_VERSION; do
    pkg=${spec%%:*} want=${spec#*:}
    ver=$(apt-cache "${O[@]}" show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -1)
    [ -n "$ver" ] || die "$ENGINE_SUITE has no package $pkg"
    case ${ver#*:} in
      "$want"[+~-]*) ;;
      *) die "$ENGINE_SUITE's $pkg is $ver, not $want: update the pins in rehearsal/common.sh" ;;
    esac
    specs+=("$pkg=$ver")
  done
  (cd "$A/debs" && apt-get "${O[@]}" download "${specs[@]}" >"$A/download.log" 2>&1) || {
    tail -5 "$A/download.log" >&2
    die "apt-get download ${specs[*]} failed"
  }
  local f
  for f in "$A"/debs/*.deb; do
    dpkg-deb -x "$f" "$P/root"
    printf '%s=%s\n' "$(dpkg-deb -f "$f" Package)" "$(dpkg-deb -f "$f" Version)" >>"$P/versions.txt"
  done
  # trixie's docker-init points at its own tini-static (not unpacked): use bookworm's.
  ln -sf /usr/bin/tini-static "$P/root/usr/bin/docker-init"
  "$P/root/usr/sbin/dockerd" --version | grep -q "version $DOCKER_VERSION" ||
    die "unpacked dockerd is not $DOCKER_VERSION"
  "$P/root/usr/bin/containerd" --version | grep -q " $CONTAINERD_VERSION" ||
    die "unpacked containerd is not $CONTAINERD_VERSION"
  "$P/root/usr/libexec/docker/cli-plugins/docker-compose" version --short | grep -Eq "^v?$COMPOSE_VERSION([+~-]|$)" ||
    die "unpacked docker-compose is not $COMPOSE_VERSION"
  rm -rf "$A/debs"
  mv "$P" "$ENGINE_DIR"
}

# ---- Pulumi CLI from the Go module proxy -----------------------------------------------------------
# pkg/v3's own replace of atotto/clipboard is ignored in a dependency, so the scratch module repeats
# it; without the -X version the Automation API cannot parse `pulumi version`.
install_pulumi() {
  command -v go >/dev/null || die "go is not on PATH (needed to build the Pulumi CLI)"
  local W=$CACHE/pulumi-build-$PULUMI_VERSION P=$PULUMI_DIR.partial
  rm -rf "$P"
  mkdir -p "$W" "$P/bin"
  export GOMODCACHE=$GO_CACHE_DIR/mod GOCACHE=$GO_CACHE_DIR/build GOTOOLCHAIN=local
  export GOFLAGS="${GOFLAGS:-} -mod=mod"
  cat >"$W/go.mod" <<EOF
module inferbench.rehearsal/pulumicli

go 1.25

require (
	github.com/pulumi/pulumi/pkg/v3 $PULUMI_VERSION
	github.com/pulumi/pulumi/sdk/v3 $PULUMI_VERSION
)

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
EOF
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"\n' \
    >"$W/tools.go"
  (cd "$W" && $NICE go mod tidy >"$W/tidy.log" 2>&1) || {
    tail -20 "$W/tidy.log" >&2
    die "go mod tidy for pulumi $PULUMI_VERSION failed"
  }
  (cd "$W" && $NICE go build -trimpath \
    -ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
    -o "$P/bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi >"$W/build.log" 2>&1) || {
    tail -20 "$W/build.log" >&2
    die "go build of pulumi $PULUMI_VERSION failed"
  }
  "$P/bin/pulumi" version | grep -qx "$PULUMI_VERSION" || die "built pulumi does not report $PULUMI_VERSION"
  mv "$P" "$PULUMI_DIR"
}

# ---- Pulumi Kubernetes provider plugin from the Go module proxy -----------------------------------
# The provider module's `replace sdk/v4 => ../sdk` points into its monorepo and cannot travel, so it
# is dropped for a published sdk; main.go embeds two JSON files that upstream's `go generate` makes.
install_pulumi_kubernetes() {
  command -v go >/dev/null || die "go is not on PATH (needed to build the Kubernetes provider)"
  local W=$CACHE/pulumi-k8s-build-$PULUMI_K8S_VERSION P=$PULUMI_K8S_DIR.partial src
  rm -rf "$P" "$W"
  mkdir -p "$W" "$P/bin"
  export GOMODCACHE=$GO_CACHE_DIR/mod GOCACHE=$GO_CACHE_DIR/build GOTOOLCHAIN=local
  export GOFLAGS="${GOFLAGS:-} -mod=mod"
  (cd "$W" && go mod download "$PULUMI_K8S_MODULE@$PULUMI_K8S_PSEUDO") >"$W/download.log" 2>&1 || {
    tail -20 "$W/download.log" >&2
    die "go mod download $PULUMI_K8S_MODULE@$PULUMI_K8S_PSEUDO failed"
  }
  src=$GOMODCACHE/$PULUMI_K8S_MODULE@$PULUMI_K8S_PSEUDO
  cp -r "$src" "$W/provider" && chmod -R u+w "$W/provider"
  (cd "$W/provider" && go mod edit -dropreplace github.com/pulumi/pulumi-kubernetes/sdk/v4 \
    -require "github.com/pulumi/pulumi-kubernetes/sdk/v4@$PULUMI_K8S_SDK")
  (cd "$W/provider/cmd/pulumi-resource-kubernetes" && VERSION=$PULUMI_K8S_VERSION node -e '
    const fs = require("fs");
    const s = JSON.parse(fs.readFileSync("schema.json")); s.version = process.env.VERSION;
    fs.writeFileSync("schema-embed.json", JSON.stringify(s));
    fs.writeFileSync("terraform-mapping-embed.json", JSON.stringify(JSON.parse(fs.readFileSync("terraform-mapping.json"))));')
  (cd "$W/provider" && $NICE go mod tidy >"$W/tidy.log" 2>&1) || {
    tail -20 "$W/tidy.log" >&2
    die "go mod tidy for the Kubernetes provider failed"
  }
  (cd "$W/provider" && $NICE go build -trimpath \
    -ldflags="-s -w -X $PULUMI_K8S_MODULE/pkg/version.Version=$PULUMI_K8S_VERSION" \
    -o "$P/bin/pulumi-resource-kubernetes" ./cmd/pulumi-resource-kubernetes >"$W/build.log" 2>&1) || {
    tail -20 "$W/build.log" >&2
    die "go build of pulumi-resource-kubernetes failed"
  }
  rm -rf "$W"
  mv "$P" "$PULUMI_K8S_DIR"
}

# ---- local base image: debootstrap minbase + this machine's node, as a tarball ---------------------
install_base_image() {
  command -v node >/dev/null || die "node is not on PATH (the base image carries this machine's node)"
  local P=$BASE_IMAGE_DIR.partial R
  R=$P/rootfs
  unmount_under "$P"
  rm -rf "$P"
  mkdir -p "$P"
  # debootstrap mounts /proc and /sys inside the target; a failed run must not leave them.
  trap 'unmount_under "$P"' EXIT
  $NICE debootstrap --variant=minbase "$BASE_SUITE" "$R" "$(debian_mirror)" >"$P/debootstrap.log" 2>&1 || {
    tail -20 "$P/debootstrap.log" >&2
    die "debootstrap $BASE_SUITE failed"
  }
  unmount_under "$P"
  rm -rf "$R/var/cache/apt/archives/"*.deb "$R/var/lib/apt/lists/"*
  local node prefix
  node=$(readlink -f "$(command -v node)")
  prefix=$(dirname "$(dirname "$node")")
  install -D -m 755 "$node" "$R/usr/local/bin/node"
  mkdir -p "$R/usr/local/lib/node_modules" "$R/usr/local/etc" "$R/etc/ssl/certs"
  cp -a "$prefix/lib/node_modules/npm" "$R/usr/local/lib/node_modules/"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$R/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$R/usr/local/bin/npx"
  # This network re-signs TLS: npm inside a rehearsal build must trust the machine's CA bundle.
  # Harness only: the published node image has neither file.
  cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/ca-certificates.crt"
  echo 'cafile=/etc/ssl/certs/ca-certificates.crt' >"$R/usr/local/etc/npmrc"
  # The official image's unprivileged user (the kit image runs as USER node).
  chroot "$R" groupadd --gid 1000 node
  chroot "$R" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  "$R/usr/local/bin/node" -v >/dev/null
  tar -C "$R" --numeric-owner -cf "$P/rootfs.tar.tmp" .
  rm -rf "$R"
  mv "$P/rootfs.tar.tmp" "$P/rootfs.tar"
  trap - EXIT
  mv "$P" "$BASE_IMAGE_DIR"
}

unmount_under() {
  [ -d "$1" ] || return 0
  awk -v r="$1/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
}

print_env() {
  cat <<EOF
CACHE=$CACHE
ENGINE_ROOT=$ENGINE_ROOT
DOCKER_VERSION=$DOCKER_VERSION
COMPOSE_VERSION=$COMPOSE_VERSION
PULUMI_BIN=$PULUMI_DIR/bin/pulumi
PULUMI_VERSION=$PULUMI_VERSION
PULUMI_K8S_BIN_DIR=$PULUMI_K8S_DIR/bin
BASE_IMAGE_TAR=$BASE_IMAGE_TAR
BASE_IMAGE_TAGS=${BASE_IMAGE_TAGS[*]}
EOF
}

main() {
  local check=0
  case ${1:-} in
    env) print_env; return ;;
    --check) check=1; shift ;;
    -h | --help) sed -n '2,14p' "$0"; return ;;
  esac
  local steps=("$@")
  [ ${#steps[@]} -gt 0 ] || steps=("${ALL_STEPS[@]}")
  local s missing=()
  for s in "${steps[@]}"; do cached "$s" || missing+=("$s"); done
  if [ $check = 1 ]; then
    [ ${#missing[@]} = 0 ] && return 0
    echo "not cached under $CACHE: ${missing[*]} (run rehearsal/install.sh)"
    return 1
  fi
  [ "$(id -u)" = 0 ] || die "needs root (apt-get, dpkg-deb -x of setuid-free binaries, debootstrap)" 2
  mkdir -p "$CACHE"
  local t0 t
  t0=$(now_ms)
  for s in "${steps[@]}"; do
    t=$(now_ms)
    if cached "$s"; then
      timing "$s" "$t" cached
      continue
    fi
    log "install: $s"
    "install_${s//-/_}"
    cached "$s" || die "step $s finished but its cache entry is missing"
    timing "$s" "$t" installed
  done
  timing total "$t0" done
}

# On one line: bash reads a script as it runs, so an edit made meanwhile cannot run half-read.
main "$@"; exit $?
