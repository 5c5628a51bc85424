/** `inferbench plan --out DIR` for a gcp-vm and a Kubernetes stack: all or nothing (issue 15). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { planStack } from "../../targets/plan-stack.ts";

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
    // A base image given by tag: the renderer refuses it for a cloud target (the managed image
    // is built FROM it, so it is not pinned either).
    const r = cli([
      "plan",
      "--stack",
      "gcp-managed",
      "--set",
      "engine.images.baseline=vllm/vllm-openai:v0.14.0",
      "--out",
      dir,
    ]);
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

  it("the managed default: the host builds the baseline's image + kvcached from the bundle", () => {
    const dir = join(root, "built");
    const r = cli(["plan", "--stack", "gcp-managed", "--out", dir]);
    assert.equal(r.code, 0, r.stderr);
    const dockerfile = readFileSync(join(dir, "images/vllm-kvcached/Dockerfile"), "utf8");
    assert.match(dockerfile, /^FROM \$\{BASE_IMAGE\}$/m);
    assert.match(
      dockerfile,
      /pip install --no-cache-dir --no-build-isolation "kvcached==\$\{KVCACHED_VERSION\}"/,
    );
    const compose = parse(readFileSync(join(dir, "compose.yaml"), "utf8")) as {
      services: Record<
        string,
        { image: string; build?: { context: string; args: Record<string, string> } }
      >;
    };
    const baseline = planStack("gcp-baseline").plan.engines[0]!.image;
    const engines = Object.values(compose.services).filter((s) => s.build);
    assert.ok(engines.length > 0);
    for (const s of engines) {
      assert.deepEqual(s.build, {
        context: "./images/vllm-kvcached",
        args: { BASE_IMAGE: baseline, KVCACHED_VERSION: "0.1.6" },
      });
      assert.equal(
        s.image,
        `inferbench/vllm-kvcached:0.1.6-${baseline.split("@sha256:")[1]!.slice(0, 12)}`,
      );
    }
  });

  it("a Kubernetes stack writes its arm's objects and the runner Job; one it cannot pull writes nothing", () => {
    // A cluster cannot build the managed image: refused, with the build command in the hint.
    const refused = join(root, "kube-refused");
    const k = cli(["plan", "--stack", "vke-managed", "--out", refused]);
    assert.notEqual(k.code, 0);
    assert.match(k.stderr, /cannot build the managed image/);
    assert.match(
      k.stderr,
      /docker build -f compose\/vllm-kvcached.Dockerfile --build-arg BASE_IMAGE=/,
    );
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
