import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import ssh2 from "ssh2";
import { encodeEd25519, fingerprint, generateEd25519, publicKeyBlob } from "../../lib/ssh/keys.ts";
import { connectSsh, HostKeyMismatchError, shQuote } from "../../lib/ssh/ssh.ts";
import { startSshServer, type TestSshServer } from "../../testkit/ssh-server.ts";

describe("ed25519 OpenSSH keys", () => {
  it("ssh2 parses the private key and its public half matches the public line", () => {
    const k = generateEd25519("me@x");
    const parsed = ssh2.utils.parseKey(k.privateKey);
    assert.ok(!(parsed instanceof Error), String(parsed));
    const key = Array.isArray(parsed) ? parsed[0]! : parsed;
    assert.equal(key.type, "ssh-ed25519");
    assert.ok(Buffer.from(key.getPublicSSH()).equals(publicKeyBlob(k.publicKey)));
    const sig = key.sign(Buffer.from("hello"));
    assert.ok(key.verify(Buffer.from("hello"), sig as Buffer));
    assert.match(fingerprint(k.publicKey), /^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it("encoder is deterministic given seed and check, and pads to 8 bytes", () => {
    const seed = Buffer.alloc(32, 7);
    const pub = Buffer.alloc(32, 9);
    const a = encodeEd25519(seed, pub, "c", 1234);
    assert.deepEqual(a, encodeEd25519(seed, pub, "c", 1234));
    assert.throws(() => encodeEd25519(Buffer.alloc(31), pub, "c"));
  });

  it("ssh-keygen accepts the private key when available", (t) => {
    try {
      execFileSync("ssh-keygen", ["-?"], { stdio: "ignore" });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return t.skip("no ssh-keygen here");
    }
    const k = generateEd25519("kg");
    return (async () => {
      const dir = await mkdtemp(join(tmpdir(), "ib-kg-"));
      try {
        await writeFile(join(dir, "k"), k.privateKey, { mode: 0o600 });
        const pub = execFileSync("ssh-keygen", ["-y", "-f", join(dir, "k")]).toString();
        assert.ok(publicKeyBlob(pub).equals(publicKeyBlob(k.publicKey)));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    })();
  });

  it("shQuote quotes what the shell would split or expand", () => {
    assert.equal(shQuote("/opt/inferbench"), "/opt/inferbench");
    assert.equal(shQuote("a b"), "'a b'");
    assert.equal(shQuote("it's"), "'it'\\''s'");
  });
});

describe("SSH driver against a loopback ssh2 server", () => {
  let srv: TestSshServer;
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "ib-ssh-"));
    srv = await startSshServer(join(root, "remote"));
  });
  after(async () => {
    await srv.close();
    await rm(root, { recursive: true, force: true });
  });

  const target = () => ({
    host: "127.0.0.1",
    port: srv.port,
    username: "inferbench",
    privateKey: srv.clientPrivateKey,
    hostPublicKey: srv.hostPublicKey,
    readyTimeoutMs: 5000,
  });

  it("exec streams stdout/stderr and returns the exit code", async () => {
    srv.setExec(async (cmd, io) => {
      io.stdout("line1\n");
      io.stderr("warn\n");
      io.stdout(`ran: ${cmd}\n`);
      return 3;
    });
    const ssh = await connectSsh(target());
    try {
      const chunks: string[] = [];
      const r = await ssh.exec("echo hi", { onStdout: (s) => chunks.push(s), timeoutMs: 5000 });
      assert.equal(r.code, 3);
      assert.equal(r.stdout, "line1\nran: echo hi\n");
      assert.equal(r.stderr, "warn\n");
      assert.ok(chunks.length >= 1);
    } finally {
      ssh.close();
    }
  });

  it("upload writes files with modes; download copies a tree back", async () => {
    const ssh = await connectSsh(target());
    try {
      await ssh.upload(
        "/opt/inferbench/managed",
        { "compose.yaml": "services: {}\n", "hf.env": "HF_TOKEN=hf_x\n", "sub/a.txt": "a" },
        { "hf.env": 0o600 },
      );
      const envStat = await stat(join(srv.root, "opt/inferbench/managed/hf.env"));
      assert.equal(envStat.mode & 0o777, 0o600);
      assert.equal(
        await readFile(join(srv.root, "opt/inferbench/managed/compose.yaml"), "utf8"),
        "services: {}\n",
      );
      await assert.rejects(ssh.upload("/opt/x", { "../evil": "x" }), /outside/);

      const localDir = join(root, "results", "runs", "run-1");
      const got = await ssh.download("/opt/inferbench/managed", localDir);
      assert.equal(got.length, 3);
      assert.equal(await readFile(join(localDir, "sub/a.txt"), "utf8"), "a");
    } finally {
      ssh.close();
    }
  });

  it("refuses a host whose key differs from the provisioned one", async () => {
    const other = generateEd25519("impostor");
    await assert.rejects(
      connectSsh({ ...target(), hostPublicKey: other.publicKey }),
      HostKeyMismatchError,
    );
  });

  it("exec is aborted by an AbortSignal", async () => {
    srv.setExec(() => new Promise((r) => setTimeout(() => r(0), 3000)));
    const ssh = await connectSsh(target());
    try {
      const ac = new AbortController();
      setTimeout(() => ac.abort(new Error("stop")), 50);
      await assert.rejects(ssh.exec("sleep", { signal: ac.signal }), /stop/);
    } finally {
      ssh.close();
    }
  });
});
