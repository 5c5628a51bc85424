import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../bin/inferbench.js", import.meta.url));

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const out = mkdtempSync(join(tmpdir(), "inferbench-plan-"));
after(() => rmSync(out, { recursive: true, force: true }));

describe("inferbench plan", () => {
  it("gcp-managed: six engines on GPUs 0-5, KVCached env, least-busy, a labelled cost estimate", () => {
    const r = cli(["plan", "--stack", "gcp-managed"]);
    assert.equal(r.code, 0, r.stderr);
    for (let gpu = 0; gpu < 6; gpu++)
      assert.match(r.stdout, new RegExp(`\\s${gpu}\\s+${8001 + gpu}\\s`));
    assert.match(r.stdout, /ENABLE_KVCACHED=true KVCACHED_AUTOPATCH=1 KVCACHED_IPC_NAME=/);
    assert.match(r.stdout, /router: least-busy/);
    assert.match(r.stdout, /cost \(ESTIMATE\): ~\$\d+\.\d\d\/hour/);
  });

  it("gcp-baseline: vanilla image and round-robin", () => {
    const r = cli(["plan", "--stack", "gcp-baseline"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /vllm\/vllm-openai:v0\.14\.0@sha256:/);
    assert.match(r.stdout, /router: round-robin/);
    assert.doesNotMatch(r.stdout, /ENABLE_KVCACHED/);
  });

  it("--json prints only a valid plan on stdout; --out writes plan.json without the HF token", () => {
    const token = "hf_abcdefghijklmnopqrstuvwxyz0123";
    const r = cli(["plan", "--stack", "local", "--json", "--out", out], { HF_TOKEN: token });
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout);
    assert.equal(plan.schemaVersion, 1);
    assert.equal(plan.emulated, true);
    assert.equal(plan.engines.length, 6);
    const written = readFileSync(join(out, "plan.json"), "utf8");
    assert.deepEqual(JSON.parse(written), plan);
    assert.ok(statSync(join(out, "plan.json")).isFile());
    for (const text of [r.stdout, r.stderr, written])
      assert.ok(!text.includes(token), "token leaked");
  });

  it("bad input exits 2 with the file and the config path", () => {
    const r = cli(["plan", "--stack", "local", "--set", "gpus.count=two"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /stacks\/Pulumi\.local\.yaml/);
    assert.match(r.stderr, /--set gpus\.count: expected number; found "two"/);
    const missing = cli(["plan"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--stack/);
    const unknownFlag = cli(["plan", "--stack", "local", "--jsn"]);
    assert.equal(unknownFlag.code, 2);
    assert.match(unknownFlag.stderr, /unknown option '--jsn'/);
  });

  it("--help describes every option", () => {
    const r = cli(["plan", "--help"]);
    assert.equal(r.code, 0);
    for (const flag of ["--stack", "--set", "--json", "--out"])
      assert.ok(r.stdout.includes(flag), flag);
    const top = cli(["--help"]);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /plan/);
  });
});
