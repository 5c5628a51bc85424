/**
 * Preflight refusals a user can trigger by config (issue 15): SSH ranges that let nobody in,
 * a gated model without a token, a budget below the run's worst case; the resolved project.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { sshRangeProblems } from "../../infra/ssh-ranges.ts";
import { stackFilePath } from "../../stacks/config.ts";
import {
  type ArmInput,
  checkBudget,
  checkConfig,
  checkHfToken,
  preflightReport,
  resolveProject,
} from "../../targets/gcp-vm/preflight/index.ts";
import { planStack } from "../../targets/plan-stack.ts";

const PINNED = `ghcr.io/ovg-project/kvcached-vllm@sha256:${"e".repeat(64)}`;
const MY_IP = "gcp.sshSourceRanges=[34.118.7.7/32]";
function arm(stack: string, sets: string[] = []): ArmInput {
  const { loaded, plan } = planStack(stack, [`engine.images.managed=${PINNED}`, ...sets], {
    env: {},
  });
  return { stack, config: loaded.config, plan };
}

describe("SSH source ranges", () => {
  for (const r of ["192.0.2.7/32", "198.51.100.0/24", "203.0.113.7/32", "203.0.113.128/25"]) {
    it(`refuses the documentation address ${r}, naming the key`, () => {
      const problems = checkConfig([
        arm("gcp-managed", [`gcp.sshSourceRanges=[34.118.7.7/32, ${r}]`]),
      ]).problems;
      assert.equal(problems.length, 1, JSON.stringify(problems));
      assert.match(problems[0]!.message, /gcp\.sshSourceRanges\[1\] = .* documentation range/);
      assert.match(problems[0]!.hint!, /--set 'gcp\.sshSourceRanges=\[x\.x\.x\.x\/32\]'/);
    });
  }

  it("the shipped gcp stacks carry a placeholder that preflight refuses, not a documentation address", () => {
    for (const s of ["gcp-baseline", "gcp-managed"]) {
      const text = readFileSync(stackFilePath(s), "utf8");
      assert.doesNotMatch(text, /192\.0\.2\.|198\.51\.100\.|203\.0\.113\./, s);
      const p = checkConfig([arm(s)]).problems;
      assert.ok(
        p.some((x) =>
          /gcp\.sshSourceRanges\[0\] is the placeholder 0\.0\.0\.0\/32/.test(x.message),
        ),
        `${s}: ${JSON.stringify(p)}`,
      );
    }
    assert.deepEqual(checkConfig([arm("gcp-managed", [MY_IP])]).problems, []);
  });

  it("real addresses, and wide blocks that only contain a documentation range, pass", () => {
    assert.deepEqual(sshRangeProblems(["34.118.7.7/32", "198.0.0.0/8", "10.0.0.0/8"]), []);
    assert.match(sshRangeProblems(["300.1.1.1/32"])[0]!.message, /not an IPv4 CIDR/);
  });
});

describe("HF token", () => {
  it("refuses a gated model without a token, naming the model's key", () => {
    const a = arm("gcp-managed", [MY_IP]);
    const p = checkHfToken([a], { kind: "none" });
    // casperhansen/llama-3.3-70b-instruct-awq is a community upload, not gated.
    assert.equal(p.length, 1);
    assert.match(
      p[0]!.message,
      /models\[0\]\.hfPath = meta-llama\/Llama-3\.1-8B-Instruct is a gated/,
    );
    assert.match(p[0]!.hint!, /pulumi config set --secret hfToken --stack gcp-managed/);
    assert.deepEqual(checkHfToken([a], { kind: "set" }), []);
    // A rehearsal downloads nothing.
    assert.deepEqual(
      checkHfToken([arm("gcp-managed", [MY_IP, "rehearsal=true"])], { kind: "none" }),
      [],
    );
    const q = checkHfToken([a], { kind: "unreadable", stack: "gcp-managed", reason: "passphrase" });
    assert.match(
      q[0]!.message,
      /Pulumi secret in stack gcp-managed but could not be read: passphrase/,
    );
  });

  it("a `pulumi config set --secret hfToken` value is not a token until it is decrypted", () => {
    const a = arm("gcp-managed", [MY_IP]);
    const secure = { ...a, config: { ...a.config, hfToken: { secure: "v1:abc" } } };
    const r = preflightReport([secure], {
      env: {},
      exists: () => true,
      which: () => "/bin/pulumi",
    });
    assert.ok(r.problems.some((p) => p.check === "hfToken" && /could not be read/.test(p.message)));
  });
});

describe("budget", () => {
  it("refuses a run.budgetUsd below the worst case and says which maxRunHours fits", () => {
    const over = checkBudget([arm("gcp-managed", [MY_IP, "run.budgetUsd=200"])]);
    assert.equal(over.length, 1);
    assert.match(
      over[0]!.message,
      /run\.budgetUsd = \$200\.00 is below this run's worst case of ~\$353\.96/,
    );
    assert.match(over[0]!.hint!, /gcp\.maxRunHours ≤ 2\.2/);
    assert.deepEqual(checkBudget([arm("gcp-managed", [MY_IP, "run.budgetUsd=400"])]), []);
    assert.deepEqual(checkBudget([arm("gcp-managed", [MY_IP])]), []);
    // The tighter of two arms' budgets counts.
    const two = checkBudget([
      arm("gcp-baseline", [MY_IP, "run.budgetUsd=1000"]),
      arm("gcp-managed", [MY_IP, "run.budgetUsd=100"]),
    ]);
    assert.match(two[0]!.message, /stack gcp-managed: run\.budgetUsd = \$100\.00/);
  });
});

describe("project", () => {
  it("resolves the project the way the provider does and reports it", () => {
    const noProject = arm("gcp-managed", [MY_IP]);
    assert.equal(resolveProject([noProject], { GOOGLE_CLOUD_PROJECT: "env-proj" }), "env-proj");
    assert.equal(resolveProject([noProject], { CLOUDSDK_CORE_PROJECT: "sdk-proj" }), "sdk-proj");
    const given = arm("gcp-managed", [MY_IP, "gcp.project=cfg-proj"]);
    assert.equal(resolveProject([given], { GOOGLE_CLOUD_PROJECT: "env-proj" }), "cfg-proj");
    const r = preflightReport([noProject], {
      env: { GOOGLE_CLOUD_PROJECT: "env-proj", HF_TOKEN: "x" },
      exists: () => true,
      which: () => "/bin/pulumi",
      hfToken: { kind: "set" },
    });
    assert.equal(r.project, "env-proj");
  });
});
