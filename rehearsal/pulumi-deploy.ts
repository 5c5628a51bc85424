/**
 * The real Pulumi engine (the CLI built by rehearsal/install.sh) runs the kit's program inline —
 * `program()` from infra/program.ts, what infra/index.ts runs under `pulumi up` — for an ssh stack
 * pointed at the rehearsal host. Its ComposeDeployment (a dynamic resource, served by the shim the
 * workspace writes) deploys for real, and each engine operation is checked against the host:
 *
 *   up          the arm's project comes up healthy; the host's bundle hash is the output's
 *   no-op up    nothing created, updated or deleted
 *   update      a config change that changes the bundle updates the deployment in place
 *   refresh     in sync: no change; after an out-of-band `compose down`: the deployment is
 *               dropped from the state, and the next up deploys it again
 *   destroy     nothing of the project left on the engine; the stack removed
 *
 * The stack's state (file backend) and the engine's output must hold neither the login key nor
 * the HF token in plain text.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import {
  BUNDLE_HASH_FILE,
  composePsCommand,
  parseComposePs,
  projectDir,
} from "../compose/remote.ts";
import { type AutomationApi, localAutomation, type StackOps } from "../infra/automation.ts";
import { connectSsh, type RemoteHost, shQuote } from "../lib/ssh/ssh.ts";
import { engineLeftovers } from "./rehearse-vm.ts";
import { rehearsalStack } from "./run-ssh.ts";
import { type StepTiming, sshTargetOf, type VmHost } from "./vm-host.ts";

const PROJECT = "inferbench-managed";

export interface PulumiRehearsal {
  timings: StepTiming[];
  /** Each operation's resource changes, as the engine summarised them. */
  changes: Record<string, Record<string, number>>;
}

/** Stack config entries (`inferbench:key` → JSON text) from a rehearsal stack file's `config`. */
export function configEntries(config: Record<string, unknown>) {
  return Object.fromEntries(
    Object.entries(config).map(([k, v]) => [
      k,
      { value: typeof v === "string" ? v : JSON.stringify(v) },
    ]),
  );
}

/** Every file under dir, read as text (the file backend's state, history and backups). */
function readTree(dir: string): string {
  let all = "";
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    all += statSync(p).isDirectory() ? readTree(p) : readFileSync(p, "utf8");
  }
  return all;
}

async function hostState(ssh: RemoteHost, h: VmHost) {
  const dir = projectDir(h.workDir, PROJECT);
  const ps = await ssh.exec(composePsCommand(dir, PROJECT));
  const services = ps.code === 0 ? parseComposePs(ps.stdout) : [];
  const hash = await ssh.exec(`cat ${shQuote(`${dir}/${BUNDLE_HASH_FILE}`)} 2>/dev/null`);
  return { services, hash: hash.stdout.trim() };
}

function expectChanges(op: string, got: Record<string, number>, want: Record<string, number>) {
  for (const [k, n] of Object.entries(want)) {
    if ((got[k] ?? 0) !== n)
      throw new Error(`${op}: expected ${k}=${n}, the engine reported ${JSON.stringify(got)}`);
  }
}

