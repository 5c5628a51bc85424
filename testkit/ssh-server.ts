/**
 * A real SSH server on 127.0.0.1 (ssh2's Server) for tests: public-key auth against one key,
 * exec through a pluggable handler, and an SFTP subsystem backed by a temporary directory (remote
 * absolute paths are mapped under it).
 */
import { constants, mkdirSync } from "node:fs";
import { chmod, mkdir, open, readdir, stat } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join, posix } from "node:path";
import ssh2, { type Connection } from "ssh2";
import { generateEd25519, publicKeyBlob } from "../lib/ssh/keys.ts";

const { Server, utils } = ssh2;
const STATUS = utils.sftp.STATUS_CODE;
const OPEN = utils.sftp.OPEN_MODE;

export type ExecHandler = (
  command: string,
  io: { stdout: (s: string) => void; stderr: (s: string) => void },
) => Promise<number>;

export interface TestSshServer {
  port: number;
  hostPublicKey: string;
  hostPrivateKey: string;
  clientPrivateKey: string;
  clientPublicKey: string;
  root: string;
  commands: string[];
  setExec(handler: ExecHandler): void;
  close(): Promise<void>;
}

export async function startSshServer(
  root: string,
  username = "inferbench",
): Promise<TestSshServer> {
  mkdirSync(root, { recursive: true });
  const host = generateEd25519("test-host");
  const client = generateEd25519("test-client");
  const allowed = publicKeyBlob(client.publicKey);
  const commands: string[] = [];
  let execHandler: ExecHandler = async () => 0;
  const conns = new Set<Connection>();
  const local = (p: string) => join(root, posix.normalize(`/${p}`));

  const server = new Server({ hostKeys: [host.privateKey] }, (conn) => {
    conns.add(conn);
    conn.on("close", () => conns.delete(conn));
    conn.on("error", () => {});
    conn.on("authentication", (ctx) => {
      if (
        ctx.method === "publickey" &&
        ctx.username === username &&
        Buffer.from(ctx.key.data).equals(allowed)
      ) {
        // ssh2 verifies the signature when one is present.
        return ctx.accept();
      }
      ctx.reject(["publickey"]);
    });
    conn.on("ready", () => {
      conn.on("session", (accept) => {
        const session = accept();
        session.on("exec", (acc, _rej, info) => {
          const ch = acc();
          commands.push(info.command);
          execHandler(info.command, {
            stdout: (s) => ch.write(s),
            stderr: (s) => ch.stderr.write(s),
          }).then(
            (code) => {
              ch.exit(code);
              ch.end();
            },
            (err) => {
              ch.stderr.write(String(err));
              ch.exit(1);
              ch.end();
            },
          );
        });
        session.on("sftp", (acc) => serveSftp(acc(), local));
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    hostPublicKey: host.publicKey,
    hostPrivateKey: host.privateKey,
    clientPrivateKey: client.privateKey,
    clientPublicKey: client.publicKey,
    root,
    commands,
    setExec: (h) => {
      execHandler = h;
    },
    close: async () => {
      for (const c of conns) c.end();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: ssh2's SFTP server stream is loosely typed
function serveSftp(sftp: any, local: (p: string) => string): void {
  const handles = new Map<
    number,
    { fd?: import("node:fs/promises").FileHandle; dir?: string; listed?: boolean }
  >();
  let next = 0;
  const handleBuf = (id: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(id);
    return b;
  };
  const getHandle = (b: Buffer) => handles.get(b.readUInt32BE(0));
  const fail = (reqid: number, e: unknown) =>
    sftp.status(
      reqid,
      (e as NodeJS.ErrnoException).code === "ENOENT" ? STATUS.NO_SUCH_FILE : STATUS.FAILURE,
    );
  const attrsOf = (s: import("node:fs").Stats) => ({
    mode: s.mode,
    uid: 0,
    gid: 0,
    size: s.size,
    atime: Math.floor(s.atimeMs / 1000),
    mtime: Math.floor(s.mtimeMs / 1000),
  });

  sftp.on(
    "OPEN",
    async (reqid: number, filename: string, flags: number, attrs: { mode?: number }) => {
      try {
        let f = 0;
        if (flags & OPEN.WRITE) f |= flags & OPEN.READ ? constants.O_RDWR : constants.O_WRONLY;
        else f |= constants.O_RDONLY;
        if (flags & OPEN.CREAT) f |= constants.O_CREAT;
        if (flags & OPEN.TRUNC) f |= constants.O_TRUNC;
        if (flags & OPEN.EXCL) f |= constants.O_EXCL;
        if (flags & OPEN.APPEND) f |= constants.O_APPEND;
        const fd = await open(local(filename), f, attrs.mode ?? 0o644);
        const id = next++;
        handles.set(id, { fd });
        sftp.handle(reqid, handleBuf(id));
      } catch (e) {
        fail(reqid, e);
      }
    },
  );
  sftp.on("WRITE", async (reqid: number, h: Buffer, offset: number, data: Buffer) => {
    try {
      await getHandle(h)!.fd!.write(data, 0, data.length, offset);
      sftp.status(reqid, STATUS.OK);
    } catch (e) {
      fail(reqid, e);
    }
  });
  sftp.on("READ", async (reqid: number, h: Buffer, offset: number, len: number) => {
    try {
      const buf = Buffer.alloc(len);
      const { bytesRead } = await getHandle(h)!.fd!.read(buf, 0, len, offset);
      if (bytesRead === 0) sftp.status(reqid, STATUS.EOF);
      else sftp.data(reqid, buf.subarray(0, bytesRead));
    } catch (e) {
      fail(reqid, e);
    }
  });
  sftp.on("FSTAT", async (reqid: number, h: Buffer) => {
    try {
      sftp.attrs(reqid, attrsOf(await getHandle(h)!.fd!.stat()));
    } catch (e) {
      fail(reqid, e);
    }
  });
  sftp.on("FSETSTAT", async (reqid: number, h: Buffer, attrs: { mode?: number }) => {
    try {
      if (attrs.mode !== undefined) await getHandle(h)!.fd!.chmod(attrs.mode & 0o7777);
      sftp.status(reqid, STATUS.OK);
    } catch (e) {
      fail(reqid, e);
    }
  });
  sftp.on("CLOSE", async (reqid: number, h: Buffer) => {
    const entry = getHandle(h);
    handles.delete(h.readUInt32BE(0));
    await entry?.fd?.close().catch(() => {});
    sftp.status(reqid, STATUS.OK);
  });
  for (const ev of ["STAT", "LSTAT"]) {
    sftp.on(ev, async (reqid: number, path: string) => {
      try {
        sftp.attrs(reqid, attrsOf(await stat(local(path))));
      } catch (e) {
        fail(reqid, e);
      }
    });
  }
  sftp.on("SETSTAT", async (reqid: number, path: string, attrs: { mode?: number }) => {
    try {
      if (attrs.mode !== undefined) await chmod(local(path), attrs.mode & 0o7777);
      sftp.status(reqid, STATUS.OK);
    } catch (e) {
      fail(reqid, e);
    }
  });
  sftp.on("MKDIR", async (reqid: number, path: string) => {
    try {
      await mkdir(local(path));
      sftp.status(reqid, STATUS.OK);
    } catch (e) {
      fail(reqid, e);
    }
  });
  sftp.on("OPENDIR", async (reqid: number, path: string) => {
    try {
      if (!(await stat(local(path))).isDirectory()) throw new Error("not a directory");
      const id = next++;
      handles.set(id, { dir: local(path) });
      sftp.handle(reqid, handleBuf(id));
    } catch (e) {
      fail(reqid, e);
    }
  });
  sftp.on("READDIR", async (reqid: number, h: Buffer) => {
    const entry = getHandle(h);
    if (!entry?.dir) return sftp.status(reqid, STATUS.FAILURE);
    if (entry.listed) return sftp.status(reqid, STATUS.EOF);
    entry.listed = true;
    try {
      const names = await readdir(entry.dir);
      const list = [];
      for (const n of names) {
        const s = await stat(join(entry.dir, n));
        list.push({ filename: n, longname: n, attrs: attrsOf(s) });
      }
      sftp.name(reqid, list);
    } catch (e) {
      fail(reqid, e);
    }
  });
  sftp.on("REALPATH", (reqid: number, path: string) => {
    const p = posix.normalize(`/${path}`);
    sftp.name(reqid, [{ filename: p, longname: p, attrs: {} }]);
  });
}
