/**
 * Logic of the ComposeDeployment dynamic resource (see deploy.ts). Kept in its own module, loaded
 * by the provider with a dynamic import, so the serialised provider closure captures only a URL.
 */

import { hostCheckFailure, judgeHost, probeHost } from "../compose/host-checks.ts";
import {
  BUNDLE_HASH_FILE,
  composePsCommand,
  deployBundle,
  parseComposePs,
  projectDir,
  undeployBundle,
  unhealthyServices,
  waitForHostReady,
} from "../compose/remote.ts";
import { connectSsh, type RemoteHost, shQuote } from "../lib/ssh/ssh.ts";

export interface DeploymentInputs {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  hostPublicKey: string;
  remoteRoot: string;
  projectName: string;
  files: Record<string, string>;
  bundleHash: string;
  hfToken: string;
  waitTimeoutSec: number;
  readyTimeoutSec: number;
  /**
   * A host the kit provisioned (gcp-vm) is ready once its startup script's marker exists. A host
   * it did not make (ssh) has no marker: it is checked instead (engine, compose, GPUs).
   */
  startupMarker: boolean;
  /** For a host without the marker: the GPU ids the plan pins (none checked in a rehearsal). */
  hostChecks?: { gpuIds: number[]; rehearsal: boolean };
  /** No private key: the SSH agent of the provider's environment (SSH_AUTH_SOCK). */
  agent?: boolean;
}

/** Fields whose change means "deploy again"; anything else (timeouts) is refreshed in place. */
export const REDEPLOY_FIELDS = [
  "host",
  "port",
  "user",
  "privateKey",
  "hostPublicKey",
  "remoteRoot",
  "projectName",
  "bundleHash",
  "hfToken",
] as const;

export function diffDeployment(olds: Partial<DeploymentInputs>, news: DeploymentInputs) {
  const changed = REDEPLOY_FIELDS.filter((k) => olds[k] !== news[k]);
  const softChange =
    olds.waitTimeoutSec !== news.waitTimeoutSec || olds.readyTimeoutSec !== news.readyTimeoutSec;
  return {
    changes: changed.length > 0 || softChange,
    replaces: [] as string[],
    deleteBeforeReplace: false,
    changed,
  };
}

export type Connect = (i: DeploymentInputs) => Promise<RemoteHost>;

const sshConnect: Connect = (i) => {
  const once = () =>
    connectSsh({
      host: i.host,
      port: i.port,
      username: i.user,
      ...(i.agent ? { agent: process.env.SSH_AUTH_SOCK ?? "" } : { privateKey: i.privateKey }),
      hostPublicKey: i.hostPublicKey,
      readyTimeoutMs: Math.min(i.readyTimeoutSec, 30) * 1000,
    });
  return i.startupMarker ? waitForHostReady(once, { timeoutMs: i.readyTimeoutSec * 1000 }) : once();
};

async function deploy(i: DeploymentInputs, connect: Connect): Promise<void> {
  const host = await connect(i);
  try {
    if (i.hostChecks) {
      const failure = hostCheckFailure(i.host, judgeHost(await probeHost(host), i.hostChecks));
      if (failure) throw new Error(failure);
    }
    await deployBundle(host, {
      remoteRoot: i.remoteRoot,
      projectName: i.projectName,
      files: i.files,
      hfToken: i.hfToken,
      waitTimeoutSec: i.waitTimeoutSec,
    });
  } finally {
    host.close();
  }
}

export async function create(i: DeploymentInputs, connect: Connect = sshConnect) {
  await deploy(i, connect);
  return { id: `${i.host}:${i.projectName}`, outs: i };
}

export async function update(
  _id: string,
  _olds: DeploymentInputs,
  news: DeploymentInputs,
  connect: Connect = sshConnect,
) {
  await deploy(news, connect);
  return { outs: news };
}

/**
 * Refresh: what runs on the host. No container of the project → the deployment is gone (a blank
 * id drops it from the state; the next `up` deploys again). Services not running or unhealthy, or
 * another bundle on the host, → the recorded hash is the live one (blank when unhealthy), so the
 * next `up` sees a difference and deploys again. An unreachable host tells nothing: the state stays.
 */
export async function read(
  id: string,
  props: DeploymentInputs,
  connect: Connect = sshConnect,
): Promise<{ id?: string; props?: DeploymentInputs }> {
  let host: RemoteHost;
  try {
    host = await connect({ ...props, readyTimeoutSec: Math.min(props.readyTimeoutSec, 60) });
  } catch {
    return { id, props };
  }
  try {
    const dir = projectDir(props.remoteRoot, props.projectName);
    const ps = await host.exec(composePsCommand(dir, props.projectName), { timeoutMs: 60_000 });
    const services = ps.code === 0 ? parseComposePs(ps.stdout) : [];
    if (services.length === 0) return {};
    const hash = await host.exec(`cat ${shQuote(`${dir}/${BUNDLE_HASH_FILE}`)}`, {
      timeoutMs: 30_000,
    });
    const live = unhealthyServices(services).length ? "" : hash.stdout.trim();
    return { id, props: { ...props, bundleHash: live } };
  } finally {
    host.close();
  }
}

/** Best effort: the VM usually goes in the same destroy, and an unreachable host must not block it. */
export async function remove(
  _id: string,
  props: DeploymentInputs,
  connect: Connect = sshConnect,
): Promise<void> {
  let host: RemoteHost | undefined;
  try {
    host = await connect({ ...props, readyTimeoutSec: Math.min(props.readyTimeoutSec, 60) });
    await undeployBundle(host, props.projectName);
  } catch {
    // unreachable or already gone
  } finally {
    host?.close();
  }
}