export async function rehearsePulumi(
  h: VmHost,
  opts: {
    workDir: string;
    pulumiBin: string;
    log: (line: string) => void;
    /** Injected for tests of this module; default: the kit's real Automation API. */
    automation?: AutomationApi;
  },
): Promise<PulumiRehearsal> {
  const root = join(opts.workDir, "pulumi");
  mkdirSync(join(root, "state"), { recursive: true });
  const keyFile = join(root, "id_ed25519");
  writeFileSync(keyFile, h.privateKey, { mode: 0o600 });
  const hfToken = `hf_rehearsal_${randomBytes(12).toString("hex")}`;
  // PulumiCommand.get() looks the CLI up on this process's PATH.
  process.env.PATH = `${dirname(opts.pulumiBin)}${delimiter}${process.env.PATH ?? ""}`;
  const auto =
    opts.automation ??
    localAutomation({
      PULUMI_HOME: join(root, "home"),
      PULUMI_BACKEND_URL: `file://${join(root, "state")}`,
      PULUMI_CONFIG_PASSPHRASE: randomBytes(16).toString("hex"),
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    });
  const timings: StepTiming[] = [];
  const changes: Record<string, Record<string, number>> = {};
  const output: string[] = [];
  const op = async (
    name: string,
    f: (o: {
      onChanges: (c: Record<string, number>) => void;
      onOutput: (l: string) => void;
    }) => Promise<unknown>,
  ) => {
    const t = performance.now();
    await f({
      onChanges: (c) => {
        changes[name] = c;
      },
      onOutput: (l) => output.push(l),
    });
    const seconds = (performance.now() - t) / 1000;
    timings.push({ step: `pulumi ${name}`, seconds, status: "ok" });
    opts.log(`pulumi ${name}: ${seconds.toFixed(1)} s ${JSON.stringify(changes[name] ?? {})}`);
  };

  const stack: StackOps = await auto.stack(join(root, "workspace"), "rehearsal-pulumi");
  const cfg = rehearsalStack(h, keyFile).config as Record<string, unknown>;
  await stack.setConfig({ ...configEntries(cfg), hfToken: { value: hfToken, secret: true } });
  const ssh = await connectSsh(sshTargetOf(h));
  let destroyed = false;
  try {
    let outs: Record<string, unknown> = {};
    await op("up", async (o) => {
      outs = await stack.up(o);
    });
    expectChanges("up", changes.up!, { create: 2 }); // the stack + the deployment
    let live = await hostState(ssh, h);
    const unhealthy = live.services.filter((s) => s.Health !== "healthy");
    if (live.services.length < 3 || unhealthy.length)
      throw new Error(`after up: ${JSON.stringify(live.services)}`);
    if (live.hash !== outs.bundleHash)
      throw new Error(`host runs bundle ${live.hash}, the stack says ${String(outs.bundleHash)}`);

    await op("no-op up", (o) => stack.up(o));
    expectChanges("no-op up", changes["no-op up"]!, { create: 0, update: 0, delete: 0 });

    // A bundle change: engines come up 2 s slower.
    await stack.setConfig({
      "inferbench:engine": { value: JSON.stringify({ emulatorStartupDelaySec: 2 }) },
    });
    await op("update (bundle change)", async (o) => {
      outs = await stack.up(o);
    });
    expectChanges("update (bundle change)", changes["update (bundle change)"]!, {
      update: 1,
      create: 0,
      delete: 0,
    });
    live = await hostState(ssh, h);
    if (live.hash !== outs.bundleHash || live.services.some((s) => s.Health !== "healthy"))
      throw new Error(`after update: host bundle ${live.hash}, stack ${String(outs.bundleHash)}`);

    await op("refresh (in sync)", (o) => stack.refresh(o));
    expectChanges("refresh (in sync)", changes["refresh (in sync)"]!, { delete: 0, update: 0 });

    // Drift: someone takes the project down by hand; refresh must see it, up must repair it.
    const down = await ssh.exec(`docker compose -p ${PROJECT} down`);
    if (down.code !== 0) throw new Error(`out-of-band down failed: ${down.stderr}`);
    await op("refresh (project gone)", (o) => stack.refresh(o));
    expectChanges("refresh (project gone)", changes["refresh (project gone)"]!, { delete: 1 });
    await op("up (redeploy)", (o) => stack.up(o));
    expectChanges("up (redeploy)", changes["up (redeploy)"]!, { create: 1 });
    live = await hostState(ssh, h);
    if (live.services.length < 3 || live.services.some((s) => s.Health !== "healthy"))
      throw new Error(`after redeploy: ${JSON.stringify(live.services)}`);

    const state = readTree(join(root, "state"));
    const key = h.privateKey.split("\n").find((l) => l.length > 40)!;
    for (const [what, secret] of [
      ["the HF token", hfToken],
      ["the login key", key],
    ] as const) {
      if (state.includes(secret)) throw new Error(`the Pulumi state holds ${what} in plain text`);
      if (output.some((l) => l.includes(secret)))
        throw new Error(`the engine's output shows ${what}`);
    }
    if (!state.includes("ciphertext")) throw new Error("no secret in the state is encrypted");

    await op("destroy", (o) => stack.destroy(o));
    destroyed = true;
    expectChanges("destroy", changes.destroy!, { delete: 2 });
    const left = await engineLeftovers(ssh);
    if (left.length) throw new Error(`pulumi destroy left on the host: ${left.join("; ")}`);
    await stack.remove();
    return { timings, changes };
  } finally {
    if (!destroyed) await stack.destroy({ continueOnError: true }).catch(() => undefined);
    ssh.close();
  }
}
