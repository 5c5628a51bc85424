/**
 * The gke cluster source against a fake Automation API and a fake gcloud: the cluster stack's
 * name and folder, infra saved before `up`, the kubeconfig output registered as a secret, refusals
 * before anything is created, quota hints, destroy with retries, and the label audit. Last, the
 * source inside kubeTarget (fake cluster): the pool's node selector and destroy → close.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type {
  AutomationApi,
  ConfigEntry,
  InlineProgram,
  StackOps,
} from "../../infra/automation.ts";
import type { KubeCluster } from "../../kube/cluster.ts";
import { UserError } from "../../lib/errors.ts";
import { REDACTED, redactSecrets } from "../../lib/redact.ts";
import { targetFor } from "../../targets/index.ts";
import {
  classifyGkeUpError,
  type GkeDeps,
  gcloudGkeAuditor,
  gkeCleanupCommands,
  gkeCluster,
} from "../../targets/kube/gke.ts";
import { kubeTarget } from "../../targets/kube/index.ts";
import type { Leftover } from "../../targets/types.ts";
import { targetRun } from "../../testkit/target-run.ts";

const root = mkdtempSync(join(tmpdir(), "ib-gke-target-"));
after(() => rmSync(root, { recursive: true, force: true }));

interface Behaviour {
  upError?: string;
  destroyFailures?: number;
  kubeconfig?: string;
}

/** One ordered log for stack calls and saveInfra, so tests can assert what came first. */
class FakeStack implements StackOps {
  config = new Map<string, ConfigEntry>();
  upOpts: { signal?: AbortSignal; hardSignal?: AbortSignal }[] = [];
  constructor(
    readonly name: string,
    private b: Behaviour,
    private events: string[],
  ) {}
  async getConfig(key: string) {
    return this.config.get(key);
  }
  async setConfig(entries: Record<string, ConfigEntry>) {
    for (const [k, v] of Object.entries(entries)) this.config.set(k, v);
  }
  async up(o: { signal?: AbortSignal; hardSignal?: AbortSignal } = {}) {
    this.upOpts.push(o);
    this.events.push("up");
    if (this.b.upError) throw new Error(this.b.upError);
    return {
      kubeconfig: this.b.kubeconfig ?? "",
      clusterName: "inferbench",
      location: "us-central1-a",
      endpoint: "34.118.1.2",
      nodePoolName: "gpu",
    };
  }
  async outputs() {
    return {};
  }
  async cancel() {
    this.events.push("cancel");
  }
  async refresh() {
    this.events.push("refresh");
  }
  async destroy() {
    this.events.push("destroy");
    if ((this.b.destroyFailures ?? 0) > 0) {
      this.b.destroyFailures!--;
      throw new Error("googleapi: Error 400: cluster is being updated");
    }
  }
  async remove() {
    this.events.push("remove");
  }
}

function setup(overrides: string[] = [], b: Behaviour = {}) {
  const sets = ["rehearsal=true", "gke.project=my-proj", ...overrides];
  const events: string[] = [];
  const { plan, configs, ctx, logs, store } = targetRun("gke-baseline", sets, root, (f) =>
    events.push(`saveInfra:${f.state ?? "-"}`),
  );
  const kubeconfig = `apiVersion: v1\nkind: Config\n# gke ${Math.random().toString(36).slice(2)}\n`;
  const stacks: { workDir: string; stack: FakeStack; program: InlineProgram }[] = [];
  const automation = (program: InlineProgram): AutomationApi => ({
    async stack(workDir, name) {
      const stack = new FakeStack(name, { kubeconfig, ...b }, events);
      stacks.push({ workDir, stack, program });
      return stack;
    },
  });
  const sleeps: number[] = [];
  const gkeDeps: Partial<GkeDeps> = {
    auditor: { leftovers: async () => [] },
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    destroyAttempts: 3,
    destroyBackoffMs: 10,
    now: () => new Date("2026-12-02T01:05:00.000Z"),
  };
  const first = configs.baseline!;
  const source = (over: Partial<GkeDeps> = {}) =>
    gkeCluster(first, "gke-baseline", { automation }, { ...gkeDeps, ...over });
  return {
    plan,
    configs,
    ctx,
    events,
    logs,
    store,
    stacks,
    kubeconfig,
    automation,
    sleeps,
    source,
  };
}

