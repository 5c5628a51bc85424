/** Run keys shared by the Pulumi program and the CLI (no Pulumi import). */

/** Config keys (project namespace) that are not StackConfig: written by preflight. */
export const RUN_KEYS = {
  runId: "runId",
  zone: "zone",
  sshPrivateKey: "sshPrivateKey",
  sshPublicKey: "sshGeneratedPublicKey",
  hostPrivateKey: "sshHostPrivateKey",
  hostPublicKey: "sshHostPublicKey",
  /** Absolute deadline (RFC 3339) for scheduling.terminationTime: set once per run. */
  deadline: "deadline",
  /** "false": provision only; the CLI deploys the arms itself (it swaps them on one VM). */
  deploy: "deploy",
} as const;
