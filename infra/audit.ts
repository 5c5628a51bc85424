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
}

const ORDER: LeftoverResource["kind"][] = ["instance", "disk", "firewall", "subnet", "network"];

/** gcloud commands that delete what is left, in dependency order. */
export function cleanupCommands(left: LeftoverResource[], project?: string): string[] {
  const p = project ? ` --project ${project}` : "";
  return [...left]
    .sort((a, b) => ORDER.indexOf(a.kind) - ORDER.indexOf(b.kind) || a.name.localeCompare(b.name))
    .map((r) => {
      switch (r.kind) {
        case "instance":
          return `gcloud compute instances delete ${r.name} --zone ${r.location}${p} --quiet`;
        case "disk":
          return `gcloud compute disks delete ${r.name} --zone ${r.location}${p} --quiet`;
        case "firewall":
          return `gcloud compute firewall-rules delete ${r.name}${p} --quiet`;
        case "subnet":
          return `gcloud compute networks subnets delete ${r.name} --region ${r.location}${p} --quiet`;
        default:
          return `gcloud compute networks delete ${r.name}${p} --quiet`;
      }
    });
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
    (await promisify(execFile)("gcloud", args, { maxBuffer: 16 << 20 })).stdout,
): ResourceAuditor {
  return {
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
