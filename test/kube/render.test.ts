/**
 * kube/render.ts: the objects of one arm, from plan() of the shipped stacks, validated against the
 * Kubernetes OpenAPI schema (kubernetes-models) and snapshot-tested.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { stringify } from "yaml";
import { experimentPlan } from "../../experiments/plan.ts";
import {
  gpuGroups,
  type KubeObject,
  kubeName,
  kubeNamespace,
  LABEL,
  renderKubeArm,
  renderRunnerJob,
  runnerJobName,
  SHARD_PORT,
  SHARD_SERVICE,
  supervisorScript,
} from "../../kube/render.ts";
import { validateKubeObject, validateKubeObjects } from "../../kube/validate.ts";
import type { ExperimentPlan } from "../../runner/plan-file.ts";
import type { EnginePlan } from "../../stacks/plan-types.ts";
import { bindPlanForKube } from "../../targets/kube/bind.ts";
import { planStack } from "../../targets/plan-stack.ts";
import { matchSnapshot } from "../compose/snapshot.ts";

const PINNED = `ghcr.io/ovg-project/kvcached-vllm@sha256:${"e".repeat(64)}`;
const RUN_ID = "20261202-010203-ab12";

function pair(
  prefix: "vke" | "gke",
  overrides: string[] = [],
  arms = ["baseline", "managed"],
): ExperimentPlan {
  const sets = [`engine.images.managed=${PINNED}`, ...overrides];
  const plans = arms.map((a) => planStack(`${prefix}-${a}`, sets).plan);
  return experimentPlan({
    stacks: plans.map((p) => p.stack),
    overrides: sets,
    quick: false,
    plans,
    interleave: true,
  });
}

const OPTS = {
  runId: RUN_ID,
  namespacePrefix: "inferbench",
  rehearsal: false,
  nodeSelector: { "machine.cluster.vke.volcengine.com/gpu-name": "NVIDIA-H100" },
  tolerations: [
    { key: "nvidia.com/gpu", operator: "Exists" as const, effect: "NoSchedule" as const },
  ],
  hfTokenSecret: "hf-token",
};

type Opts = Omit<Parameters<typeof renderKubeArm>[1], "experimentPlan">;

/** What the target does: bind the plan to the namespace's Services, then render. */
function render(plan: ExperimentPlan, arm: "baseline" | "managed", opts: Opts) {
  const bound = bindPlanForKube(plan, arm, opts.rehearsal);
  const out = renderKubeArm(plan.arms[arm]!, { ...opts, experimentPlan: JSON.stringify(bound) });
  return { ...out, boundPlan: bound };
}

const byKind = (objs: KubeObject[], kind: string) => objs.filter((o) => o.kind === kind);
// biome-ignore lint/suspicious/noExplicitAny: walking rendered objects
type Any = any;

