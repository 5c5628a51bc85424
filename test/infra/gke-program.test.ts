/**
 * The gke cluster stack's inline program under pulumi.runtime.setMocks (process-wide, hence its
 * own file): the GkeGpuPool gets the stack's gke settings and the run labels, and the program's
 * outputs are the ones the gke target reads, the kubeconfig secret.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";

interface Recorded {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}
const resources: Recorded[] = [];
const CA = Buffer.from("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").toString(
  "base64",
);

await pulumi.runtime.setMocks(
  {
    newResource(args) {
      resources.push({ type: args.type, name: args.name, inputs: args.inputs });
      const state: Record<string, unknown> = { ...args.inputs };
      if (args.type === "gcp:container/cluster:Cluster") {
        state.endpoint = "34.118.9.9";
        state.masterAuth = { clusterCaCertificate: CA, clientCertificate: "", clientKey: "" };
      }
      return { id: `${args.name}-id`, state };
    },
    call: (args) => args.inputs,
  },
  "inferbench",
  "run-cluster",
  false,
);

const { gkeClusterPoolArgs, gkeClusterProgram, runClusterName } = await import(
  "../../infra/gke-program.ts"
);
const { gkeSchema } = await import("../../stacks/schema.ts");

const RUN = "20261202-010000-AB12";
const LABELS = {
  "inferbench-run": "20261202-010000-ab12",
  "inferbench-stack": "gke-baseline",
  "managed-by": "inferbench",
};
const gke = gkeSchema.parse({
  project: "my-proj",
  location: "europe-west4-b",
  clusterName: "ib-run",
  machineType: "a3-highgpu-4g",
  nodeCount: 2,
  provisioningModel: "SPOT",
  gpuDriverVersion: "DEFAULT",
  maxRunHours: 6,
});

function value<T>(o: unknown): Promise<T> {
  return new Promise((r) => (o as pulumi.Output<T>).apply(r));
}
function find(type: string): Recorded {
  const r = resources.find((x) => x.type === type);
  assert.ok(r, `no ${type} among ${resources.map((x) => x.type).join(", ")}`);
  return r;
}

describe("gkeClusterProgram (mocks)", () => {
  let outputs: Record<string, unknown>;
  before(async () => {
    outputs = await gkeClusterProgram({ gke, runId: RUN, stack: "gke-baseline" })();
    await value(outputs.kubeconfig);
    await new Promise((r) => setTimeout(r, 50)); // let pending registrations land
  });

  it("one GkeGpuPool named gpu", () => {
    const pools = resources.filter((r) => r.type === "inferbench:gke:GkeGpuPool");
    assert.deepEqual(
      pools.map((p) => p.name),
      ["gpu"],
    );
  });

  it("the cluster gets the stack's name, zone, project and the run labels", () => {
    const c = find("gcp:container/cluster:Cluster").inputs;
    // The run's time and random part ride on the name: two runs in one zone never collide.
    assert.equal(c.name, runClusterName("ib-run", RUN));
    assert.match(c.name, /^ib-run-[0-9a-z]{10}$/);
    assert.equal(c.location, "europe-west4-b");
    assert.equal(c.project, "my-proj");
    assert.deepEqual(c.resourceLabels, LABELS);
  });

  it("the node pool gets machine type, size, model, driver and the run labels", () => {
    const p = find("gcp:container/nodePool:NodePool").inputs;
    assert.equal(p.nodeCount, 2);
    assert.equal(p.location, "europe-west4-b");
    const n = p.nodeConfig as Record<string, unknown>;
    assert.equal(n.machineType, "a3-highgpu-4g");
    assert.equal(n.spot, true);
    assert.deepEqual(n.guestAccelerators, [
      {
        type: "nvidia-h100-80gb",
        count: 4,
        gpuDriverInstallationConfig: { gpuDriverVersion: "DEFAULT" },
      },
    ]);
    assert.deepEqual(n.labels, LABELS);
    assert.deepEqual(n.resourceLabels, LABELS);
  });

  it("outputs: kubeconfig secret, names and endpoint", async () => {
    assert.deepEqual(Object.keys(outputs).sort(), [
      "clusterName",
      "endpoint",
      "kubeconfig",
      "location",
      "nodePoolName",
    ]);
    assert.equal(await pulumi.isSecret(outputs.kubeconfig as pulumi.Output<string>), true);
    assert.match(await value<string>(outputs.kubeconfig), /gke_my-proj_europe-west4-b_ib-run/);
    assert.equal(await value(outputs.clusterName), runClusterName("ib-run", RUN));
    assert.equal(await value(outputs.location), "europe-west4-b");
    assert.equal(await value(outputs.endpoint), "34.118.9.9");
    assert.equal(await value(outputs.nodePoolName), "gpu");
  });

  it("gkeClusterPoolArgs: no project or reservation key when unset", () => {
    const { project: _p, ...rest } = gke;
    const a = gkeClusterPoolArgs({ gke: rest, runId: RUN, stack: "s" });
    assert.ok(!("project" in a) && !("reservation" in a));
    const r = gkeClusterPoolArgs({
      gke: { ...gke, provisioningModel: "STANDARD", reservation: "res-1" },
      runId: RUN,
      stack: "s",
    });
    assert.equal(r.reservation, "res-1");
  });
});

describe("runClusterName", () => {
  it("fits GKE's 40 characters and differs between runs", async () => {
    const { gkePoolProblems } = await import("../../infra/gke-pool.ts");
    const long = "a".repeat(40);
    const a = runClusterName(long, "20261202-010203-ab12");
    const b = runClusterName(long, "20261202-010203-cd34");
    assert.ok(a.length <= 40 && a !== b, `${a} ${b}`);
    assert.deepEqual(
      gkePoolProblems({
        ...gkeClusterPoolArgs({ gke, runId: "20261202-010203-ab12", stack: "s" }),
        clusterName: a,
      }).filter((p) => /clusterName/.test(p)),
      [],
    );
  });
});
