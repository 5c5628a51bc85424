/**
 * The VM's startup script (metadata `startup-script`, re-run by the guest agent on every boot), as
 * a pure renderer. Idempotent: each step checks before it installs. In order:
 *  1. install the SSH host key that was generated at provision time (read from instance metadata)
 *     and stop the guest agent from regenerating host keys, so the operator can verify the host;
 *  2. Docker engine + compose plugin, NVIDIA container toolkit (`nvidia-ctk runtime configure`);
 *  3. the deploy directory owned by the SSH user, who may use docker;
 *  4. the readiness marker (or a failure marker with the failing line, so waiting stops early).
 */

export const READY_MARKER = "/var/lib/inferbench/ready";
export const FAILED_MARKER = "/var/lib/inferbench/failed";
export const HOST_KEY_METADATA_KEY = "inferbench-ssh-host-key";
export const DEFAULT_REMOTE_ROOT = "/opt/inferbench";

export interface StartupScriptOptions {
  sshUser: string;
  /** Directory the compose bundles are uploaded to. */
  remoteRoot?: string;
  /** Whether to require a working `nvidia-smi` (false for GPU-less rehearsal machines). */
  requireGpu?: boolean;
}

const NAME_RE = /^[a-z_][a-z0-9_-]*$/;
const PATH_RE = /^\/[A-Za-z0-9_./-]+$/;

// Deep Learning VM images may still be installing or loading the driver on first boot: wait.
const GPU_CHECK = `for _ in $(seq 60); do nvidia-smi -L >/dev/null 2>&1 && break; sleep 10; done
nvidia-smi -L
`;

export function renderStartupScript(opts: StartupScriptOptions): string {
  // Values are interpolated into bash: accept only plain names and paths.
  if (!NAME_RE.test(opts.sshUser)) throw new Error(`invalid ssh user "${opts.sshUser}"`);
  const root = opts.remoteRoot ?? DEFAULT_REMOTE_ROOT;
  if (!PATH_RE.test(root)) throw new Error(`invalid remote root "${root}"`);
  const requireGpu = opts.requireGpu ?? true;
  return `#!/bin/bash
# inferbench VM bootstrap (rendered by infra/startup-script.ts). Safe to run on every boot.
set -euo pipefail
exec >>/var/log/inferbench-startup.log 2>&1
echo "== inferbench startup $(date -Is)"
STATE=/var/lib/inferbench
mkdir -p "$STATE"
rm -f ${READY_MARKER} ${FAILED_MARKER}
trap 'echo "line $LINENO: $BASH_COMMAND (exit $?)" >${FAILED_MARKER}' ERR
export DEBIAN_FRONTEND=noninteractive
MD=http://metadata.google.internal/computeMetadata/v1/instance/attributes

# 1. SSH host key generated at provision time: the operator verifies exactly this key.
HOSTKEY=$(curl -fsS --retry 5 -H 'Metadata-Flavor: Google' "$MD/${HOST_KEY_METADATA_KEY}")
umask 077
printf '%s\\n' "$HOSTKEY" >/etc/ssh/ssh_host_ed25519_key.new
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
  printf '[InstanceSetup]\\nset_host_keys = false\\n' >>/etc/default/instance_configs.cfg
fi
if [ "\${RESTART_SSHD:-0}" = 1 ]; then systemctl restart ssh || systemctl restart sshd; fi

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
  curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \\
    | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#g' \\
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
${requireGpu ? GPU_CHECK : ""}
# 3. Deploy directory and docker access for the SSH user (the guest agent creates the user
# from the ssh-keys metadata; it may not exist yet on the very first boot).
id -u ${opts.sshUser} >/dev/null 2>&1 || useradd -m -s /bin/bash ${opts.sshUser}
usermod -aG docker ${opts.sshUser}
install -d -m 0755 -o ${opts.sshUser} -g ${opts.sshUser} ${root}

# 4. Ready.
date -Is >${READY_MARKER}
echo "== inferbench ready $(date -Is)"
`;
}
