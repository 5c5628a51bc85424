import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  applyOverride,
  editDistance,
  keysAtPath,
  loadStack,
  parseSetOverride,
  StackConfigError,
  suggestion,
} from "../../stacks/config.ts";
import { stackConfigSchema } from "../../stacks/schema.ts";

const dir = mkdtempSync(join(tmpdir(), "inferbench-stacks-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const GOOD = `config:
  inferbench:target: local
  inferbench:mode: baseline
  inferbench:models:
    - name: llama-3.1-8b
      hfPath: meta-llama/Llama-3.1-8B-Instruct
      replicas: 2
      profile: llama-3.1-8b@h100
  inferbench:gpus:
    count: 2
`;

function writeStack(name: string, text: string): void {
  writeFileSync(join(dir, `Pulumi.${name}.yaml`), text);
}

function expectConfigError(
  name: string,
  text: string,
  expect: { line?: number; path: string; message: RegExp },
) {
  writeStack(name, text);
  let caught: unknown;
  try {
    loadStack(name, { dir });
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof StackConfigError, `expected StackConfigError, got ${String(caught)}`);
  assert.equal(caught.exitCode, 2);
  assert.ok(caught.message.includes(`Pulumi.${name}.yaml`), "the message names the file");
  const problem = caught.problems.find((p) => p.path === expect.path);
  assert.ok(problem, `no problem at ${expect.path}: ${caught.message}`);
  assert.match(problem.message, expect.message);
  if (expect.line !== undefined) assert.equal(problem.line, expect.line, caught.message);
}

describe("stack files", () => {
  it("a good file loads with defaults filled in, bare and namespaced keys alike", () => {
    writeStack("good", GOOD.replace("inferbench:gpus", "gpus"));
    const { config } = loadStack("good", { dir });
    assert.equal(config.models[0]!.replicas, 2);
    assert.equal(config.gpus.count, 2);
    assert.equal(config.engine.maxNumBatchedTokens, 8192);
    assert.equal(config.run.destroyAfterRun, true);
    assert.equal(config.router.pollIntervalMs, 1000);
  });

  describe("malformed files: exit code 2, file, line, path, expected and found", () => {
    it("1. unknown key with a did-you-mean", () =>
      expectConfigError("m1", GOOD.replace("replicas: 2", "replicaz: 2"), {
        path: "models[0].replicaz",
        line: 7,
        message: /unknown key "replicaz" \(did you mean "replicas"\?\)/,
      }));
    it("2. unknown top-level config key", () =>
      expectConfigError("m2", `${GOOD}  inferbench:routr:\n    port: 1\n`, {
        path: "routr",
        line: 11,
        message: /did you mean "router"/,
      }));
    it("3. wrong type", () =>
      expectConfigError("m3", GOOD.replace("replicas: 2", "replicas: two"), {
        path: "models[0].replicas",
        line: 7,
        message: /expected number; found "two"/,
      }));
    it("4. missing required value", () =>
      expectConfigError("m4", GOOD.replace("  inferbench:mode: baseline\n", ""), {
        path: "mode",
        message: /expected one of "baseline", "managed"; found nothing \(missing\)/,
      }));
    it("5. bad enum", () =>
      expectConfigError("m5", GOOD.replace("target: local", "target: aws"), {
        path: "target",
        line: 2,
        message: /expected one of "local", "gcp-vm", "gke", "kubeconfig".*; found "aws"/,
      }));
    it("6. out of range", () =>
      expectConfigError("m6", `${GOOD}  inferbench:router:\n    pollIntervalMs: 10\n`, {
        path: "router.pollIntervalMs",
        line: 12,
        message: />=50; found 10/,
      }));
    it("7. YAML syntax error", () =>
      expectConfigError("m7", `${GOOD}  inferbench:slo: {ttftMs: 5\n`, {
        path: "slo.ttftMs",
        line: 12,
        message: /YAML syntax error/,
      }));
    it("8. not a mapping at the top", () =>
      expectConfigError("m8", "- just\n- a list\n", {
        path: "",
        line: 1,
        message: /expected a mapping/,
      }));
    it("9. empty models list", () =>
      expectConfigError(
        "m9",
        "config:\n  inferbench:target: local\n  inferbench:mode: managed\n  inferbench:models: []\n",
        { path: "models", message: />=1 items/ },
      ));
    it("10. duplicate model names", () =>
      expectConfigError(
        "m10",
        GOOD.replace(
          "  inferbench:gpus:",
          "    - name: llama-3.1-8b\n      hfPath: a/b-8B\n      profile: llama-3.1-8b@h100\n  inferbench:gpus:",
        ),
        { path: "models[1].name", line: 9, message: /duplicate model name/ },
      ));
    it("11. bad load point shape", () =>
      expectConfigError(
        "m11",
        `${GOOD}  inferbench:workload:\n    loadPoints:\n      - rate: 3\n`,
        {
          path: "workload.loadPoints[0]",
          line: 13,
          message: /expected \{concurrency: N\} or \{requestRate: R/,
        },
      ));
    it("12. bad Hugging Face id", () =>
      expectConfigError("m12", GOOD.replace("meta-llama/Llama-3.1-8B-Instruct", "llama"), {
        path: "models[0].hfPath",
        line: 6,
        message: /org\/name/,
      }));
    it("13. gcp-vm without SSH source ranges", () =>
      expectConfigError("m13", GOOD.replace("target: local", "target: gcp-vm"), {
        path: "gcp.sshSourceRanges",
        message: /at least one CIDR/,
      }));
    it("14. unknown top-level file key", () =>
      expectConfigError("m14", `${GOOD}confg: {}\n`, {
        path: "confg",
        line: 11,
        message: /unknown top-level key/,
      }));
    it("15. workload model not in the stack", () =>
      expectConfigError("m15", `${GOOD}  inferbench:workload:\n    models: [qwen]\n`, {
        path: "workload.models[0]",
        message: /unknown model "qwen"/,
      }));
  });

  it("a missing stack names the file and the stacks that exist", () => {
    writeStack("good", GOOD);
    assert.throws(
      () => loadStack("goof", { dir }),
      (e: unknown) =>
        e instanceof Error &&
        /Pulumi\.goof\.yaml does not exist/.test(e.message) &&
        /did you mean "good"/.test((e as { hint?: string }).hint ?? ""),
    );
  });
});

describe("--set overrides", () => {
  it("parses dotted and indexed paths, values as YAML", () => {
    assert.deepEqual(parseSetOverride("models[0].replicas=3").path, ["models", 0, "replicas"]);
    assert.deepEqual(parseSetOverride("inferbench:router.port=9").path, ["router", "port"]);
    const v: Record<string, unknown> = { models: [{ replicas: 1 }] };
    applyOverride(v, parseSetOverride("models.0.replicas=3"));
    applyOverride(v, parseSetOverride("gcp.sshSourceRanges=[1.2.3.4/32]"));
    applyOverride(v, parseSetOverride("run.destroyAfterRun=false"));
    assert.deepEqual(v, {
      models: [{ replicas: 3 }],
      gcp: { sshSourceRanges: ["1.2.3.4/32"] },
      run: { destroyAfterRun: false },
    });
  });

  it("applies over the file and reports --set as the source of a bad value", () => {
    writeStack("good", GOOD);
    assert.equal(loadStack("good", { dir, overrides: ["mode=managed"] }).config.mode, "managed");
    assert.throws(
      () => loadStack("good", { dir, overrides: ["router.polcy=least-busy"] }),
      (e: unknown) =>
        e instanceof StackConfigError &&
        e.problems[0]!.fromSet === true &&
        /--set router\.polcy: unknown key "polcy" \(did you mean "policy"\?\)/.test(e.message),
    );
  });

  it("bad paths are refused with the reason", () => {
    assert.throws(() => parseSetOverride("novalue"), /expected path=value/);
    assert.throws(() => parseSetOverride("a..b=1"), /empty segment/);
    assert.throws(
      () => applyOverride({ target: "local" }, parseSetOverride("target.x=1")),
      /"target" holds a value, not a mapping/,
    );
    assert.throws(
      () => applyOverride({ models: [] }, parseSetOverride("models[3].name=x")),
      /past the end/,
    );
  });
});

describe("suggestions", () => {
  it("edit distance and did-you-mean", () => {
    assert.equal(editDistance("kitten", "sitting"), 3);
    assert.equal(suggestion("polcy", ["policy", "port"]), ' (did you mean "policy"?)');
    assert.equal(suggestion("zzzzzz", ["policy", "port"]), "");
  });
  it("keysAtPath walks objects, arrays, defaults and unions", () => {
    assert.ok(keysAtPath(stackConfigSchema, ["models", 0]).includes("hfPath"));
    assert.ok(keysAtPath(stackConfigSchema, ["workload", "dataset"]).includes("promptsPerGroup"));
    assert.ok(keysAtPath(stackConfigSchema, ["router", "options"]).includes("loadGateThreshold"));
  });
});
