import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Command } from "commander";
import { parse } from "yaml";
import { registerProfile } from "../../cli/commands/profile.ts";
import { bundleHash, writePlanBundle } from "../../compose/bundle.ts";
import { datasetFiles, readDatasetFiles } from "../../compose/datasets.ts";
import { COMPOSE_FILE, renderCompose } from "../../compose/render.ts";
import { profileArgs } from "../../compose/runner-script.ts";
import { InputFileError } from "../../lib/errors.ts";
import { planProfile, profileSchema } from "../../loadgen/profile-options.ts";
import type { DatasetPlan, StackPlan } from "../../stacks/plan-types.ts";
import { fixturePlan } from "./fixture-plan.ts";

function withDataset(d: DatasetPlan): StackPlan {
  const plan = fixturePlan("managed");
  plan.runner.workload.dataset = d;
  return plan;
}

/** What `inferbench profile` makes of argv: the raw options through its own parser. */
function parseProfileArgv(argv: string[]) {
  const p = new Command("inferbench").exitOverride();
  registerProfile(p);
  const cmd = p.commands[0]!.exitOverride();
  let raw: Record<string, unknown> = {};
  let pa: string[] = [];
  cmd.action((paArgs: string[], opts: Record<string, unknown>) => {
    pa = paArgs;
    raw = opts;
  });
  p.parse(["node", "inferbench", ...argv]);
  return planProfile(profileSchema.parse(raw), pa);
}

const FILE_DATASETS: Extract<DatasetPlan, { path: string }>[] = [
  { kind: "input-file", path: "in/prompts.jsonl" },
  { kind: "sharegpt", path: "sg.json", maxConversations: 40, numPrompts: 120 },
  { kind: "azure-trace", path: "/data/azure conv.csv", timeScale: 0.5, maxRequests: 300 },
  { kind: "mooncake", path: "mc.jsonl", timeScale: 2 },
  { kind: "servegen", path: "sg/trace.csv", datasetPath: "sg/dist.json", timeScale: 1 },
];

describe("dataset files travel with the compose bundle", () => {
  it("are copied into datasets/, mounted read-only, and the runner reads them there", () => {
    const plan = withDataset({
      kind: "servegen",
      path: "traces/w.csv",
      datasetPath: "other/w.csv",
      timeScale: 2,
      maxRequests: 50,
    });
    const out = renderCompose(plan, {
      datasets: { "traces/w.csv": "window,rate\n", "other/w.csv": "{}" },
    });
    // Same base name twice: both kept, apart.
    assert.equal(out.files["datasets/0-w.csv"], "window,rate\n");
    assert.equal(out.files["datasets/1-w.csv"], "{}");
    const doc = parse(out.files[COMPOSE_FILE]!) as {
      services: Record<string, { volumes?: string[] }>;
    };
    assert.ok(doc.services.runner!.volumes!.includes("./datasets:/inferbench/datasets:ro"));
    assert.match(
      out.files["run-benchmark.sh"]!,
      / --workload servegen --input-file \/inferbench\/datasets\/0-w\.csv --servegen-dataset \/inferbench\/datasets\/1-w\.csv --time-scale 2 --max-requests 50 /,
    );
  });

  for (const d of FILE_DATASETS) {
    it(`${d.kind}: the runner's flags parse back to the same dataset, read from the bundle`, () => {
      const plan = withDataset(d);
      const inContainer = Object.fromEntries(
        datasetFiles(plan).map((f) => [f.localPath, `/inferbench/${f.bundlePath}`]),
      );
      const argv = profileArgs(
        plan,
        plan.runner.loadPoints[0]!,
        "http://router:8000",
        "/results/x",
        inContainer,
      );
      const parsed = parseProfileArgv(argv);
      const expected: Record<string, unknown> = { ...d, path: inContainer[d.path] };
      if (d.kind === "servegen" && d.datasetPath)
        expected["datasetPath"] = inContainer[d.datasetPath];
      const got = Object.fromEntries(
        Object.entries(parsed.base.workload.dataset).filter(([, v]) => v !== undefined),
      );
      assert.deepEqual(got, expected);
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
