/**
 * Preflight wiring: real environment in, report out; and the run keys a cloud run needs.
 *
 * SSH keys: @pulumi/tls is not available, and a dynamic provider that generates keys would put
 * crypto inside a serialised closure. Instead, preflight generates ed25519 keys with node:crypto
 * once per run stack and stores them in that stack's config: the login and host private keys as
 * Pulumi secrets (encrypted by the backend), the public keys in plain. They are stable across
 * `up`s of the stack and vanish with it. The host public key is also written to a known_hosts
 * file beside the login key under ~/.inferbench/<run-id>/ for manual `ssh`.
 */
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { RUN_KEYS } from "../../../infra/program-keys.ts";
import { generateEd25519 } from "../../../lib/ssh/keys.ts";
import { type ArmInput, type PreflightReport, preflightReport, type TokenState } from "./checks.ts";

export * from "./checks.ts";

export function whichOnPath(cmd: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

export function runPreflight(
  arms: ArmInput[],
  opts: { env?: NodeJS.ProcessEnv; hfToken?: TokenState } = {},
): PreflightReport {
  const env = opts.env ?? process.env;
  return preflightReport(arms, {
    env,
    exists: existsSync,
    which: (c) => whichOnPath(c, env),
    ...(opts.hfToken ? { hfToken: opts.hfToken } : {}),
  });
}

export interface RunKeys {
  sshPrivateKey: string;
  sshPublicKey: string;
  hostPrivateKey: string;
  hostPublicKey: string;
}

export interface KeyStore {
  getConfig(key: string): Promise<{ value: string; secret?: boolean } | undefined>;
  setConfig(entries: Record<string, { value: string; secret?: boolean }>): Promise<void>;
}

/** Reads the run keys from the stack config, generating and storing any that are missing. */
export async function ensureRunKeys(store: KeyStore, runId: string): Promise<RunKeys> {
  const get = async (k: string) => (await store.getConfig(k))?.value;
  let sshPrivateKey = await get(RUN_KEYS.sshPrivateKey);
  let sshPublicKey = await get(RUN_KEYS.sshPublicKey);
  let hostPrivateKey = await get(RUN_KEYS.hostPrivateKey);
  let hostPublicKey = await get(RUN_KEYS.hostPublicKey);
  const entries: Record<string, { value: string; secret?: boolean }> = {};
  if (!sshPrivateKey || !sshPublicKey) {
    const k = generateEd25519(`inferbench-${runId}`);
    sshPrivateKey = k.privateKey;
    sshPublicKey = k.publicKey;
    entries[RUN_KEYS.sshPrivateKey] = { value: k.privateKey, secret: true };
    entries[RUN_KEYS.sshPublicKey] = { value: k.publicKey };
  }
  if (!hostPrivateKey || !hostPublicKey) {
    const k = generateEd25519(`inferbench-host-${runId}`);
    hostPrivateKey = k.privateKey;
    hostPublicKey = k.publicKey;
    entries[RUN_KEYS.hostPrivateKey] = { value: k.privateKey, secret: true };
    entries[RUN_KEYS.hostPublicKey] = { value: k.publicKey };
  }
  if (Object.keys(entries).length) await store.setConfig(entries);
  return { sshPrivateKey, sshPublicKey, hostPrivateKey, hostPublicKey };
}

/** ~/.inferbench/<run-id>/{id_ed25519 (0600), known_hosts} for the printed ssh command. */
export async function writeLocalSshFiles(
  runId: string,
  keys: RunKeys,
  host: string,
  root = join(homedir(), ".inferbench"),
): Promise<string> {
  const dir = join(root, runId);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, "id_ed25519"), keys.sshPrivateKey, { mode: 0o600 });
  const hostKey = keys.hostPublicKey.split(/\s+/).slice(0, 2).join(" ");
  await writeFile(join(dir, "known_hosts"), `${host} ${hostKey}\n`, { mode: 0o600 });
  return dir;
}
