/**
 * After destroy: is anything labelled with (or named after) the run id still there? The real
 * auditor shells out to gcloud; the decision and the cleanup command are pure functions.
 * Instances and disks carry the `inferbench-run` label; networks, subnets and firewall rules
 * cannot be labelled, so they are found by their name prefix (`<networkName>-<run-id>`).
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { labelValue } from "./naming.ts";

export { namePrefix } from "./naming.ts";

export interface LeftoverResource {
  kind: "instance" | "disk" | "firewall" | "subnet" | "network";
  name: string;
  /** zone (instance, disk) or region (subnet). */
  location?: string;
}

export interface ResourceAuditor {
  leftovers(
    runId: string,
    opts: { project?: string; namePrefix: string },
  ): Promise<LeftoverResource[]>;
  /**
   * Deletes what an audit found (label- or prefix-matched to one run), in dependency order; used
   * when `pulumi destroy` failed, so a failed destroy does not leave a VM billing.
   */
  remove?(left: readonly LeftoverResource[], project?: string): Promise<CleanupResult[]>;
}

export interface CleanupResult {
  command: string;
  ok: boolean;
  error?: string;
}

const ORDER: LeftoverResource["kind"][] = ["instance", "disk", "firewall", "subnet", "network"];

/** gcloud argument vectors that delete what is left, in dependency order. */
export function cleanupArgv(left: readonly LeftoverResource[], project?: string): string[][] {
  const p = project ? ["--project", project] : [];
  return [...left]
    .sort((a, b) => ORDER.indexOf(a.kind) - ORDER.indexOf(b.kind) || a.name.localeCompare(b.name))
    .map((r) => {
      const where = r.location ? [r.kind === "subnet" ? "--region" : "--zone", r.location] : [];
      const noun: Record<LeftoverResource["kind"], string[]> = {
        instance: ["compute", "instances"],
        disk: ["compute", "disks"],
        firewall: ["compute", "firewall-rules"],
        subnet: ["compute", "networks", "subnets"],
        network: ["compute", "networks"],
      };
      return [...noun[r.kind], "delete", r.name, ...where, ...p, "--quiet"];
    });
}

/** The same as commands a person can paste. */
export function cleanupCommands(left: readonly LeftoverResource[], project?: string): string[] {
  return cleanupArgv(left, project).map((a) => `gcloud ${a.join(" ")}`);
}

/**
 * Runs the cleanup: every command is tried (one failure does not stop the rest: a disk may go
 * although its instance is already gone), each result reported.
 */
export async function runCleanup(
  left: readonly LeftoverResource[],
  project: string | undefined,
  run: (args: string[]) => Promise<string>,
): Promise<CleanupResult[]> {
  const out: CleanupResult[] = [];
  for (const args of cleanupArgv(left, project)) {
    const command = `gcloud ${args.join(" ")}`;
    try {
      await run(args);
      out.push({ command, ok: true });
    } catch (err) {
      out.push({ command, ok: false, error: (err as Error).message.slice(0, 500) });
    }
  }
  return out;
}

/** Last path segment of a GCP self link or zone URL. */
function tail(s: unknown): string | undefined {
  return typeof s === "string" ? s.split("/").pop() : undefined;
}

/** Parses `gcloud ... list --format=json` output into leftovers of one kind. */
export function parseGcloudList(kind: LeftoverResource["kind"], json: string): LeftoverResource[] {
  const list = JSON.parse(json.trim() || "[]") as Array<Record<string, unknown>>;
  return list.map((r) => {
    const location = tail(r.zone) ?? tail(r.region);
    return { kind, name: String(r.name), ...(location ? { location } : {}) };
  });
}

export function gcloudAuditor(
  run: (args: string[]) => Promise<string> = async (args) =>
    (await promisify(execFile)("gcloud", args, { maxBuffer: 16 << 20, timeout: 10 * 60_000 }))
      .stdout,
): ResourceAuditor {
  return {
    remove: (left, project) => runCleanup(left, project, run),
    async leftovers(runId, { project, namePrefix: prefix }) {
      const p = project ? [`--project=${project}`] : [];
      const label = `labels.inferbench-run=${labelValue(runId)}`;
      const byName = `name~^${prefix}`;
      const queries: Array<[LeftoverResource["kind"], string[]]> = [
        ["instance", ["compute", "instances", "list", `--filter=${label}`]],
        ["disk", ["compute", "disks", "list", `--filter=${label}`]],
        ["firewall", ["compute", "firewall-rules", "list", `--filter=${byName}`]],
        ["subnet", ["compute", "networks", "subnets", "list", `--filter=${byName}`]],
        ["network", ["compute", "networks", "list", `--filter=${byName}`]],
      ];
      const out: LeftoverResource[] = [];
      for (const [kind, args] of queries) {
        out.push(...parseGcloudList(kind, await run([...args, "--format=json", ...p])));
      }
      return out;
    },
  };
}
