/** `inferbench plan --out DIR` for a gcp-vm and a Kubernetes stack: all or nothing (issue 15). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../bin/inferbench.js", import.meta.url));
const root = mkdtempSync(join(tmpdir(), "ib-plan-out-"));
after(() => rmSync(root, { recursive: true, force: true }));

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, HF_TOKEN: "" },
  });
  return { code: r.status, stderr: r.stderr };
}

describe("plan --out", () => {
  it("a refused render (unpinned engine image) leaves no folder and no plan.json behind", () => {
    const dir = join(root, "refused");
    // The managed default image is a tag: the renderer refuses it for a cloud target.
    const r = cli(["plan", "--stack", "gcp-managed", "--out", dir]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /not pinned by digest/);
    assert.equal(existsSync(dir), false, existsSync(dir) ? readdirSync(dir).join(", ") : "");
  });

  it("an accepted plan writes plan.json and the compose project", () => {
    const dir = join(root, "ok");
    const pin = `engine.images.managed=ghcr.io/ovg-project/kvcached-vllm@sha256:${"e".repeat(64)}`;
    const r = cli(["plan", "--stack", "gcp-managed", "--set", pin, "--out", dir]);
    assert.equal(r.code, 0, r.stderr);
    const files = readdirSync(dir).sort();
    for (const f of ["compose.yaml", "experiment.json", "plan.json", "router.json"])
      assert.ok(files.includes(f), `${f} in ${files.join(", ")}`);
  });

  it("a Kubernetes stack writes its arm's objects and the runner Job; the unpinned one writes nothing", () => {
    const refused = join(root, "kube-refused");
    assert.notEqual(cli(["plan", "--stack", "vke-managed", "--out", refused]).code, 0);
    assert.equal(existsSync(refused), false);
    const dir = join(root, "kube");
    const pin = `engine.images.managed=ghcr.io/ovg-project/kvcached-vllm@sha256:${"e".repeat(64)}`;
    const r = cli([
      "plan",
      "--stack",
      "vke-managed",
      "--set",
      pin,
      "--set",
      "hfToken=hf_abcdefghijklmnopqrstuvwxyz0123",
      "--out",
      dir,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const objects = readFileSync(join(dir, "kube", "objects.yaml"), "utf8");
    assert.match(objects, /kind: Namespace/);
    assert.match(objects, /nvidia\.com\/gpu: 1/);
    assert.match(objects, /secretKeyRef:\n\s+name: hf-token/);
    assert.ok(
      !objects.includes("hf_abcdefghijklmnopqrstuvwxyz0123"),
      "the token is never rendered",
    );
    assert.match(readFileSync(join(dir, "kube", "runner-job.yaml"), "utf8"), /kind: Job/);
  });
});
