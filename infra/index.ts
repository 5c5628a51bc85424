/** Pulumi entry point (Pulumi.yaml `main: infra/`): every field of program() is a stack output. */
import { program } from "./program.ts";

const out = program();

export const runId = out.runId;
export const resultsPath = out.resultsPath;
export const arm = out.arm;
export const emulated = out.emulated;
export const bundleHash = out.bundleHash;
export const sshUser = out.sshUser;
export const sshCommand = out.sshCommand;
export const hostPublicKey = out.hostPublicKey;
export const hourlyCostUsd = out.hourlyCostUsd;
export const maxRunCostUsd = out.maxRunCostUsd;
export const costBasis = out.costBasis;
// gcp-vm
export const instance = out.instance;
export const createdAt = out.createdAt;
export const zone = out.zone;
export const externalIp = out.externalIp;
// ssh
export const host = out.host;
// kubeconfig
export const namespace = out.namespace;