describe("gke cluster source: open", () => {
  it("saves infra, then runs up on <run-id>-cluster; returns the kubeconfig (a secret) and the pool selector", async () => {
    const t = setup();
    const src = t.source();
    const kc = await src.open(t.ctx);
    const runId = t.store.runId;
    assert.equal(t.stacks.length, 1);
    assert.equal(t.stacks[0]!.stack.name, `${runId}-cluster`);
    assert.equal(t.stacks[0]!.workDir, join(t.store.dir, "pulumi"));
    // The manifest names the stack before anything is submitted: a crash mid-up stays destroyable.
    assert.deepEqual(t.events.slice(0, 2), ["saveInfra:provisioning", "up"]);
    assert.equal(t.stacks[0]!.stack.upOpts[0]!.signal, t.ctx.signal);
    assert.equal(t.stacks[0]!.stack.upOpts[0]!.hardSignal, t.ctx.hardSignal);
    assert.equal(t.stacks[0]!.stack.config.get("gcp:project")?.value, "my-proj");
    assert.equal(kc.kubeconfig, t.kubeconfig);
    assert.deepEqual(kc.nodeSelector, { "cloud.google.com/gke-nodepool": "gpu" });
    assert.doesNotMatch(kc.source, /apiVersion/);
    assert.equal(redactSecrets(`kc: ${t.kubeconfig}`), `kc: ${REDACTED}`);
    const infra = t.store.readManifest().infra!;
    assert.equal(infra.state, "provisioning");
    assert.equal(infra.pulumiStack, `${runId}-cluster`);
    assert.equal(infra.workDir, join(t.store.dir, "pulumi"));
    assert.equal(infra.project, "my-proj");
    assert.equal(infra.zone, "us-central1-a");
    assert.equal(infra.billing?.hourlyUsd, t.plan.arms.baseline!.cost!.hourly);
    assert.equal(infra.billing?.start, "2026-12-02T01:05:00.000Z");
    assert.equal(src.clusterRemains(), true);
  });

  it("a missing project or a regional location: refused before any stack is created", async () => {
    const none = setup();
    const cfg = structuredClone(none.configs.baseline!);
    delete cfg.gke.project;
    const src = gkeCluster(cfg, "gke-baseline", { automation: none.automation });
    await assert.rejects(
      src.open(none.ctx),
      (e: unknown) =>
        e instanceof UserError && /gke\.project/.test(e.message) && /gke\.project=/.test(e.hint!),
    );
    assert.equal(none.stacks.length, 0);
    assert.deepEqual(none.events, []);
    assert.equal(await src.close(none.ctx), true);

    const regional = setup(["gke.location=us-central1"]);
    await assert.rejects(regional.source().open(regional.ctx), /not a zone/);
    assert.equal(regional.stacks.length, 0);
  });

  it("a quota failure: a hint naming the GPU quota; close() still destroys what was created", async () => {
    const t = setup([], {
      upError:
        "error: creating NodePool: googleapi: Error 403: Insufficient regional quota to satisfy request: resource \"NVIDIA_H100_GPUS\": request requires '8.0' and is short '8.0'",
    });
    const src = t.source();
    await assert.rejects(src.open(t.ctx), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /creating the GKE cluster failed/);
      assert.match(e.hint!, /quota NVIDIA_H100_GPUS is exhausted/);
      assert.match(e.hint!, /Request NVIDIA_H100_GPUS \(on-demand\) in us-central1/);
      return true;
    });
    assert.equal(await src.close(t.ctx), true);
    // After a failed up: cancel (the lock), refresh (pending creates), then destroy and remove.
    assert.deepEqual(t.events.slice(-5), ["cancel", "refresh", "destroy", "remove", "saveInfra:-"]);
    assert.equal(src.clusterRemains(), false);
  });

  it("classifies GKE's errors with its own hints (pool by provisioning model, zone)", () => {
    const g = {
      machineType: "a3-highgpu-8g",
      provisioningModel: "SPOT" as const,
      location: "europe-west4-b",
      nodeCount: 2,
    };
    const q = classifyGkeUpError("Quota 'PREEMPTIBLE_NVIDIA_H100_GPUS' exceeded. Limit: 0.0", g);
    assert.equal(q.kind, "quota");
    assert.match(q.hint!, /Request PREEMPTIBLE_NVIDIA_H100_GPUS .* in europe-west4/);
    const c = classifyGkeUpError("GCE_STOCKOUT: ZONE_RESOURCE_POOL_EXHAUSTED", g);
    assert.equal(c.kind, "capacity");
    assert.match(c.hint!, /europe-west4-b.*gke\.location/);
    assert.deepEqual(classifyGkeUpError("permission denied", g), { kind: "other" });
  });
});

