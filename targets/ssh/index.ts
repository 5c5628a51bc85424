/**
 * ssh: any existing GPU host reached over SSH. Nothing is provisioned; provision connects with the
 * pinned host key, checks the host (Docker engine and compose new enough for the kit's files, the
 * GPUs the plan needs, a writable root) and takes the host's run lock, so two runs never share it.
 * Everything after that is the compose host (targets/compose-host.ts), as on gcp-vm. "Destroy"
 * takes down what the run deployed and releases the lock; the host itself stays.
 */
import { readFileSync } from "node:fs";
import { posix } from "node:path";
import { driverOf, hostCheckFailure, judgeHost, probeHost } from "../../compose/host-checks.ts";
import { undeployBundle } from "../../compose/remote.ts";
import { type AutomationApi, localAutomation } from "../../infra/automation.ts";
import { UserError } from "../../lib/errors.ts";
import { registerSecret } from "../../lib/redact.ts";
import {
  connectSsh,
  HostKeyMismatchError,
  type RemoteHost,
  type SshTarget,
  shQuote,
} from "../../lib/ssh/ssh.ts";
import type { StackConfig } from "../../stacks/schema.ts";
import { composeHost } from "../compose-host.ts";
import { requireHfToken } from "../hf-token.ts";
import type { Leftover, Target, TargetContext } from "../types.ts";

export const LOCK_DIR = ".inferbench-lock";

export interface SshTargetDeps {
  connect: (t: SshTarget) => Promise<RemoteHost>;
  readFile: (path: string) => string;
  env: NodeJS.ProcessEnv;
  /** Reads a `pulumi config set --secret hfToken` of the user's stack back, decrypted. */
  automation: Pick<AutomationApi, "readProjectConfig">;
}

function depsOf(partial: Partial<SshTargetDeps>): SshTargetDeps {
  return {
    connect: connectSsh,
    readFile: (p) => readFileSync(p, "utf8"),
    env: process.env,
    automation: localAutomation(),
    ...partial,
  };
}

/** Connects with the stack's key file or the agent, the host key pinned; refusals name the key. */
async function connectHost(cfg: StackConfig["ssh"], deps: SshTargetDeps): Promise<RemoteHost> {
  let privateKey: string | undefined;
  if (cfg.keyFile) {
    try {
      privateKey = deps.readFile(cfg.keyFile);
    } catch (err) {
      throw new UserError(
        `ssh.keyFile: cannot read ${cfg.keyFile} (${(err as NodeJS.ErrnoException).code ?? err})`,
        {
          hint: "point ssh.keyFile at the private key for the host, or leave it out to use the SSH agent",
        },
      );
    }
    registerSecret(privateKey);
  } else if (!deps.env.SSH_AUTH_SOCK) {
    throw new UserError("ssh.keyFile is not set and no SSH agent is running (SSH_AUTH_SOCK)", {
      hint: "set ssh.keyFile to the private key, or start ssh-agent and ssh-add the key",
    });
  }
  try {
    return await deps.connect({
      host: cfg.host!,
      port: cfg.port,
      username: cfg.user,
      ...(privateKey ? { privateKey } : { agent: deps.env.SSH_AUTH_SOCK! }),
      hostPublicKey: cfg.hostKey!,
      readyTimeoutMs: 20_000,
    });
  } catch (err) {
    if (err instanceof HostKeyMismatchError)
      throw new UserError(`${cfg.host}: ${err.message}`, {
        hint: "check ssh.hostKey against `ssh-keyscan -t ed25519 HOST` on a trusted network; never skip the check",
      });
    throw new UserError(
      `cannot reach ${cfg.user}@${cfg.host}:${cfg.port}: ${(err as Error).message}`,
      {
        hint: "check ssh.host, ssh.port, ssh.user and that the key is authorised on the host",
      },
    );
  }
}

/** Who holds the host's run lock (empty when nobody does, or the owner file is unreadable). */
async function lockOwner(
  h: RemoteHost,
  lockDir: string,
): Promise<{ runId?: string; since?: string }> {
  const r = await h.exec(`cat ${shQuote(`${lockDir}/owner.json`)}`);
  try {
    const v = JSON.parse(r.stdout) as unknown;
    return typeof v === "object" && v !== null ? (v as { runId?: string; since?: string }) : {};
  } catch {
    return {};
  }
}

/**
 * `inferbench destroy` of a run kept on an ssh host (`--keep`): takes the run's compose projects
 * down, releases the host's run lock if this run holds it, and audits the engine. The host stays.
 */
export async function teardownKeptSshRun(
  config: StackConfig,
  runId: string,
  arms: readonly string[],
  partial: Partial<SshTargetDeps> = {},
): Promise<Leftover[]> {
  const host = await connectHost(config.ssh, depsOf(partial));
  try {
    for (const arm of arms) await undeployBundle(host, `inferbench-${arm}`);
    const lockDir = posix.join(config.ssh.remoteRoot, LOCK_DIR);
    if ((await lockOwner(host, lockDir)).runId === runId)
      await host.exec(`rm -rf ${shQuote(lockDir)}`, { timeoutMs: 30_000 });
    return await composeHost(() => host, { remoteRoot: config.ssh.remoteRoot }).audit();
  } finally {
    host.close();
  }
}

