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
const STATE_DIR = "/var/lib/inferbench";

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

/**
 * Oldest Docker engine and compose plugin the kit's compose files work with (engine 25 for
 * healthcheck.start_interval; compose 2.20 for `--wait` and `include`). The ssh target checks
 * the same numbers on a host it is given.
 */
export const MIN_DOCKER_ENGINE = [25, 0] as const;
export const MIN_COMPOSE = [2, 20] as const;

/**
 * Shell helpers of the script, also run by the tests against a fake docker: apt that waits for
 * the lock (first boot runs unattended-upgrades), version comparison, and the final version
 * check that writes the failure marker with what was found and what is needed.
 */
export const SHELL_HELPERS = `APT_LOCK_WAIT=600
apt_get() { apt-get -q -y -o DPkg::Lock::Timeout=$APT_LOCK_WAIT "$@"; }
# apt-get update takes the lists lock, which DPkg::Lock::Timeout does not cover: retry.
apt_update() {
  local i
  for i in $(seq 60); do apt_get update && return 0; echo "apt-get update: retry $i (lock?)"; sleep 10; done
  return 1
}
# version_ge 26.1.5 25.0 → true when major.minor is at least the second argument's.
version_ge() {
  local v=\${1#v} IFS=.
  local -a a=($v) b=($2)
  [[ \${a[0]:-x} =~ ^[0-9]+$ && \${a[1]:-0} =~ ^[0-9]+ ]] || return 1
  local minor=\${a[1]%%[!0-9]*}
  [ "\${a[0]}" -gt "\${b[0]}" ] || { [ "\${a[0]}" -eq "\${b[0]}" ] && [ "\${minor:-0}" -ge "\${b[1]}" ]; }
}
engine_version() { docker version --format '{{.Server.Version}}' 2>/dev/null || true; }
compose_version() { docker compose version --short 2>/dev/null || true; }
fail() { echo "$*" >${FAILED_MARKER}; echo "FAILED: $*"; exit 1; }
check_docker_versions() {
  local e c
  e=$(engine_version)
  c=$(compose_version)
  version_ge "$e" ${MIN_DOCKER_ENGINE.join(".")} || fail "Docker engine \${e:-not running} is older than ${MIN_DOCKER_ENGINE.join(".")} (the kit's compose files need it)"
  version_ge "$c" ${MIN_COMPOSE.join(".")} || fail "Docker Compose \${c:-missing} is older than ${MIN_COMPOSE.join(".")}"
  echo "docker=$e compose=$c"
}
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

# 2. Docker engine ≥ ${MIN_DOCKER_ENGINE.join(".")} and compose ≥ ${MIN_COMPOSE.join(".")} (from Docker's repository when the
# image's own are missing or too old), NVIDIA container toolkit.
${SHELL_HELPERS}
docker_repo() {
  [ -f /etc/apt/sources.list.d/docker.list ] && return 0
  apt_update
  apt_get install ca-certificates curl gnupg
  install -m 0755 -d /etc/apt/keyrings
  curl -fsSL https://download.docker.com/linux/ubuntu/gpg | gpg --dearmor --yes -o /etc/apt/keyrings/docker.gpg
  echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/ubuntu $(. /etc/os-release && echo "$VERSION_CODENAME") stable" >/etc/apt/sources.list.d/docker.list
  apt_update
}
if ! command -v docker >/dev/null 2>&1 || ! version_ge "$(docker version --format '{{.Client.Version}}' 2>/dev/null)" ${MIN_DOCKER_ENGINE.join(".")}; then
  docker_repo
  apt_get install docker-ce docker-ce-cli containerd.io docker-compose-plugin
fi
if ! version_ge "$(compose_version)" ${MIN_COMPOSE.join(".")}; then
  docker_repo
  apt_get install docker-compose-plugin
fi
if ! command -v nvidia-ctk >/dev/null 2>&1; then
  curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey | gpg --dearmor --yes -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
  curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \\
    | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#g' \\
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
check_docker_versions >${STATE_DIR}/versions
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