describe("kube renderer", () => {
  for (const prefix of ["vke", "gke"] as const) {
    for (const arm of ["baseline", "managed"] as const) {
      it(`renders ${prefix}-${arm} from plan() valid against the Kubernetes schema (snapshot)`, () => {
        const plan = pair(prefix);
        const out = render(plan, arm, OPTS);
        validateKubeObjects(out.objects);
        assert.equal(out.namespace, `inferbench-${arm}-${RUN_ID}`);
        assert.equal(out.objects[0]!.kind, "Namespace");
        // 6 engines on GPUs 0-5, dedicated: one Deployment + one Service each; router; configs.
        assert.equal(byKind(out.objects, "Deployment").length, 7);
        assert.equal(byKind(out.objects, "Service").length, 7);
        for (const o of out.objects) {
          assert.equal(o.metadata.labels[LABEL.run], RUN_ID, `${o.kind} ${o.metadata.name}`);
          assert.equal(o.metadata.labels[LABEL.arm], arm);
          if (o.kind !== "Namespace") assert.equal(o.metadata.namespace, out.namespace);
        }
        // The bound plan is checked on its own below; the snapshot keeps the objects readable.
        const shown = out.objects.map((o) =>
          o.metadata.name === "experiment"
            ? { ...o, data: { "experiment.json": "<the bound experiment plan>" } }
            : o,
        );
        matchSnapshot(
          import.meta.url,
          `${prefix}-${arm}.yaml`,
          shown.map((o) => stringify(o, { lineWidth: 0 })).join("---\n"),
        );
      });
    }
  }

  it("engines: GPU limits, token from a Secret, KVCached env and host IPC on managed, probes", () => {
    const plan = pair("vke");
    for (const arm of ["baseline", "managed"] as const) {
      const out = render(plan, arm, OPTS);
      const engines = byKind(out.objects, "Deployment").filter((d) => d.metadata.name !== "router");
      for (const d of engines) {
        const pod = (d as Any).spec.template.spec;
        const c = pod.containers[0];
        assert.equal(c.resources.limits["nvidia.com/gpu"], 1);
        assert.deepEqual(pod.nodeSelector, OPTS.nodeSelector);
        assert.deepEqual(pod.tolerations, OPTS.tolerations);
        const token = c.env.find((e: Any) => e.name === "HF_TOKEN");
        assert.deepEqual(token.valueFrom, { secretKeyRef: { name: "hf-token", key: "HF_TOKEN" } });
        assert.equal(token.value, undefined);
        assert.equal(c.startupProbe.httpGet.path, "/health");
        assert.ok(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold >= 1800);
        assert.equal(c.readinessProbe.httpGet.path, "/health");
        assert.ok(pod.terminationGracePeriodSeconds > 0);
        assert.ok(pod.volumes.some((v: Any) => v.emptyDir?.medium === "Memory"));
        const kvEnv = c.env.some((e: Any) => e.name.startsWith("ENABLE_KVCACHED"));
        assert.equal(kvEnv, arm === "managed", `${arm} KVCached env`);
        assert.equal(pod.hostIPC === true, arm === "managed");
        assert.equal(c.image, arm === "managed" ? PINNED : plan.arms.baseline!.engines[0]!.image);
      }
    }
  });

  it("no secret value is ever rendered, whatever the token", () => {
    const plan = pair("vke");
    const text = JSON.stringify(render(plan, "managed", OPTS).objects);
    assert.ok(!/hf_[A-Za-z0-9]{10,}/.test(text));
    assert.ok(!byKind(render(plan, "managed", OPTS).objects, "Secret").length);
  });

  it("the runner's plan is bound to Service names, and the router's backends too", () => {
    const plan = pair("vke");
    const out = render(plan, "managed", OPTS);
    const ep = out.boundPlan.endpoints!.managed!;
    assert.equal(ep.router, `http://router:${plan.arms.managed!.router.port}`);
    for (const [engine, url] of Object.entries(ep.engines))
      assert.match(url, new RegExp(`^http://${kubeName(engine)}:\\d+$`));
    const cm = out.objects.find((o) => o.metadata.name === "router-config") as Any;
    const router = JSON.parse(cm.data["router.json"]);
    const services = new Set(byKind(out.objects, "Service").map((s) => s.metadata.name));
    for (const list of Object.values(router.backends) as Any[])
      for (const b of list)
        assert.ok(services.has(b.host), `router backend ${b.host} has a Service`);
    const exp = out.objects.find((o) => o.metadata.name === "experiment") as Any;
    assert.deepEqual(JSON.parse(exp.data["experiment.json"]).endpoints.managed, ep);
    assert.equal(JSON.parse(exp.data["experiment.json"]).emulated, false);
  });

  it("rehearsal: engine-sim, no GPU limits, labelled emulated, short grace", () => {
    const plan = pair("vke");
    const out = render(plan, "baseline", {
      ...OPTS,
      rehearsal: true,
      imagePullPolicy: "Never",
    });
    validateKubeObjects(out.objects);
    assert.equal(out.boundPlan.emulated, true);
    for (const d of byKind(out.objects, "Deployment")) {
      const pod = (d as Any).spec.template.spec;
      const c = pod.containers[0];
      assert.equal(c.imagePullPolicy, "Never");
      assert.equal(JSON.stringify(c.resources).includes("nvidia.com/gpu"), false);
      assert.equal(d.metadata.labels[LABEL.emulated], "true");
      if (d.metadata.name !== "router") {
        assert.equal(c.image, "inferbench/engine-sim:0.1.0");
        assert.ok(c.args.includes("--profile"));
        assert.equal(pod.terminationGracePeriodSeconds, 5);
      }
    }
    assert.ok(out.readyTimeoutSec < 1800);
  });

  it("packed placement puts engines that share GPUs in one pod, one Service each", () => {
    // KVCached's case: six managed engines packed onto three GPUs (no static slices to check).
    const plan = pair("vke", ["placement=packed", "gpus.count=3"], ["managed"]);
    const out = render(plan, "managed", OPTS);
    validateKubeObjects(out.objects);
    const engines = byKind(out.objects, "Deployment").filter((d) => d.metadata.name !== "router");
    const gpus = plan.arms.managed!.engines.map((e) => e.gpus.join(","));
    assert.equal(engines.length, new Set(gpus).size);
    const c = (engines[0] as Any).spec.template.spec.containers[0];
    assert.equal(c.resources.limits["nvidia.com/gpu"], 1);
    assert.equal(c.command[0], "bash");
    assert.equal(c.ports.length, gpus.filter((g) => g === gpus[0]).length);
    assert.ok(c.ports.length > 1);
    // Each engine process carries its own KVCached IPC name; the container env has none.
    const script: string = c.command[2];
    const names = [...script.matchAll(/KVCACHED_IPC_NAME=(\S+)/g)].map((m) => m[1]);
    assert.equal(new Set(names).size, c.ports.length);
    assert.ok(!c.env.some((e: Any) => e.name === "KVCACHED_IPC_NAME"));
    assert.ok(c.startupProbe.exec.command.join(" ").includes("/health"));
    assert.equal(byKind(out.objects, "Service").length, 7);
  });

  it("gpuGroups: engines sharing any GPU end in one group; disjoint ones apart (property)", () => {
    const engine = (i: number, gpus: number[]) => ({ name: `e${i}`, gpus }) as EnginePlan;
    fc.assert(
      fc.property(
        fc.array(fc.uniqueArray(fc.integer({ min: 0, max: 7 }), { minLength: 1, maxLength: 3 }), {
          minLength: 1,
          maxLength: 8,
        }),
        (sets) => {
          const engines = sets.map((g, i) => engine(i, g));
          const groups = gpuGroups(engines);
          assert.equal(groups.flat().length, engines.length);
          const groupOf = new Map(groups.flatMap((g, gi) => g.map((e) => [e.name, gi] as const)));
          for (const a of engines)
            for (const b of engines)
              if (a.gpus.some((x) => b.gpus.includes(x)))
                assert.equal(groupOf.get(a.name), groupOf.get(b.name));
          for (let i = 0; i < groups.length; i++)
            for (let j = i + 1; j < groups.length; j++) {
              const gi = new Set(groups[i]!.flatMap((e) => e.gpus));
              assert.ok(
                !groups[j]!.some((e) => e.gpus.some((x) => gi.has(x))),
                "groups share a GPU",
              );
            }
        },
      ),
    );
  });

  it("names: namespaces fit 63 characters, engine names become DNS-1035 labels", () => {
    assert.equal(kubeName("qwen2.5-7b-0"), "qwen2-5-7b-0");
    assert.equal(kubeName("3llama"), "llama");
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z][a-z0-9-]{0,80}$/), (prefix) => {
        const ns = kubeNamespace(prefix, "baseline", RUN_ID);
        assert.ok(ns.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns), ns);
        assert.ok(ns.endsWith(`-baseline-${RUN_ID}`));
      }),
    );
  });

  it("refuses unpinned engine images and engines whose Kubernetes names collide", () => {
    const plan = pair("vke", ["engine.images.managed=ghcr.io/x/kvcached-vllm:latest"]);
    assert.throws(() => render(plan, "managed", OPTS), /not pinned by digest/);
    assert.doesNotThrow(() => render(plan, "managed", { ...OPTS, allowUnpinnedImages: true }));
  });

  it("the runner Job: runs the plan's steps, keeps results until collected, bounded", () => {
    const plan = pair("vke");
    const steps = plan.steps.filter((s) => s.arm === "managed").slice(0, 2);
    const job = renderRunnerJob(
      plan.arms.managed!,
      steps.map((s) => s.index),
      OPTS,
      {
        deadlineSec: 3600,
        collectWaitSec: 120,
      },
    ) as Any;
    validateKubeObject(job);
    assert.equal(job.metadata.name, runnerJobName(steps.map((s) => s.index)));
    assert.equal(job.spec.backoffLimit, 0);
    assert.equal(job.spec.activeDeadlineSeconds, 3720);
    const c = job.spec.template.spec.containers[0];
    const script: string = c.command[2];
    assert.ok(script.includes(`--steps ${steps.map((s) => s.index).join(",")}`));
    assert.ok(script.includes(`--out /results/${RUN_ID}`));
    assert.ok(script.includes("/results/.collected") && script.includes("-lt 120"));
    assert.ok(job.spec.template.spec.volumes.some((v: Any) => v.name === "results" && v.emptyDir));
    assert.equal(job.metadata.labels[LABEL.role], "runner");
  });

  it("runner.parallelism: an indexed Job of shards that find shard 0 by its pod DNS name", () => {
    const plan = pair("vke", ["runner.parallelism=3", "workload.loadPoints=[{concurrency: 8}]"]);
    const arm = render(plan, "managed", OPTS);
    validateKubeObjects(arm.objects);
    const svc = arm.objects.find((o) => o.metadata.name === SHARD_SERVICE) as Any;
    assert.equal(svc.spec.clusterIP, "None");
    assert.equal(svc.spec.publishNotReadyAddresses, true);
    assert.equal(svc.spec.selector[LABEL.role], "runner");
    const steps = plan.steps.filter((s) => s.arm === "managed").map((s) => s.index);
    const job = renderRunnerJob(plan.arms.managed!, steps, OPTS, { deadlineSec: 60 }) as Any;
    validateKubeObject(job);
    const name = runnerJobName(steps);
    assert.deepEqual(
      [job.spec.completionMode, job.spec.completions, job.spec.parallelism],
      ["Indexed", 3, 3],
    );
    assert.equal(job.spec.backoffLimitPerIndex, 0, "a failed follower does not end shard 0");
    assert.equal(job.spec.backoffLimit, undefined);
    const pod = job.spec.template.spec;
    assert.equal(pod.subdomain, SHARD_SERVICE);
    // Shard 0's selector matches the pods the Service selects.
    const term = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0];
    assert.deepEqual(term.podAffinityTerm.labelSelector.matchLabels, svc.spec.selector);
    const script: string = pod.containers[0].command[2];
    assert.ok(script.includes('--shard "$JOB_COMPLETION_INDEX/3"'), script);
    assert.ok(
      script.includes(`--coordinator http://${name}-0.${SHARD_SERVICE}:${SHARD_PORT}`),
      script,
    );
    // Followers end when their shares are sent; only shard 0 waits to be collected.
    const follow = script.indexOf('if [ "$JOB_COMPLETION_INDEX" != 0 ]; then exit $rc; fi');
    assert.ok(follow > 0 && follow < script.indexOf("/results/.collected"), script);
    assert.deepEqual(pod.containers[0].ports, [{ name: "shards", containerPort: SHARD_PORT }]);
    // One load generator: a plain Job, no Service.
    const single = pair("vke");
    assert.ok(
      !render(single, "managed", OPTS).objects.some((o) => o.metadata.name === SHARD_SERVICE),
    );
    const plain = renderRunnerJob(single.arms.managed!, [0], OPTS, { deadlineSec: 60 }) as Any;
    assert.equal(plain.spec.completionMode, undefined);
    assert.ok(!plain.spec.template.spec.containers[0].command[2].includes("--shard"));
  });

  it("supervisor: every engine started, TERM forwarded, the group exits when one dies", () => {
    const s = supervisorScript([
      ["vllm", "serve", "a b"],
      ["vllm", "serve", "c"],
    ]);
    assert.match(s, /vllm serve 'a b' & pids\+=\(\$!\)/);
    assert.match(s, /trap 'kill -TERM/);
    assert.match(s, /wait -n/);
  });

  it("a schema violation names the object", () => {
    const bad = {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "x", namespace: "n", labels: {} },
      spec: { completionMode: "Sometimes", template: { spec: { containers: [] } } },
    };
    assert.throws(() => validateKubeObject(bad), /Job n\/x does not match the Kubernetes schema/);
    assert.throws(
      () => validateKubeObject({ ...bad, kind: "Gadget" }),
      /no schema for batch\/v1\/Gadget/,
    );
  });
});
