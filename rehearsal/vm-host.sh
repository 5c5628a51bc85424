#!/usr/bin/env bash
# A rehearsal "VM" on this machine: a network namespace with its own address on a veth pair, a
# real OpenSSH sshd (key-only login for an unprivileged user) and a real dockerd inside it. The
# filesystem is shared with the machine; only the network is isolated (no default route, so the
# namespace reaches nothing but the machine's end of the veth).
#
#   rehearsal/vm-host.sh up NAME [--host-key FILE] [--authorized-key FILE] [--base-image]
#   rehearsal/vm-host.sh down NAME      stop everything by pid, remove mounts, netns, veth, files
#   rehearsal/vm-host.sh status NAME    exit 0 up, 3 down, 1 partly up
#
# `up` prints KEY=VALUE lines (HOST, PORT, USERNAME, HOST_PUBLIC_KEY_FILE, CLIENT_KEY_FILE when it
# generated the login key, DOCKER_HOST, WORK_DIR, GATEWAY, STATE_DIR). Without --host-key /
# --authorized-key it generates both keys with ssh-keygen. --base-image imports the cached base
# image (rehearsal/install.sh base-image) as node:20-bookworm-slim.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"

STATE_ROOT=${INFERBENCH_REHEARSAL_STATE:-/var/lib/inferbench-rehearsal}
# Private /30s in 10.231.0.0/16, one per host: .1 the machine's end, .2 the namespace's.
NET_PREFIX=10.231

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

set_names() {
  NAME=$1
  [[ $NAME =~ ^[a-z][a-z0-9-]{0,11}$ ]] ||
    die "host name '$NAME': 1-12 characters, lower-case letters, digits and '-', starting with a letter" 2
  S=$STATE_ROOT/$NAME
  NETNS=/run/netns/$NAME
  VETH=rh-$NAME        # the machine's end (interface names are at most 15 characters)
  VPEER=rp-$NAME       # the namespace's end, renamed eth0 inside
  CGROUP_PARENT=/inferbench-rehearsal-$NAME
}

