#!/bin/bash
# inferbench VM bootstrap (rendered by infra/startup-script.ts). Safe to run on every boot.
set -euo pipefail
exec >>/var/log/inferbench-startup.log 2>&1
echo "== inferbench startup $(date -Is)"
STATE=/var/lib/inferbench
mkdir -p "$STATE"
rm -f /var/lib/inferbench/ready /var/lib/inferbench/failed
trap 'echo "line $LINENO: $BASH_COMMAND (exit $?)" >/var/lib/inferbench/failed' ERR
export DEBIAN_FRONTEND=noninteractive
MD=http://metadata.google.internal/computeMetadata/v1/instance/attributes

# 1. SSH host key generated at provision time: the operator verifies exactly this key.
HOSTKEY=$(curl -fsS --retry 5 -H 'Metadata-Flavor: Google' "$MD/inferbench-ssh-host-key")
umask 077
printf '%s\n' "$HOSTKEY" >/etc/ssh/ssh_host_ed25519_key.new
unset HOSTKEY
umask 022
if ! cmp -s /etc/ssh/ssh_host_ed25519_key.new /etc/ssh/ssh_host_ed25519_key; then
  mv /etc/ssh/ssh_host_ed25519_key.new /etc/ssh/ssh_host_ed25519_key
  chmod 600 /etc/ssh/ssh_host_ed25519_key
  ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key >/etc/ssh/ssh_host_ed25519_key.pub
  RESTART_SSHD=1
else
  rm -f /etc/ssh/ssh_host_ed25519_key.new
fi
# Keep the guest agent from replacing host keys on later boots.
if ! grep -q '^set_host_keys = false' /etc/default/instance_configs.cfg 2>/dev/null; then
  printf '[InstanceSetup]\nset_host_keys = false\n' >>/etc/default/instance_configs.cfg
fi
if [ "${RESTART_SSHD:-0}" = 1 ]; then systemctl restart ssh || systemctl restart sshd; fi

# 2. Docker engine ≥ 25.0 and compose ≥ 2.20 (from Docker's repository when the
# image's own are missing or too old), NVIDIA container toolkit.
APT_LOCK_WAIT=600
apt_get() { apt-get -q -y -o DPkg::Lock::Timeout=$APT_LOCK_WAIT "$@"; }
# apt-get update takes the lists lock, which DPkg::Lock::Timeout does not cover: retry.
apt_update() {
  local i
  for i in $(seq 60); do apt_get update && return 0; echo "apt-get update: retry $i (lock?)"; sleep 10; done
  return 1
}
# version_ge 26.1.5 25.0 → true when major.minor is at least the second argument's.
version_ge() {
  local v=${1#v} IFS=.
  local -a a=($v) b=($2)
  [[ ${a[0]:-x} =~ ^[0-9]+$ && ${a[1]:-0} =~ ^[0-9]+ ]] || return 1
  local minor=${a[1]%%[!0-9]*}
  [ "${a[0]}" -gt "${b[0]}" ] || { [ "${a[0]}" -eq "${b[0]}" ] && [ "${minor:-0}" -ge "${b[1]}" ]; }
}
engine_version() { docker version --format '{{.Server.Version}}' 2>/dev/null || true; }
compose_version() { docker compose version --short 2>/dev/null || true; }
fail() { echo "$*" >/var/lib/inferbench/failed; echo "FAILED: $*"; exit 1; }
check_docker_versions() {
  local e c
  e=$(engine_version)
  c=$(compose_version)
  version_ge "$e" 25.0 || fail "Docker engine ${e:-not running} is older than 25.0 (the kit's compose files need it)"
  version_ge "$c" 2.20 || fail "Docker Compose ${c:-missing} is older than 2.20"
  echo "docker=$e compose=$c"
}

docker_repo() {
  [ -f /etc/apt/sources.list.d/docker.list ] && return 0
  apt_update
  apt_get install ca-certificates curl gnupg
  install -m 0755 -d /etc/apt/keyrings
  curl -fsSL https://download.docker.com/linux/ubuntu/gpg | gpg --dearmor --yes -o /etc/apt/keyrings/docker.gpg
  echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/ubuntu $(. /etc/os-release && echo "$VERSION_CODENAME") stable" >/etc/apt/sources.list.d/docker.list
  apt_update
}
if ! command -v docker >/dev/null 2>&1 || ! version_ge "$(docker version --format '{{.Client.Version}}' 2>/dev/null)" 25.0; then
  docker_repo
  apt_get install docker-ce docker-ce-cli containerd.io docker-compose-plugin
fi
if ! version_ge "$(compose_version)" 2.20; then
  docker_repo
  apt_get install docker-compose-plugin
fi
if ! command -v nvidia-ctk >/dev/null 2>&1; then
  curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey | gpg --dearmor --yes -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
  curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \
    | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#g' \
    >/etc/apt/sources.list.d/nvidia-container-toolkit.list
  apt_update
  apt_get install nvidia-container-toolkit
fi
if ! grep -q nvidia /etc/docker/daemon.json 2>/dev/null; then
  nvidia-ctk runtime configure --runtime=docker
  systemctl restart docker
fi
systemctl enable --now docker
docker info >/dev/null
check_docker_versions >/var/lib/inferbench/versions
for _ in $(seq 60); do nvidia-smi -L >/dev/null 2>&1 && break; sleep 10; done
nvidia-smi -L

# 3. Deploy directory and docker access for the SSH user (the guest agent creates the user
# from the ssh-keys metadata; it may not exist yet on the very first boot).
id -u inferbench >/dev/null 2>&1 || useradd -m -s /bin/bash inferbench
usermod -aG docker inferbench
install -d -m 0755 -o inferbench -g inferbench /opt/inferbench

# 4. Ready.
date -Is >/var/lib/inferbench/ready
echo "== inferbench ready $(date -Is)"
