/**
 * A real rehearsal host (network namespace + OpenSSH sshd + dockerd) brought up, used once over
 * the kit's SSH client and torn down. Skipped with the reason when this machine cannot do it
 * (not root, no namespaces) or the cached install is missing: the test installs nothing and
 * builds nothing (`npm run rehearsal:install` fills the cache).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, describe, it } from "node:test";
import { generateEd25519 } from "../../lib/ssh/keys.ts";
import { connectSsh, HostKeyMismatchError } from "../../lib/ssh/ssh.ts";
import {
  runScript,
  sshTargetOf,
  startVmHost,
  stopAllVmHosts,
  VM_HOST_SCRIPT,
  vmHostAvailable,
} from "../../rehearsal/vm-host.ts";

const avail = await vmHostAvailable();
const skip = avail.ok ? false : `rehearsal host unavailable: ${avail.reason}`;

describe("rehearsal VM host", { skip, timeout: 120_000 }, () => {
  after(stopAllVmHosts);

  it("comes up, runs a command over SSH as an unprivileged docker user, and leaves nothing", async () => {
    const name = `t${process.pid % 100000}`;
    const h = await startVmHost({ name });
    let stopped = false;
    try {
      assert.match(h.host, /^10\.231\.\d+\.2$/);
      const ssh = await connectSsh(sshTargetOf(h));
      try {
        const r = await ssh.exec("id -u; docker version --format '{{.Server.Version}}'");
        assert.equal(r.code, 0, r.stderr);
        const [uid, server] = r.stdout.trim().split("\n");
        assert.notEqual(Number(uid), 0);
        assert.match(server!, /^26\.1\.5/);
      } finally {
        ssh.close();
      }
      // The key is pinned: the same address with another expected host key is refused.
      const other = generateEd25519("not-the-host");
      await assert.rejects(
        connectSsh({ ...sshTargetOf(h), hostPublicKey: other.publicKey }),
        HostKeyMismatchError,
      );
      // Key-only login: a key that is not authorized gets no session.
      await assert.rejects(connectSsh({ ...sshTargetOf(h), privateKey: other.privateKey }));
      await h.stop();
      stopped = true;
      assert.equal(existsSync(`/run/netns/${name}`), false);
      assert.equal(existsSync(h.stateDir), false);
      const status = await runScript(VM_HOST_SCRIPT, ["status", name]);
      assert.equal(status.code, 3, status.stdout);
    } finally {
      if (!stopped) await h.stop();
    }
  });
});
