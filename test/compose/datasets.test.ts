import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { bundleHash, writePlanBundle } from "../../compose/bundle.ts";
import { datasetFiles, readDatasetFiles } from "../../compose/datasets.ts";
import { COMPOSE_FILE, renderCompose } from "../../compose/render.ts";
import { experimentPlan } from "../../experiments/plan.ts";
import { InputFileError } from "../../lib/errors.ts";
import type { DatasetPlan, StackPlan } from "../../stacks/plan-types.ts";
import { bindPlanForCompose } from "../../targets/compose-host.ts";
import { fixturePlan } from "./fixture-plan.ts";

function withDataset(d: DatasetPlan): StackPlan {
  const plan = fixturePlan("managed");
  plan.runner.workload.dataset = d;
  return plan;
}

const FILE_DATASETS: Extract<DatasetPlan, { path: string }>[] = [
  { kind: "input-file", path: "in/prompts.jsonl" },
  { kind: "sharegpt", path: "sg.json", maxConversations: 40, numPrompts: 120 },
  { kind: "azure-trace", path: "/data/azure conv.csv", timeScale: 0.5, maxRequests: 300 },
  { kind: "mooncake", path: "mc.jsonl", timeScale: 2 },
  { kind: "servegen", path: "sg/trace.csv", datasetPath: "sg/dist.json", timeScale: 1 },
];

/** The experiment plan of one arm built from a fixture plan (what the target binds). */
function experimentOf(plan: StackPlan) {
  return experimentPlan({
    stacks: [plan.stack],
    overrides: [],
    quick: false,
    plans: [plan],
    interleave: true,
  });
}

describe("dataset files travel with the compose bundle", () => {
  it("are copied into datasets/, mounted read-only, and the runner reads them there", () => {
    const plan = withDataset({
      kind: "servegen",
      path: "traces/w.csv",
      datasetPath: "other/w.csv",
      timeScale: 2,
      maxRequests: 50,
    });
    const bound = bindPlanForCompose(experimentOf(plan), "managed", false);
    const out = renderCompose(plan, {
      datasets: { "traces/w.csv": "window,rate\n", "other/w.csv": "{}" },
      experimentPlan: JSON.stringify(bound),
    });
    // Same base name twice: both kept, apart.
    assert.equal(out.files["datasets/0-w.csv"], "window,rate\n");
    assert.equal(out.files["datasets/1-w.csv"], "{}");
    const doc = parse(out.files[COMPOSE_FILE]!) as {
      services: Record<string, { volumes?: string[]; command?: string[] }>;
    };
    assert.ok(doc.services.runner!.volumes!.includes("./datasets:/inferbench/datasets:ro"));
    assert.deepEqual(doc.services.runner!.command!.slice(0, 3), [
      "runner",
      "--plan",
      "/inferbench/experiment.json",
    ]);
    // The runner reads the plan it is given: the dataset points into the mount.
    const runnerPlan = JSON.parse(out.files["experiment.json"]!) as typeof bound;
    assert.deepEqual(runnerPlan.workload.dataset, {
      kind: "servegen",
      path: "/inferbench/datasets/0-w.csv",
      datasetPath: "/inferbench/datasets/1-w.csv",
      timeScale: 2,
      maxRequests: 50,
    });
    assert.equal(runnerPlan.endpoints?.managed?.router, `http://router:${plan.router.port}`);
  });

  it("a rehearsal labels the runner's plan emulated even when the stack's plan is not", () => {
    const plan = { ...fixturePlan("managed"), emulated: false };
    assert.equal(bindPlanForCompose(experimentOf(plan), "managed", true).emulated, true);
    assert.equal(bindPlanForCompose(experimentOf(plan), "managed", false).emulated, false);
  });

  for (const d of FILE_DATASETS) {
    it(`${d.kind}: the bound plan reads the same dataset from the bundle`, () => {
      const plan = withDataset(d);
      const inContainer = Object.fromEntries(
        datasetFiles(plan).map((f) => [f.localPath, `/inferbench/${f.bundlePath}`]),
      );
      const bound = bindPlanForCompose(experimentOf(plan), "managed", false);
      const expected: Record<string, unknown> = { ...d, path: inContainer[d.path] };
      if (d.kind === "servegen" && d.datasetPath)
        expected["datasetPath"] = inContainer[d.datasetPath];
      assert.deepEqual(bound.workload.dataset, expected);
      // Only the runner's copy moves: the stored plan keeps the user's paths.
      assert.deepEqual(experimentOf(plan).workload.dataset, d);
    });
  }

  it("a plan without file datasets adds no mount and no datasets/", () => {
    const out = renderCompose(fixturePlan("managed"));
    assert.ok(!Object.keys(out.files).some((f) => f.startsWith("datasets/")));
    assert.ok(!out.files[COMPOSE_FILE]!.includes("/inferbench/datasets"));
  });

  it("the bundle hash follows the dataset's content", () => {
    const plan = withDataset({ kind: "mooncake", path: "mc.jsonl", timeScale: 1 });
    const h = (c: string) => bundleHash(renderCompose(plan, { datasets: { "mc.jsonl": c } }).files);
    assert.equal(h("a\n"), h("a\n"));
    assert.notEqual(h("a\n"), h("b\n"));
  });

  it("readDatasetFiles reads each file; a missing one names its config path", () => {
    const dir = mkdtempSync(join(tmpdir(), "ib-ds-"));
    try {
      const ok = join(dir, "trace.csv");
      writeFileSync(ok, "TIMESTAMP,ContextTokens,GeneratedTokens\n");
      const plan = withDataset({
        kind: "servegen",
        path: ok,
        datasetPath: join(dir, "missing.json"),
        timeScale: 1,
      });
      assert.throws(
        () => readDatasetFiles(plan),
        (e: unknown) =>
          e instanceof InputFileError &&
          /missing\.json: cannot read the dataset named by workload\.dataset\.datasetPath/.test(
            e.message,
          ),
      );
      const azure = withDataset({ kind: "azure-trace", path: ok, timeScale: 1 });
      assert.deepEqual(readDatasetFiles(azure), {
        [ok]: "TIMESTAMP,ContextTokens,GeneratedTokens\n",
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("plan --out's bundle writer puts the dataset beside compose.yaml", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ib-ds-out-"));
    try {
      const plan = withDataset({ kind: "input-file", path: "prompts.jsonl" });
      await writePlanBundle(dir, plan, { datasets: { "prompts.jsonl": '{"text":"hi"}\n' } });
      assert.equal(readFileSync(join(dir, "datasets/0-prompts.jsonl"), "utf8"), '{"text":"hi"}\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