describe("gke cluster source: close", () => {
  it("destroy + remove; clusterRemains() false after; the billing window closed", async () => {
    const t = setup();
    const src = t.source();
    await src.open(t.ctx);
    t.events.length = 0;
    assert.equal(await src.close(t.ctx), true);
    assert.deepEqual(t.events, ["destroy", "remove", "saveInfra:-"]);
    assert.equal(src.clusterRemains(), false);
    const infra = t.store.readManifest().infra!;
    assert.equal(infra.billing?.end, "2026-12-02T01:05:00.000Z");
    assert.ok(infra.billing?.hourlyUsd !== undefined, "billing facts kept");
  });

  it("retried with backoff on a transient failure", async () => {
    const t = setup([], { destroyFailures: 1 });
    const src = t.source();
    await src.open(t.ctx);
    t.events.length = 0;
    assert.equal(await src.close(t.ctx), true);
    assert.deepEqual(t.events, ["destroy", "refresh", "destroy", "remove", "saveInfra:-"]);
    assert.deepEqual(t.sleeps, [10]);
    assert.equal(src.clusterRemains(), false);
  });

  it("false when every attempt fails: the cluster remains, the state is left to the caller", async () => {
    const t = setup([], { destroyFailures: 10 });
    const src = t.source();
    await src.open(t.ctx);
    t.events.length = 0;
    assert.equal(await src.close(t.ctx), false);
    assert.equal(t.events.filter((e) => e === "destroy").length, 3);
    assert.ok(!t.events.includes("remove"));
    assert.equal(src.clusterRemains(), true);
    assert.equal(t.store.readManifest().infra?.state, "provisioning");
    assert.ok(t.logs.some((l) => /inferbench destroy --run/.test(l)));
  });
});

describe("gke cluster source: audit and cleanup", () => {
  it("clusters and disks by the run label, each with its location; cleanup commands for them", async () => {
    const calls: string[][] = [];
    const auditor = gcloudGkeAuditor(async (args) => {
      calls.push(args);
      if (args[0] === "container")
        return JSON.stringify([{ name: "inferbench", location: "us-central1-a", zone: "x" }]);
      return JSON.stringify([
        {
          name: "pvc-1",
          zone: "https://www.googleapis.com/compute/v1/projects/my-proj/zones/us-central1-a",
        },
      ]);
    });
    const t = setup();
    const src = t.source({ auditor });
    assert.deepEqual(await src.audit(t.ctx), [], "nothing created, nothing asked");
    assert.equal(calls.length, 0);
    await src.open(t.ctx);
    const left = await src.audit(t.ctx);
    const label = t.store.runId.toLowerCase();
    assert.deepEqual(calls, [
      [
        "container",
        "clusters",
        "list",
        `--filter=resourceLabels.inferbench-run=${label}`,
        "--format=json",
        "--project=my-proj",
      ],
      [
        "compute",
        "disks",
        "list",
        `--filter=labels.inferbench-run=${label}`,
        "--format=json",
        "--project=my-proj",
      ],
    ]);
    assert.deepEqual(left, [
      { kind: "cluster", name: "inferbench", location: "us-central1-a" },
      { kind: "disk", name: "pvc-1", location: "us-central1-a" },
    ]);
    // In-cluster leftovers (no location) are kubeTarget's to name.
    const withKube: Leftover[] = [{ kind: "Namespace", name: "inferbench-x" }, ...left];
    assert.deepEqual(src.cleanupCommands!(withKube), [
      "gcloud container clusters delete inferbench --location us-central1-a --project my-proj --quiet",
      "gcloud compute disks delete pvc-1 --zone us-central1-a --project my-proj --quiet",
    ]);
    assert.deepEqual(gkeCleanupCommands([]), []);
  });
});

describe("gke inside kubeTarget", () => {
  it("targetFor gives the gke target", async () => {
    const t = setup();
    const target = await targetFor(
      { ...t.plan, target: "gke" },
      { log: t.ctx.log, configs: t.configs },
    );
    assert.equal(target.kind, "gke");
  });

  it("provision opens the cluster and checks the pool's nodes; destroy closes it; audit skips the cluster's inside", async () => {
    const t = setup();
    const selectors: Record<string, string>[] = [];
    let seenKubeconfig = "";
    const fake = {
      version: async () => "v1.34.4",
      canI: async () => true,
      nodes: async (sel: Record<string, string>) => {
        selectors.push(sel);
        return [{ name: "gke-node", ready: true, gpus: 8, kubeletVersion: "v1.34.4" }];
      },
      deleteNamespaces: async () => [],
      labelled: async () => [],
    } as unknown as KubeCluster;
    const auditor = { leftovers: async () => [] as Leftover[] };
    const target = kubeTarget(
      t.configs,
      {
        cluster: (kc) => {
          seenKubeconfig = kc;
          return fake;
        },
        automation: t.automation,
        projectConfig: { readProjectConfig: async () => undefined },
      },
      (first, stack, deps) =>
        gkeCluster(first, stack, deps, { auditor, sleep: async () => {}, destroyBackoffMs: 1 }),
    );
    await target.provision(t.ctx);
    assert.equal(seenKubeconfig, t.kubeconfig);
    assert.deepEqual(selectors[0], { "cloud.google.com/gke-nodepool": "gpu" });
    assert.equal(t.store.readManifest().infra?.state, "up");
    assert.equal(await target.destroy(t.ctx), true);
    assert.ok(t.events.includes("destroy") && t.events.includes("remove"));
    assert.equal(t.store.readManifest().infra?.state, "destroyed");
    assert.deepEqual(await target.audit(t.ctx), []);
  });
});
