/**
 * --upload: the real Google Cloud Storage client library against fake-gcs-server (a real GCS API
 * emulator, built from the Go module proxy) on loopback. A bucket that does not exist is refused
 * before anything runs; a run folder goes up CRC32C-verified (a 6 MiB file as a resumable
 * session); an upload cut short resumes, skipping what is there; `inferbench run --upload` sends
 * the run it made. Skipped, saying why, when the emulator is not built (`npm run test:upload`
 * builds it; CI requires it).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { CRC32C, Storage } from "@google-cloud/storage";
import { UserError } from "../../lib/errors.ts";
import { filesUnder, gcsSink } from "../../results/sinks/gcs.ts";
import { parseSinkUrl } from "../../results/sinks/index.ts";
import { type FakeGcs, fakeGcsBinary, startFakeGcs } from "../../testkit/fake-gcs.ts";

describe("upload URLs (pure)", () => {
  it("takes gs://bucket[/prefix] and refuses anything else, saying what it expected", () => {
    assert.deepEqual(parseSinkUrl("gs://results"), { scheme: "gs", bucket: "results", prefix: "" });
    assert.deepEqual(parseSinkUrl("gs://my-bucket/team/ab/"), {
      scheme: "gs",
      bucket: "my-bucket",
      prefix: "team/ab",
    });
    assert.throws(() => parseSinkUrl("s3://x/y"), /--upload s3:\/\/x\/y: expected gs:\/\/BUCKET/);
    assert.throws(() => parseSinkUrl("gs://UPPER"), /expected gs:\/\/BUCKET/);
    assert.throws(() => parseSinkUrl("gs://bkt/a/../c"), /may not hold \. or \.\. segments/);
  });
});

const found = fakeGcsBinary();
describe("upload to a GCS emulator", { skip: "skip" in found ? found.skip : false }, () => {
  let gcs: FakeGcs;
  let storage: Storage;
  let root: string;
  before(async () => {
    gcs = await startFakeGcs((found as { bin: string }).bin);
    storage = new Storage({ apiEndpoint: gcs.url, projectId: "inferbench-test" });
    await storage.createBucket("results");
    root = mkdtempSync(join(tmpdir(), "ib-upload-"));
  });
  after(async () => {
    await gcs?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  /** A run folder: a manifest, two points, and a 6 MiB file (above the resumable threshold). */
  const runFolder = (id: string) => {
    const dir = join(root, "runs", id);
    for (const p of ["baseline/points/concurrency1", "managed/points/concurrency1"]) {
      mkdirSync(join(dir, p), { recursive: true });
      writeFileSync(join(dir, p, "point.json"), JSON.stringify({ p, id }));
    }
    writeFileSync(join(dir, "manifest.json"), `{"runId": "${id}"}\n`);
    writeFileSync(join(dir, "baseline", "records.bin"), Buffer.alloc(6 * 1024 * 1024, 7));
    return dir;
  };
  const objects = async (prefix: string) =>
    (await storage.bucket("results").getFiles({ prefix }))[0];

  it("preflight: a missing bucket is refused (exit 2) with the fix; a real one keeps no marker", async () => {
    await assert.rejects(gcsSink("no-such-bucket", "x", { storage }).preflight(), (e) => {
      assert.ok(e instanceof UserError);
      assert.equal(e.exitCode, 2);
      assert.match(e.message, /--upload gs:\/\/no-such-bucket\/x: the bucket does not exist/);
      assert.match(e.hint ?? "", /gcloud storage buckets create/);
      return true;
    });
    await gcsSink("results", "pre", { storage }).preflight();
    assert.deepEqual(await objects("pre/"), [], "the marker was removed");
  });

  it("a run folder goes up object by object, each CRC32C equal to its file", async () => {
    const dir = runFolder("20261202-100000-aaaa");
    const r = await gcsSink("results", "team/ab", { storage }).uploadDir(dir);
    assert.equal(r.url, "gs://results/team/ab/20261202-100000-aaaa/");
    assert.equal(r.uploaded, 4);
    assert.equal(r.skipped, 0);
    const got = await objects("team/ab/20261202-100000-aaaa/");
    assert.deepEqual(
      got.map((f) => f.name.replace("team/ab/20261202-100000-aaaa/", "")).sort(),
      filesUnder(dir),
    );
    for (const f of got) {
      const rel = f.name.replace("team/ab/20261202-100000-aaaa/", "");
      const local = (await CRC32C.fromFile(join(dir, rel))).toString();
      assert.equal(f.metadata.crc32c, local, rel);
    }
    const [big] = await storage
      .bucket("results")
      .file("team/ab/20261202-100000-aaaa/baseline/records.bin")
      .download();
    assert.equal(big.length, 6 * 1024 * 1024);
  });

  it("an upload cut short resumes: what is there is skipped, a changed file goes up again", async () => {
    const dir = runFolder("20261202-110000-bbbb");
    const sink = gcsSink("results", "resume", { storage });
    const ac = new AbortController();
    await assert.rejects(
      sink.uploadDir(dir, { signal: ac.signal, onFile: () => ac.abort(new Error("cut")) }),
      /cut/,
    );
    assert.equal((await objects("resume/")).length, 1, "one object made it before the cut");
    const again = await sink.uploadDir(dir);
    assert.deepEqual([again.uploaded, again.skipped], [3, 1]);
    writeFileSync(join(dir, "manifest.json"), '{"runId": "changed"}\n');
    const third = await sink.uploadDir(dir);
    assert.deepEqual([third.uploaded, third.skipped], [1, 3]);
  });

  it("inferbench run --upload: a missing bucket refuses before any run; a run's folder goes up whole", () => {
    const BIN = fileURLToPath(new URL("../../bin/inferbench.js", import.meta.url));
    const runs = join(root, "cli-runs");
    const { STORAGE_EMULATOR_HOST: _unset, ...rest } = process.env;
    const env = { ...rest, INFERBENCH_GCS_ENDPOINT: gcs.url, HF_TOKEN: "" };
    const args = (url: string) => [
      BIN,
      "run",
      "--stack",
      "local",
      "--quick",
      "--set",
      "models=[{name: llama-3.1-8b, hfPath: meta-llama/Llama-3.1-8B-Instruct, replicas: 1, profile: llama-3.1-8b@h100}]",
      "--set",
      "gpus.count=1",
      "--set",
      "workload.loadPoints=[{concurrency: 2}]",
      "--set",
      "workload.requestCount=4",
      "--set",
      "engine.emulatorStartupDelaySec=0",
      "--runs-dir",
      runs,
      "--upload",
      url,
    ];
    const refused = spawnSync(process.execPath, args("gs://missing-bucket/x"), {
      encoding: "utf8",
      env,
      timeout: 120_000,
    });
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /the bucket does not exist/);
    assert.throws(() => readdirSync(runs), /ENOENT/, "no run folder was made");
    const r = spawnSync(process.execPath, args("gs://results/ci"), {
      encoding: "utf8",
      env,
      timeout: 300_000,
    });
    assert.ok([0, 3].includes(r.status!), r.stderr);
    const [id] = readdirSync(runs);
    assert.match(r.stderr, new RegExp(`uploaded .*${id} → gs://results/ci/${id}/`));
    return objects(`ci/${id}/`).then((got) => {
      const names = got.map((f) => f.name.slice(`ci/${id}/`.length)).sort();
      assert.deepEqual(names, filesUnder(join(runs, id!)));
      assert.ok(names.includes("manifest.json") && names.includes("report.html"));
    });
  });
});
