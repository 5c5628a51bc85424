/**
 * SSH driver for a provisioned host (ssh2): connect with host-key verification, exec with
 * streamed output, SFTP upload and recursive download. The host key is known in advance (it was
 * generated at provision time and handed to the VM through secret metadata), so any other key is
 * refused — there is no trust-on-first-use.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import ssh2, { type Client, type ClientChannel, type SFTPWrapper } from "ssh2";
import { publicKeyBlob } from "./keys.ts";

export interface SshTarget {
  host: string;
  port?: number;
  username: string;
  /** OpenSSH private key text; without it the SSH agent at `agent` is asked. */
  privateKey?: string;
  /** SSH agent socket (SSH_AUTH_SOCK) when no private key is given. */
  agent?: string;
  /** The host's expected public key line (`ssh-ed25519 AAAA…`). */
  hostPublicKey: string;
  /** Connection (handshake) timeout, ms. Default 20 000. */
  readyTimeoutMs?: number;
  /**
   * Keepalive probe interval, ms (default 10 000); after 5 unanswered probes the connection is
   * dropped, so a dead host is noticed within about a minute instead of hanging a run.
   */
  keepaliveIntervalMs?: number;
}

export class HostKeyMismatchError extends Error {
  constructor(host: string) {
    super(
      `SSH host key of ${host} does not match the expected (pinned) host key: refusing to connect`,
    );
    this.name = "HostKeyMismatchError";
  }
}

export interface ExecOptions {
  onStdout?: (chunk: string) => void;
  onStderr?: (chunk: string) => void;
  /** Kill the remote command (SIGTERM, then close the channel) when aborted. */
  signal?: AbortSignal;
  /** Give up waiting after this many ms (the channel is closed). */
  timeoutMs?: number;
}

export interface ExecResult {
  code: number | null;
  signal: string | undefined;
  stdout: string;
  stderr: string;
}

export interface RemoteHost {
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  upload(
    remoteDir: string,
    files: Record<string, string>,
    modes?: Record<string, number>,
  ): Promise<void>;
  download(remoteDir: string, localDir: string): Promise<string[]>;
  close(): void;
}

/** Quotes one argument for a POSIX shell. */
export function shQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export function hostKeyMatches(expectedLine: string, presented: Buffer): boolean {
  return publicKeyBlob(expectedLine).equals(presented);
}

export async function connectSsh(target: SshTarget): Promise<SshHost> {
  const expected = publicKeyBlob(target.hostPublicKey);
  const keyType = expected.subarray(4, 4 + expected.readUInt32BE(0)).toString();
  const client = new ssh2.Client();
  let mismatch = false;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      client.removeListener("ready", onReady);
      reject(mismatch ? new HostKeyMismatchError(target.host) : err);
    };
    const onReady = () => {
      client.removeListener("error", onError);
      client.on("error", () => {}); // later errors surface through the operations
      resolve();
    };
    client.once("ready", onReady);
    client.once("error", onError);
    client.connect({
      host: target.host,
      port: target.port ?? 22,
      username: target.username,
      ...(target.privateKey !== undefined ? { privateKey: target.privateKey } : {}),
      ...(target.privateKey === undefined && target.agent ? { agent: target.agent } : {}),
      readyTimeout: target.readyTimeoutMs ?? 20_000,
      keepaliveInterval: target.keepaliveIntervalMs ?? 10_000,
      keepaliveCountMax: 5,
      // Ask only for the key type we know, so a server with several keys presents the right one.
      algorithms: { serverHostKey: [keyType as "ssh-ed25519"] },
      hostVerifier: (key: Buffer) => {
        const ok = expected.equals(key);
        if (!ok) mismatch = true;
        return ok;
      },
    });
  });
  return new SshHost(client);
}

/** The connection ended under a running command (host died, network gone past keepalive). */
export class ConnectionLostError extends Error {
  constructor(command: string) {
    super(`the SSH connection was lost while running: ${command.slice(0, 200)}`);
    this.name = "ConnectionLostError";
  }
}