export function sshTarget(
  configs: Record<string, StackConfig>,
  partial: Partial<SshTargetDeps> = {},
): Target {
  const deps = depsOf(partial);
  const first = Object.values(configs)[0]!;
  const cfg = first.ssh;
  const rehearsal = first.rehearsal;
  const root = cfg.remoteRoot;
  const lockDir = posix.join(root, LOCK_DIR);
  let host: RemoteHost | undefined;
  let locked = false;
  let runnerUser: string | undefined;
  let hfToken: string | undefined;
  const onHost = composeHost(
    () => {
      if (!host) throw new Error(`not connected to ${cfg.host}`);
      return host;
    },
    {
      remoteRoot: root,
      rehearsal,
      get hfToken() {
        return hfToken;
      },
      allowUnpinnedImages: first.run.allowUnpinnedImages,
      get runnerUser() {
        return runnerUser;
      },
    },
  );

  const connect = () => connectHost(cfg, deps);

  return {
    kind: "ssh",
    sideBySide: false,
    async provision(ctx) {
      // Before connecting: a gated model without a token would fail on the host, after the upload.
      hfToken = await requireHfToken(configs, ctx.plan.arms, () => rehearsal, deps.automation);
      host = await connect();
      ctx.signal.throwIfAborted(); // Ctrl-C while connecting: before any check or the lock
      const facts = await probeHost(host);
      const gpuIds = [
        ...new Set(Object.values(ctx.plan.arms).flatMap((p) => p.engines.flatMap((e) => e.gpus))),
      ];
      const checks = judgeHost(facts, { gpuIds, rehearsal });
      const failure = hostCheckFailure(cfg.host!, checks);
      if (failure) throw new UserError(failure);
      for (const c of checks) ctx.log.info(`host check ${c.check}: ${c.message}`);
      const w = await host.exec(`mkdir -p ${shQuote(root)} && test -w ${shQuote(root)}`);
      if (w.code !== 0)
        throw new UserError(`${cfg.user} cannot write ${root} on ${cfg.host}`, {
          hint: `create it for the user (sudo install -d -o ${cfg.user} ${root}) or set ssh.remoteRoot`,
        });
      ctx.signal.throwIfAborted();
      await takeLock(host, ctx);
      runnerUser = `${facts.uid}:${facts.gid}`;
      ctx.saveInfra({
        state: "up",
        host: cfg.host!,
        sshCommand: `ssh -p ${cfg.port} ${cfg.user}@${cfg.host}`,
        billing: {
          start: new Date().toISOString(),
          ...(cfg.hourlyUsd !== undefined ? { hourlyUsd: cfg.hourlyUsd } : {}),
        },
        hostFacts: {
          docker: facts.docker ?? "none",
          compose: facts.compose ?? "none",
          gpus:
            facts.gpus.map((g) => `${g.index} ${g.name} ${g.memoryMiB} MiB`).join("; ") || "none",
          driver: driverOf(facts.gpus),
        },
      });
    },
    deployArm: (arm, ctx) => onHost.deployArm(arm, ctx),
    runArm: (arm, steps, ctx) => onHost.runArm(arm, steps, ctx),
    collect: (arm, ctx) => onHost.collect(arm, ctx),
    undeployArm: (arm, ctx) => onHost.undeployArm(arm, ctx),
    async destroy(ctx) {
      if (!host) return true;
      try {
        if (locked) await host.exec(`rm -rf ${shQuote(lockDir)}`, { timeoutMs: 30_000 });
        locked = false;
      } catch (err) {
        ctx.log.warn(`could not release the host's run lock ${lockDir}: ${(err as Error).message}`);
      }
      ctx.saveInfra({
        state: "destroyed",
        billing: { ...ctx.store.readManifest().infra?.billing, end: new Date().toISOString() },
      });
      return true;
    },
    async audit(): Promise<Leftover[]> {
      if (!host) return [];
      try {
        return await onHost.audit();
      } finally {
        host.close();
        host = undefined;
      }
    },
  };

  /** An atomic mkdir on the host: a second run is refused and told who holds the host. */
  async function takeLock(h: RemoteHost, ctx: TargetContext): Promise<void> {
    const owner = JSON.stringify({ runId: ctx.store.runId, since: new Date().toISOString() });
    const r = await h.exec(
      `mkdir ${shQuote(lockDir)} 2>/dev/null && printf %s ${shQuote(owner)} > ${shQuote(`${lockDir}/owner.json`)}`,
    );
    if (r.code === 0) {
      locked = true;
      return;
    }
    const who = await lockOwner(h, lockDir);
    if (who.runId === ctx.store.runId) {
      locked = true; // our own lock, left by an interrupted attempt of this run: resume
      return;
    }
    throw new UserError(
      `${cfg.host} is in use by run ${who.runId ?? "(unknown)"} since ${who.since ?? "(unknown)"}: two runs on one host would measure each other`,
      {
        hint: `wait for it, or if that run is dead: ssh ${cfg.user}@${cfg.host} rm -rf ${lockDir}`,
      },
    );
  }
}
