# shellcheck shell=bash
# Shared by install.sh and vm-host.sh: versions, cache layout, logging. Sourced, never run.
#
# Everything heavy lives in a cache OUTSIDE the clone, keyed by version, so a new clone or a
# `git clean` never rebuilds it: ${INFERBENCH_CACHE:-$HOME/.cache/inferbench}.

DOCKER_VERSION=26.1.5
CONTAINERD_VERSION=1.7.24
COMPOSE_VERSION=2.26.1
PULUMI_VERSION=v3.248.0
# Debian suite the engine packages come from; the machine itself stays on bookworm. trixie is the
# first suite with an engine >= 25 (compose refuses healthcheck.start_interval on older engines).
ENGINE_SUITE=trixie
BASE_SUITE=bookworm

CACHE=${INFERBENCH_CACHE:-$HOME/.cache/inferbench}
ENGINE_DIR=$CACHE/docker-engine-$DOCKER_VERSION-containerd-$CONTAINERD_VERSION-compose-$COMPOSE_VERSION
ENGINE_ROOT=$ENGINE_DIR/root
PULUMI_DIR=$CACHE/pulumi-$PULUMI_VERSION
# The Kubernetes provider plugin @pulumi/kubernetes asks for (package.json "pulumi".version), built
# from the provider module's pseudo-version that the Go proxy serves for it, against a published sdk.
PULUMI_K8S_VERSION=4.34.2
PULUMI_K8S_MODULE=github.com/pulumi/pulumi-kubernetes/provider/v4
PULUMI_K8S_PSEUDO=v4.0.0-20260115033456-f47bc2d6f199
PULUMI_K8S_SDK=v4.24.0
PULUMI_K8S_DIR=$CACHE/pulumi-resource-kubernetes-$PULUMI_K8S_VERSION
GO_CACHE_DIR=$CACHE/go

# The base image carries this machine's node binary and CA bundle, so its key names both.
base_image_key() {
  local ca=none
  [ -r /etc/ssl/certs/ca-certificates.crt ] &&
    ca=$(sha256sum /etc/ssl/certs/ca-certificates.crt | cut -c1-12)
  echo "node$(node -v 2>/dev/null || echo -missing)-$BASE_SUITE-ca$ca"
}
BASE_IMAGE_DIR=$CACHE/base-image-$(base_image_key)
BASE_IMAGE_TAR=$BASE_IMAGE_DIR/rootfs.tar
# The kit's Dockerfiles say FROM node:20-bookworm-slim; the local image takes that tag too, so
# they build unchanged on the rehearsal engine (no registry is reachable).
BASE_IMAGE_TAGS=(node:20-bookworm-slim inferbench/base:node20)

# The rehearsal host's login user: not root, own uid/gid, docker access through a group.
REHEARSAL_USER=${REHEARSAL_USER:-rehearsal}
REHEARSAL_UID=${REHEARSAL_UID:-1500}
REHEARSAL_DOCKER_GROUP=${REHEARSAL_DOCKER_GROUP:-rehearsal-docker}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
  printf '%s: %s\n' "$(basename "$0")" "$*" >&2
  exit "${2:-1}"
}
now_ms() { date +%s%3N; }
# `timing STEP START_MS STATUS` prints one machine-readable line that rehearse-vm.ts collects.
timing() {
  local ms=$(($(now_ms) - $2))
  printf 'TIMING %s %d.%03d %s\n' "$1" $((ms / 1000)) $((ms % 1000)) "$3"
}

# The machine's configured Debian mirror (never written into the project), from either sources
# format; security mirrors are skipped since they carry no full suites.
debian_mirror() {
  local u
  u=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
    grep -v security | grep -oE 'https?://[^ ]+/debian/?' | head -1) || true
  [ -n "$u" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d/*.sources}"
  echo "${u%/}"
}
