import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { newRunId } from "../../lib/run-id.ts";
import { type RunManifest, RunStore } from "../../results/store.ts";

const dir = mkdtempSync(join(tmpdir(), "inferbench-store-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const TOKEN = "hf_abcdefghijklmnopqrstuvwxyz012345";

function manifest(store: RunStore, status: RunManifest["status"]): RunManifest {
  return {
    schemaVersion: 1,
    runId: store.runId,
    status,
    createdAt: "2026-11-24T00:00:00.000Z",
    updatedAt: "2026-11-24T00:00:00.000Z",
    command: { stack: "local", overrides: [`hfToken=${TOKEN}`], quick: true, interleave: true },
    target: "local",
    arms: ["baseline", "managed"],
    emulated: true,
    packageVersions: {},
    images: {},
    plans: {},
    config: { hfToken: TOKEN, engine: { maxCachedTokens: 16000 } },
    host: {
      hostname: "h",
      platform: "linux",
      release: "x",
      cpus: 2,
      cpuModel: "c",
      memoryGiB: 24,
      node: "v20",
    },
  };
}

describe("run store", () => {
  it("run ids sort by time and are path-safe", () => {
    const a = newRunId(new Date("2026-11-24T13:45:12Z"), () => 0.5);
    assert.equal(a, "20261124-134512-7fff");
    assert.ok(newRunId(new Date("2026-11-24T13:45:13Z")) > a);
  });

  it("never writes a secret into the manifest, from config or from the command line", () => {
    const store = new RunStore("r1", dir);
    store.writeManifest(manifest(store, "running"));
    const text = readFileSync(store.manifestPath(), "utf8");
    assert.ok(!text.includes(TOKEN), text);
    assert.equal(store.readManifest().status, "running");
    assert.equal(
      (store.readManifest().config as { engine: { maxCachedTokens: number } }).engine
        .maxCachedTokens,
      16000,
    );
  });

  it("a completed run is never modified", () => {
    const store = new RunStore("r2", dir);
    store.writeManifest(manifest(store, "complete"));
    assert.throws(
      () => store.writeManifest(manifest(store, "running")),
      /completed runs are never modified/,
    );
  });

  it("a point is complete only when point.json exists; corrupt files are named", () => {
    const store = new RunStore("r3", dir);
    assert.equal(store.isPointComplete("baseline", "concurrency2", 0), false);
    mkdirSync(store.pointDir("baseline", "concurrency2", 0), { recursive: true });
    writeFileSync(join(store.pointDir("baseline", "concurrency2", 0), "point.json"), "{}");
    assert.equal(store.isPointComplete("baseline", "concurrency2", 0), true);
    assert.match(store.pointDir("managed", "concurrency2", 1), /managed\/points\/concurrency2-r1$/);
    mkdirSync(store.dir, { recursive: true });
    writeFileSync(store.manifestPath(), "{ not json");
    assert.throws(
      () => RunStore.open("r3", dir).readManifest(),
      /r3\/manifest\.json: corrupt run manifest/,
    );
    assert.throws(() => RunStore.open("nope", dir), /no run "nope"/);
  });
});

describe("run folder lock", () => {
  it("a second writer is refused and told who holds it; a dead holder's lock is taken over", () => {
    const dir = mkdtempSync(join(tmpdir(), "ib-lock-"));
    try {
      const store = new RunStore("20261201-000000-abcd", dir);
      const release = store.lock();
      assert.throws(
        () => new RunStore("20261201-000000-abcd", dir).lock(),
        new RegExp(`being written by pid ${process.pid} on `),
      );
      release();
      const again = store.lock();
      again();
      // A lock left by a process that is gone (a pid that cannot exist) is taken over, with a word.
      writeFileSync(
        join(store.dir, ".lock"),
        JSON.stringify({ pid: 2 ** 22 + 7, host: hostname(), since: "2026-12-01T00:00:00Z" }),
      );
      const warned: string[] = [];
      const r = store.lock((m) => warned.push(m));
      assert.match(warned[0] ?? "", /taking over the lock of pid 4194311, which is gone/);
      r();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