in_ns() { nsenter --net="$NETNS" -- "$@"; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { [ -s "$1" ] && tr -dc 0-9 <"$1" || true; }

# A /30 whose addresses no route or address of the machine covers. Runs under the state lock, so
# two `up`s cannot pick the same one.
pick_subnet() {
  local n net
  for n in $(seq 0 255); do
    net=$NET_PREFIX.$n.0/30
    if [ -z "$(ip -4 route show table all root "$net")" ] &&
      [ -z "$(ip -4 route show table all match "$net" | grep -v '^default')" ] &&
      ! ip -4 -o addr show | grep -q " $NET_PREFIX\.$n\."; then
      echo "$n"
      return
    fi
  done
  die "no free /30 left in $NET_PREFIX.0.0/16"
}

# One lock for every clone on the machine (state root and subnets are machine-wide): the state
# root's parent directory itself, so no lock file is left behind.
lock_state() {
  mkdir -p "$(dirname "$STATE_ROOT")"
  exec 9<"$(dirname "$STATE_ROOT")"
  flock 9
}

# System paths the harness may have to create (none exist on a fresh machine); recorded so the
# last `down` removes exactly those.
note_created() { grep -qxF "$1" "$STATE_ROOT/created" 2>/dev/null || echo "$1" >>"$STATE_ROOT/created"; }

ensure_user() {
  getent group "$REHEARSAL_DOCKER_GROUP" >/dev/null || groupadd --system "$REHEARSAL_DOCKER_GROUP"
  if ! getent passwd "$REHEARSAL_USER" >/dev/null; then
    getent group "$REHEARSAL_USER" >/dev/null || groupadd --gid "$REHEARSAL_UID" "$REHEARSAL_USER"
    useradd --uid "$REHEARSAL_UID" --gid "$REHEARSAL_USER" --groups "$REHEARSAL_DOCKER_GROUP" \
      --create-home --shell /bin/bash "$REHEARSAL_USER"
  fi
  [ "$(id -u "$REHEARSAL_USER")" != 0 ] || die "user $REHEARSAL_USER has uid 0"
  id -nG "$REHEARSAL_USER" | tr ' ' '\n' | grep -qx "$REHEARSAL_DOCKER_GROUP" ||
    usermod -aG "$REHEARSAL_DOCKER_GROUP" "$REHEARSAL_USER"
  # With UsePAM no, sshd refuses accounts whose password field is locked ('!'); '*' has no
  # password and is not locked.
  [ "$(getent shadow "$REHEARSAL_USER" | cut -d: -f2)" = "*" ] || usermod -p '*' "$REHEARSAL_USER"
  getent passwd sshd >/dev/null || die "no 'sshd' privilege-separation user: run rehearsal/install.sh sshd"
}

write_sshd_config() {
  local addr=$1 ssh=$S/ssh
  cat >"$ssh/sshd_config" <<EOF
# rehearsal host $NAME: key-only login for $REHEARSAL_USER, on the namespace's address only
Port 22
ListenAddress $addr
AddressFamily inet
HostKey $ssh/host_key
PidFile $S/sshd.pid
AuthorizedKeysFile $ssh/authorized_keys
AllowUsers $REHEARSAL_USER
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes yes
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
Subsystem sftp internal-sftp
# What a provisioned VM has on PATH and as its default engine.
SetEnv PATH=$S/client-bin:/usr/local/bin:/usr/bin:/bin DOCKER_HOST=unix://$S/docker.sock DOCKER_CONFIG=$S/docker-config
EOF
}

# The docker CLI and compose plugin must be usable by the login user, who cannot read the cache
# under root's home: hard links (copies across filesystems) under the host's own directory.
install_client() {
  mkdir -p "$S/client-bin" "$S/docker-config/cli-plugins"
  cp -l "$ENGINE_ROOT/usr/bin/docker" "$S/client-bin/docker" 2>/dev/null ||
    cp "$ENGINE_ROOT/usr/bin/docker" "$S/client-bin/docker"
  cp -l "$ENGINE_ROOT/usr/libexec/docker/cli-plugins/docker-compose" "$S/docker-config/cli-plugins/" 2>/dev/null ||
    cp "$ENGINE_ROOT/usr/libexec/docker/cli-plugins/docker-compose" "$S/docker-config/cli-plugins/"
  chown -R "$REHEARSAL_USER:" "$S/docker-config"
}

start_sshd() {
  local addr=$1 host_key=$2 authorized_key=$3
  mkdir -p "$S/ssh"
  if [ -n "$host_key" ]; then
    install -m 600 "$host_key" "$S/ssh/host_key"
    ssh-keygen -y -f "$S/ssh/host_key" >"$S/ssh/host_key.pub"
  else
    ssh-keygen -q -t ed25519 -N '' -C "rehearsal-host-$NAME" -f "$S/ssh/host_key"
  fi
  if [ -n "$authorized_key" ]; then
    install -m 644 "$authorized_key" "$S/ssh/authorized_keys"
  else
    ssh-keygen -q -t ed25519 -N '' -C "rehearsal-client-$NAME" -f "$S/client_key"
    install -m 644 "$S/client_key.pub" "$S/ssh/authorized_keys"
  fi
  if [ ! -d /run/sshd ]; then
    mkdir -m 755 /run/sshd
    note_created /run/sshd
  fi
  write_sshd_config "$addr"
  /usr/sbin/sshd -t -f "$S/ssh/sshd_config" || die "sshd rejects $S/ssh/sshd_config"
  in_ns /usr/sbin/sshd -f "$S/ssh/sshd_config" -E "$S/sshd.log"
}

start_dockerd() {
  mkdir -p "$S/docker" "$S/exec" "$S/hook-bin"
  # dockerd registers the `nvidia` device driver when this hook is on its PATH, so compose files
  # reserving GPUs are accepted; the stand-in exposes no device.
  printf '#!/bin/sh\ncat >/dev/null\nexit 0\n' >"$S/hook-bin/nvidia-container-runtime-hook"
  chmod 755 "$S/hook-bin/nvidia-container-runtime-hook"
  echo '{}' >"$S/daemon.json" # never the machine's /etc/docker/daemon.json
  # dockerd makes /run/docker/plugins, containerd's shims /run/containerd/s, whatever the roots.
  [ -d /run/containerd ] || note_created /run/containerd
  [ -d /run/docker ] || note_created /run/docker
  # nsenter --net only: `ip netns exec` would also remount /sys, hiding the cgroup mounts.
  # --iptables=true edits only the namespace's own tables (a netns has its own): Docker's embedded
  # DNS (127.0.0.11, how the router finds engines by service name) needs its rules in each
  # container; with --iptables=false names do not resolve (EAI_AGAIN). No masquerading: the
  # namespace has no route out anyway.
  nsenter --net="$NETNS" -- setsid env -i \
    PATH="$S/hook-bin:$ENGINE_ROOT/usr/sbin:$ENGINE_ROOT/usr/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "$ENGINE_ROOT/usr/sbin/dockerd" --config-file "$S/daemon.json" \
    --data-root "$S/docker" --exec-root "$S/exec" --pidfile "$S/dockerd.pid" \
    -H "unix://$S/docker.sock" --group "$REHEARSAL_DOCKER_GROUP" \
    --storage-driver overlay2 --iptables=true --ip-masq=false --cgroup-parent "$CGROUP_PARENT" \
    --shutdown-timeout 10 >"$S/dockerd.log" 2>&1 </dev/null &
  # nsenter (net only), setsid (not a group leader here) and env all exec: $! is dockerd.
  local pid=$! i
  for i in $(seq 1 240); do
    DOCKER_HOST=unix://$S/docker.sock "$ENGINE_ROOT/usr/bin/docker" version >/dev/null 2>&1 && return
    alive "$pid" || break
    sleep 0.25
  done
  tail -15 "$S/dockerd.log" >&2
  die "dockerd did not come up (log: $S/dockerd.log)"
}

import_base_image() {
  [ -s "$BASE_IMAGE_TAR" ] || die "no cached base image at $BASE_IMAGE_TAR: run rehearsal/install.sh base-image"
  local d=("$ENGINE_ROOT/usr/bin/docker" -H "unix://$S/docker.sock") first=${BASE_IMAGE_TAGS[0]} t
  "${d[@]}" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["node"]' "$BASE_IMAGE_TAR" "$first" >/dev/null
  for t in "${BASE_IMAGE_TAGS[@]:1}"; do "${d[@]}" tag "$first" "$t"; done
}

cmd_up() {
  local host_key="" authorized_key="" base_image=0
  while [ $# -gt 0 ]; do
    case $1 in
      --host-key) host_key=${2:?--host-key FILE}; shift 2 ;;
      --authorized-key) authorized_key=${2:?--authorized-key FILE}; shift 2 ;;
      --base-image) base_image=1; shift ;;
      *) die "up: unknown option '$1'" 2 ;;
    esac
  done
  [ -z "$host_key" ] || [ -r "$host_key" ] || die "--host-key $host_key: not readable" 2
  [ -z "$authorized_key" ] || [ -r "$authorized_key" ] || die "--authorized-key $authorized_key: not readable" 2
  "$HERE/install.sh" --check engine sshd >&2 || die "run rehearsal/install.sh first"
  local t0
  t0=$(now_ms)
  lock_state
  mkdir -p "$STATE_ROOT"
  chmod 755 "$STATE_ROOT"
  { [ -e "$S" ] || [ -e "$NETNS" ] || ip link show "$VETH" >/dev/null 2>&1; } &&
    die "host $NAME exists (state $S or netns $NETNS or link $VETH): run 'vm-host.sh down $NAME'"
  mkdir -m 755 "$S"
  # From here on a failure tears down whatever was built.
  trap 'rc=$?; [ $rc = 0 ] || { log "up failed (exit $rc): tearing $NAME down"; cmd_down >&2 || true; }' EXIT
  ensure_user
  [ -d /run/netns ] || note_created /run/netns
  local n
  n=$(pick_subnet)
  local gw=$NET_PREFIX.$n.1 addr=$NET_PREFIX.$n.2
  echo "$n" >"$S/subnet"
  ip netns add "$NAME"
  ip link add "$VETH" type veth peer name "$VPEER"
  ip link set "$VPEER" netns "$NAME"
  ip -n "$NAME" link set "$VPEER" name eth0
  ip addr add "$gw/30" dev "$VETH"
  ip link set "$VETH" up
  ip -n "$NAME" addr add "$addr/30" dev eth0
  ip -n "$NAME" link set eth0 up
  ip -n "$NAME" link set lo up
  exec 9<&- # unlock; the daemons started below must not inherit the lock
  install_client
  mkdir -m 755 "$S/work" && chown "$REHEARSAL_USER:" "$S/work"
  start_sshd "$addr" "$host_key" "$authorized_key"
  start_dockerd
  [ $base_image = 0 ] || import_base_image
  timeout 20 bash -c "until </dev/tcp/$addr/22; do sleep 0.1; done" 2>/dev/null ||
    die "sshd is not answering on $addr:22 (log: $S/sshd.log)"
  trap - EXIT
  cat <<EOF
