/**
 * The Pulumi CLI runs in its own process group and gets exactly one SIGINT per abort (issue 15:
 * a terminal Ctrl-C reached it directly AND through the Automation API's abort, i.e. twice —
 * Pulumi's "stop now" instead of its graceful cancel). A fake `pulumi` records what it receives.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { detachedRunner } from "../../infra/pulumi-process.ts";

const dir = mkdtempSync(join(tmpdir(), "ib-pulumi-proc-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Counts SIGINTs into $OUT/ints, writes its process group, exits after `limit` interrupts. */
const fake = join(dir, "pulumi");
writeFileSync(
  fake,
  `#!/bin/bash
n=0
echo "$(ps -o pgid= -p $$ | tr -d ' ') $$" >"$OUT/pgid"
on_int() { n=$((n+1)); echo $n >"$OUT/ints"; [ $n -ge "\${LIMIT:-1}" ] && exit 130; }
trap on_int INT
echo started
for _ in $(seq 200); do sleep 0.05; done
exit 0
`,
);
chmodSync(fake, 0o755);

const until = async (f: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
};
const read = (f: string) => {
  try {
    return readFileSync(join(dir, f), "utf8").trim();
  } catch {
    return "";
  }
};

describe("detached Pulumi process", () => {
  it("has its own process group, so the terminal's Ctrl-C does not reach it", async () => {
    const runner = detachedRunner();
    const r = await runner.run(fake, [], { env: { OUT: dir, LIMIT: "1" } });
    const [pgid, pid] = read("pgid").split(" ").map(Number);
    assert.equal(pgid, pid, "the child leads its own group");
    const ours = Number(
      execFileSync("ps", ["-o", "pgid=", "-p", String(process.pid)], { encoding: "utf8" }),
    );
    assert.notEqual(pgid, ours, "not in the test's (the terminal's) group");
    assert.equal(r.code, 0);
    assert.equal(r.stdout, "started\n");
  });

  it("one abort → exactly one SIGINT (graceful cancel); a hard abort → the second", async () => {
    for (const f of ["ints", "pgid"]) writeFileSync(join(dir, f), "");
    const runner = detachedRunner();
    const ac = new AbortController();
    const p = runner.run(fake, [], { env: { OUT: dir, LIMIT: "2" }, signal: ac.signal });
    await until(() => read("pgid") !== "");
    ac.abort();
    ac.abort(); // a repeated abort of the same signal adds nothing
    await until(() => read("ints") === "1");
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(read("ints"), "1", "one SIGINT only");
    assert.equal(runner.running().length, 1, "still cancelling");
    runner.interruptAgain();
    const r = await p;
    assert.equal(read("ints"), "2");
    assert.equal(r.code, 130);
    assert.deepEqual(runner.running(), []);
  });

  it("an already aborted signal interrupts at once", async () => {
    writeFileSync(join(dir, "ints"), "");
    const ac = new AbortController();
    ac.abort();
    const r = await detachedRunner().run(fake, [], {
      env: { OUT: dir, LIMIT: "1" },
      signal: ac.signal,
    });
    assert.equal(r.code, 130);
  });
});
