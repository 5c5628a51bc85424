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

# 2. Docker engine, compose plugin, NVIDIA container toolkit.
if ! command -v docker >/dev/null 2>&1; then
  apt-get update -q
  apt-get install -y -q ca-certificates curl gnupg
  install -m 0755 -d /etc/apt/keyrings
  curl -fsSL https://download.docker.com/linux/ubuntu/gpg | gpg --dearmor --yes -o /etc/apt/keyrings/docker.gpg
  echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/ubuntu $(. /etc/os-release && echo "$VERSION_CODENAME") stable" >/etc/apt/sources.list.d/docker.list
  apt-get update -q
  apt-get install -y -q docker-ce docker-ce-cli containerd.io docker-compose-plugin
fi
if ! docker compose version >/dev/null 2>&1; then
  apt-get update -q && apt-get install -y -q docker-compose-plugin
fi
if ! command -v nvidia-ctk >/dev/null 2>&1; then
  curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey | gpg --dearmor --yes -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
  curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \
    | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#g' \
    >/etc/apt/sources.list.d/nvidia-container-toolkit.list
  apt-get update -q
  apt-get install -y -q nvidia-container-toolkit
fi
if ! grep -q nvidia /etc/docker/daemon.json 2>/dev/null; then
  nvidia-ctk runtime configure --runtime=docker
  systemctl restart docker
fi
systemctl enable --now docker
docker info >/dev/null
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