export class SshHost implements RemoteHost {
  private sftpP: Promise<SFTPWrapper> | undefined;
  /** Set when the transport is gone; a command that ends then has no exit status to trust. */
  lost = false;
  constructor(private readonly client: Client) {
    client.on("close", () => {
      this.lost = true;
    });
  }

  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      if (opts.signal?.aborted) return reject(opts.signal.reason ?? new Error("aborted"));
      this.client.exec(command, (err, ch: ClientChannel) => {
        if (err) return reject(err);
        let stdout = "";
        let stderr = "";
        let code: number | null = null;
        let sig: string | undefined;
        let timer: NodeJS.Timeout | undefined;
        const onAbort = () => {
          try {
            ch.signal("TERM");
          } catch {}
          ch.close();
          finish(opts.signal?.reason ?? new Error("aborted"));
        };
        let done = false;
        const finish = (e?: unknown) => {
          if (done) return;
          done = true;
          if (timer) clearTimeout(timer);
          opts.signal?.removeEventListener("abort", onAbort);
          if (e) reject(e);
          else if (code === null && sig === undefined && this.lost)
            reject(new ConnectionLostError(command));
          else resolve({ code, signal: sig, stdout, stderr });
        };
        opts.signal?.addEventListener("abort", onAbort, { once: true });
        if (opts.timeoutMs !== undefined) {
          timer = setTimeout(() => {
            ch.close();
            finish(new Error(`remote command timed out after ${opts.timeoutMs} ms: ${command}`));
          }, opts.timeoutMs);
        }
        ch.on("data", (d: Buffer) => {
          const s = d.toString();
          stdout += s;
          opts.onStdout?.(s);
        });
        ch.stderr.on("data", (d: Buffer) => {
          const s = d.toString();
          stderr += s;
          opts.onStderr?.(s);
        });
        ch.on("exit", (c: number | null, s?: string) => {
          code = c;
          sig = s;
        });
        ch.on("close", () => finish());
      });
    });
  }

  private sftp(): Promise<SFTPWrapper> {
    this.sftpP ??= new Promise((resolve, reject) =>
      this.client.sftp((err, s) => (err ? reject(err) : resolve(s))),
    );
    return this.sftpP;
  }

  private async mkdirp(sftp: SFTPWrapper, dir: string): Promise<void> {
    const parts = posix.normalize(dir).split("/");
    let cur = parts[0] === "" ? "/" : "";
    for (const p of parts) {
      if (!p) continue;
      cur = cur === "/" || cur === "" ? `${cur}${p}` : `${cur}/${p}`;
      const exists = await new Promise<boolean>((r) => sftp.stat(cur, (e) => r(!e)));
      if (!exists) {
        await new Promise<void>((res, rej) => sftp.mkdir(cur, (e) => (e ? rej(e) : res())));
      }
    }
  }

  /** Writes `files` (relative paths) under `remoteDir`; `modes` overrides per file (e.g. 0o600). */
  async upload(
    remoteDir: string,
    files: Record<string, string>,
    modes: Record<string, number> = {},
  ): Promise<void> {
    const sftp = await this.sftp();
    for (const [rel, content] of Object.entries(files)) {
      if (rel.startsWith("/") || rel.split("/").includes("..")) {
        throw new Error(`refusing to upload outside ${remoteDir}: ${rel}`);
      }
      const path = posix.join(remoteDir, rel);
      await this.mkdirp(sftp, posix.dirname(path));
      const mode = modes[rel] ?? 0o644;
      await new Promise<void>((res, rej) =>
        sftp.writeFile(path, content, { mode }, (e) => (e ? rej(e) : res())),
      );
      // The file may have existed with wider permissions: set them explicitly.
      await new Promise<void>((res, rej) => sftp.chmod(path, mode, (e) => (e ? rej(e) : res())));
    }
  }

  /** Copies `remoteDir` recursively into `localDir`; returns the local paths written. */
  async download(remoteDir: string, localDir: string): Promise<string[]> {
    const sftp = await this.sftp();
    const written: string[] = [];
    const walk = async (remote: string, local: string): Promise<void> => {
      const entries = await new Promise<Array<{ filename: string; attrs: { mode: number } }>>(
        (res, rej) => sftp.readdir(remote, (e, list) => (e ? rej(e) : res(list))),
      );
      await mkdir(local, { recursive: true });
      for (const ent of entries.sort((a, b) => a.filename.localeCompare(b.filename))) {
        if (ent.filename === "." || ent.filename === ".." || ent.filename.includes("/")) continue;
        const r = posix.join(remote, ent.filename);
        const l = join(local, ent.filename);
        const type = ent.attrs.mode & 0o170000;
        if (type === 0o040000) await walk(r, l);
        else if (type === 0o100000) {
          const data = await new Promise<Buffer>((res, rej) =>
            sftp.readFile(r, (e, d) => (e ? rej(e) : res(d))),
          );
          await mkdir(dirname(l), { recursive: true });
          await writeFile(l, data);
          written.push(l);
        }
        // symlinks and specials are skipped: results are plain files
      }
    };
    await walk(remoteDir, localDir);
    return written;
  }

  close(): void {
    this.client.end();
  }
}