HOST=$addr
PORT=22
USERNAME=$REHEARSAL_USER
HOST_PUBLIC_KEY_FILE=$S/ssh/host_key.pub
EOF
  [ -n "$authorized_key" ] || echo "CLIENT_KEY_FILE=$S/client_key"
  cat <<EOF
DOCKER_HOST=unix://$S/docker.sock
WORK_DIR=$S/work
GATEWAY=$gw
STATE_DIR=$S
EOF
  timing host-up "$t0" up
}

# SIGTERM, a grace period, then SIGKILL.
stop_pid() {
  local pid=$1 grace=${2:-20} i
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 $((grace * 10))); do alive "$pid" || return 0; sleep 0.1; done
  log "pid $pid ignored SIGTERM for ${grace}s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do alive "$pid" || return 0; sleep 0.1; done
}

# Every pid this host can have left: dockerd, its containerd, the shims and container inits
# (pidfiles containerd writes per task), sshd, and whatever still runs in the namespace.
leftover_pids() {
  local f
  for f in "$S/dockerd.pid" "$S/sshd.pid" "$S/exec/containerd/containerd.pid" \
    "$S"/exec/containerd/daemon/io.containerd.runtime.v2.task/*/*/init.pid; do
    [ -e "$f" ] && pid_of "$f" && echo || true
  done
  [ -e "$NETNS" ] && ip netns pids "$NAME" 2>/dev/null || true
  local c
  for c in /sys/fs/cgroup/*"$CGROUP_PARENT"; do
    [ -d "$c" ] && find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  done
  true
}

cgroup_dirs() { find /sys/fs/cgroup/*"$CGROUP_PARENT" -depth -type d 2>/dev/null || true; }
mounts_under() { awk -v r="$1/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r; }

cmd_down() {
  local t0
  t0=$(now_ms)
  # dockerd first: it stops the containers and its containerd on SIGTERM.
  stop_pid "$(pid_of "$S/dockerd.pid")" 30
  stop_pid "$(pid_of "$S/sshd.pid")" 5
  local pid
  for pid in $(leftover_pids | sort -un); do stop_pid "$pid" 5; done
  local m
  # Best effort from here on: whatever cannot be removed is named by the audit at the end.
  for m in $(mounts_under "$S"); do umount "$m" 2>/dev/null || umount -l "$m" || true; done
  for m in $(cgroup_dirs); do rmdir "$m" 2>/dev/null || true; done
  # The kernel destroys a deleted namespace's veth end asynchronously: the link may vanish between
  # the two calls. Errors are left to the audit below, which says what is really left.
  [ ! -e "$NETNS" ] || ip netns del "$NAME" || true
  local i
  for i in $(seq 1 50); do ip link show "$VETH" >/dev/null 2>&1 || break; sleep 0.1; done
  ! ip link show "$VETH" >/dev/null 2>&1 || ip link del "$VETH" 2>/dev/null || true
  rm -rf "$S" || true
  cleanup_shared
  audit_down
  timing host-down "$t0" down
}

# The last host removes the system paths the harness created (only if empty: something else may
# have started using them) and the state root.
cleanup_shared() {
  [ -d "$STATE_ROOT" ] || return 0
  lock_state
  [ -z "$(find "$STATE_ROOT" -mindepth 1 -maxdepth 1 -type d)" ] || return 0
  local p
  while read -r p; do
    case $p in
      /run/netns) [ -z "$(ls -A /run/netns 2>/dev/null)" ] && {
        mountpoint -q /run/netns && umount /run/netns
        rmdir /run/netns
      } ;;
      /run/containerd) rmdir /run/containerd/s /run/containerd 2>/dev/null || true ;;
      /run/docker) rmdir /run/docker/plugins /run/docker 2>/dev/null || true ;;
      *) rmdir "$p" 2>/dev/null || true ;;
    esac
  done <"$STATE_ROOT/created" 2>/dev/null || true
  rm -f "$STATE_ROOT/created"
  rmdir "$STATE_ROOT" 2>/dev/null || true
  exec 9<&-
}

audit_down() {
  local left=()
  [ ! -e "$NETNS" ] || left+=("netns $NETNS")
  ! ip link show "$VETH" >/dev/null 2>&1 || left+=("link $VETH")
  [ ! -e "$S" ] || left+=("directory $S")
  [ -z "$(awk -v r="$S/" 'index($2, r) == 1' /proc/mounts)" ] || left+=("mounts under $S")
  [ -z "$(cgroup_dirs)" ] || left+=("cgroups $CGROUP_PARENT")
  [ ${#left[@]} = 0 ] || die "down $NAME left: ${left[*]}"
}

cmd_status() {
  local parts=0 have=() i
  [ -e "$NETNS" ] && have+=(netns)
  ip link show "$VETH" >/dev/null 2>&1 && have+=(veth)
  alive "$(pid_of "$S/sshd.pid")" && have+=(sshd)
  alive "$(pid_of "$S/dockerd.pid")" && have+=(dockerd)
  parts=${#have[@]}
  if [ "$parts" = 0 ] && [ ! -e "$S" ]; then
    echo "$NAME: down"
    return 3
  fi
  i=$(cat "$S/subnet" 2>/dev/null || echo "?")
  echo "$NAME: ${have[*]:-nothing running} (address $NET_PREFIX.$i.2, state $S)"
  [ "$parts" = 4 ] || return 1
}

main() {
  [ $# -ge 2 ] || usage
  local cmd=$1
  set_names "$2"
  shift 2
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, dockerd, sshd)" 2
  case $cmd in
    up) cmd_up "$@" ;;
    down) [ $# = 0 ] || usage; cmd_down ;;
    status) [ $# = 0 ] || usage; cmd_status ;;
    *) usage ;;
  esac
}

# On one line: bash reads a script as it runs, so an edit made meanwhile cannot run half-read.
main "$@"; exit $?
