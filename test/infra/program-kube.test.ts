/**
 * The Pulumi program for a kubeconfig stack under pulumi.runtime.setMocks (a hand `pulumi up`): a
 * Kubernetes provider on the stack's kubeconfig (a secret), and the arm's rendered objects as
 * typed resources — namespace, HF token Secret, engines and router with skipAwait — no runner.
 * (The same component runs under the real engine and provider in `npm run rehearse:kube`.)
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";

const resources: { type: string; name: string; inputs: Record<string, unknown> }[] = [];
await pulumi.runtime.setMocks(
  {
    newResource(args) {
      resources.push({ type: args.type, name: args.name, inputs: args.inputs });
      return { id: `${args.name}-id`, state: args.inputs };
    },
    call: (args) => args.inputs,
  },
  "inferbench",
  "vke-managed",
  false,
);

const HF = "hf_kubeprogramtoken0123456789abc";
const KUBECONFIG =
  "apiVersion: v1\nkind: Config\nclusters: []\nusers: [{name: u, user: {token: sekrit-token-xyz}}]\n";
const pinned = `ghcr.io/ovg-project/kvcached-vllm@sha256:${"e".repeat(64)}`;
const stackValues = {
  target: "kubeconfig",
  mode: "managed",
  models: [
    {
      name: "llama-3.1-8b",
      hfPath: "meta-llama/Llama-3.1-8B-Instruct",
      replicas: 2,
      maxModelLen: 8192,
      profile: "llama-3.1-8b@h100",
    },
  ],
  gpus: { type: "h100-80gb", count: 2 },
  engine: { images: { managed: pinned } },
  kubeconfig: { content: KUBECONFIG, nodeSelector: { pool: "gpu" } },
};
const config: Record<string, string> = { "inferbench:hfToken": HF };
for (const [k, v] of Object.entries(stackValues))
  config[`inferbench:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
pulumi.runtime.setAllConfig(config, ["inferbench:hfToken", "inferbench:kubeconfig"]);

const { program } = await import("../../infra/program.ts");

// Pulumi's wire sentinel for secrets (sdk/nodejs/runtime/rpc.ts specialSigKey / specialSecretSig).
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";
const isSecret = (v: unknown) =>
  (v as Record<string, unknown> | undefined)?.[SECRET_SIG] === SECRET_VALUE;

const ofType = (t: string) => resources.filter((r) => r.type === t);

describe("Pulumi program, kubeconfig target (mocks)", () => {
  let out: ReturnType<typeof program>;
  before(async () => {
    out = program();
    await new Promise((r) => setTimeout(r, 200));
  });

  it("a provider on the stack's kubeconfig, kept secret", () => {
    const p = ofType("pulumi:providers:kubernetes");
    assert.equal(p.length, 1);
    assert.equal(String(p[0]!.inputs.deleteUnreachable), "true");
    assert.ok(isSecret(p[0]!.inputs.kubeconfig), "the kubeconfig must travel as a secret");
  });

  it("the arm's objects: namespace, token Secret, two engines and the router with skipAwait, no runner", () => {
    assert.equal(ofType("kubernetes:core/v1:Namespace").length, 1);
    const deps = ofType("kubernetes:apps/v1:Deployment");
    assert.deepEqual(deps.map((d) => (d.inputs.metadata as { name: string }).name).sort(), [
      "llama-3-1-8b-0",
      "llama-3-1-8b-1",
      "router",
    ]);
    for (const r of [...deps, ...ofType("kubernetes:core/v1:Service")])
      assert.equal(
        (r.inputs.metadata as { annotations: Record<string, string> }).annotations[
          "pulumi.com/skipAwait"
        ],
        "true",
      );
    const secret = ofType("kubernetes:core/v1:Secret");
    assert.equal(secret.length, 1);
    const data = secret[0]!.inputs.stringData as Record<string, unknown>;
    assert.ok(isSecret(data) || isSecret(data.HF_TOKEN), "the token must travel as a secret");
    assert.equal(ofType("kubernetes:batch/v1:Job").length, 0);
    assert.ok(
      !ofType("kubernetes:core/v1:ConfigMap").some(
        (c) => (c.inputs.metadata as { name: string }).name === "experiment",
      ),
    );
    const engine = deps.find(
      (d) => (d.inputs.metadata as { name: string }).name === "llama-3-1-8b-0",
    )!;
    const pod = (engine.inputs.spec as { template: { spec: { nodeSelector: unknown } } }).template
      .spec;
    assert.deepEqual(pod.nodeSelector, { pool: "gpu" });
  });

  it("outputs name the namespace and the manual run id", async () => {
    assert.equal(out.runId, "vke-managed-manual");
    const ns = await new Promise((r) => out.namespace!.apply(r));
    assert.equal(ns, "inferbench-managed-vke-managed-manual");
  });
});
