/**
 * Logic of the ComposeDeployment dynamic resource (see deploy.ts). Kept in its own module, loaded
 * by the provider with a dynamic import, so the serialised provider closure captures only a URL.
 */

import { deployBundle, undeployBundle, waitForHostReady } from "../compose/remote.ts";
import type { RemoteHost } from "../lib/ssh/ssh.ts";
import { connectSsh } from "../lib/ssh/ssh.ts";

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

const sshConnect: Connect = (i) =>
  waitForHostReady(
    () =>
      connectSsh({
        host: i.host,
        port: i.port,
        username: i.user,
        privateKey: i.privateKey,
        hostPublicKey: i.hostPublicKey,
      }),
    { timeoutMs: i.readyTimeoutSec * 1000 },
  );

async function deploy(i: DeploymentInputs, connect: Connect): Promise<void> {
  const host = await connect(i);
  try {
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
