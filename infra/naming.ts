/** Names and labels shared by the VM component, the audit and the CLI (no Pulumi imports). */

/** GCP label values: lowercase letters, digits, `_` and `-`, at most 63 chars. */
export function labelValue(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, "-")
    .slice(0, 63);
}

/** Prefix of every named resource of a run: `<networkName>-<run-id>` (GCP names ≤ 63 chars). */
export function namePrefix(networkName: string, runId: string): string {
  return `${networkName}-${labelValue(runId)}`.slice(0, 50);
}

export function vmLabels(runId: string, stack: string): Record<string, string> {
  return {
    "inferbench-run": labelValue(runId),
    "inferbench-stack": labelValue(stack),
    "managed-by": "inferbench",
  };
}
