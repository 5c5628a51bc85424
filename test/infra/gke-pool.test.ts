/**
 * GkeGpuPool: the pure decisions as data (accelerators, provisioning models, kubeconfig), then the
 * component under pulumi.runtime.setMocks: the arguments GKE would really receive, parenting and
 * secrets. setMocks is process-wide; node:test runs each file in its own process.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import fc from "fast-check";
import { parse } from "yaml";

interface Recorded {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}
const resources: Recorded[] = [];
// Pulumi's wire sentinel for secrets (sdk/nodejs/runtime/rpc.ts specialSigKey / specialSecretSig).
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";
const CA = Buffer.from("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").toString(
  "base64",
);

await pulumi.runtime.setMocks(
  {
    newResource(args) {
      resources.push({ type: args.type, name: args.name, inputs: args.inputs });
      const state: Record<string, unknown> = { ...args.inputs };
      if (args.type === "gcp:container/cluster:Cluster") {
        state.endpoint = "34.118.1.2";
        state.masterAuth = { clusterCaCertificate: CA, clientCertificate: "", clientKey: "" };
      }
      return { id: `${args.name}-id`, state };
    },
    call: (args) => args.inputs,
  },
  "inferbench",
  "gke-managed",
  false,
);

const {
  GKE_MACHINE_GPUS,
  GkeGpuPool,
  acceleratorFor,
  clusterArgs,
  gkeKubeconfig,
  gkePoolProblems,
  nodePoolArgs,
} = await import("../../infra/gke-pool.ts");
type Args = import("../../infra/gke-pool.ts").GkeGpuPoolArgs;

const LABELS = { "inferbench-run": "ib-20261124-abc123", "managed-by": "inferbench" };
const base = (over: Partial<Args> = {}): Args => ({
  project: "my-proj",
  location: "us-central1-a",
  clusterName: "ib-std",
  machineType: "a3-highgpu-8g",
  nodeCount: 1,
  provisioningModel: "STANDARD",
  gpuDriverVersion: "LATEST",
  labels: LABELS,
  maxRunHours: 4,
  ...over,
});

function value<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((r) => o.apply(r));
}
function find(type: string, name: string): Recorded {
  const r = resources.find((x) => x.type === type && x.name === name);
  assert.ok(
    r,
    `no ${type} ${name} among ${resources.map((x) => `${x.type} ${x.name}`).join(", ")}`,
  );
  return r;
}
const settle = () => new Promise((r) => setTimeout(r, 50));

describe("acceleratorFor", () => {
  it("maps each GPU machine type to GKE's accelerator name and count", () => {
    const cases: [string, string, number][] = [
      ["a3-highgpu-8g", "nvidia-h100-80gb", 8],
      ["a3-highgpu-1g", "nvidia-h100-80gb", 1],
      ["a3-highgpu-2g", "nvidia-h100-80gb", 2],
      ["a3-highgpu-4g", "nvidia-h100-80gb", 4],
      ["a3-megagpu-8g", "nvidia-h100-mega-80gb", 8],
      ["a3-ultragpu-8g", "nvidia-h200-141gb", 8],
      ["g2-standard-4", "nvidia-l4", 1],
      ["g2-standard-24", "nvidia-l4", 2],
      ["g2-standard-48", "nvidia-l4", 4],
      ["g2-standard-96", "nvidia-l4", 8],
    ];
    for (const [machine, type, count] of cases) {
      const g = acceleratorFor(machine);
      assert.deepEqual([g.type, g.count], [type, count], machine);
    }
    // A3 Ultra has no Persistent Disk: its boot disk must be Hyperdisk.
    assert.equal(acceleratorFor("a3-ultragpu-8g").diskType, "hyperdisk-balanced");
    assert.equal(acceleratorFor("a3-highgpu-8g").diskType, "pd-ssd");
  });

  it("an unknown machine type: a clear error naming it and the known ones", () => {
    for (const bad of ["n1-standard-8", "a3-highgpu-3g", "g2-standard-5", ""]) {
      assert.throws(
        () => acceleratorFor(bad),
        (err: Error) => {
          assert.match(err.message, new RegExp(`^machine type ${bad}: no GPU mapping`));
          assert.match(err.message, /known machine types: a3-highgpu-1g, .*a3-highgpu-8g, /);
          assert.match(err.message, /g2-standard-96$/);
          return true;
        },
      );
    }
  });
});

describe("gkeKubeconfig", () => {
  const kc = gkeKubeconfig({
    name: "gke_p_us-central1-a_c",
    endpoint: "34.1.2.3",
    caCertificate: CA,
  });
  const doc = parse(kc);

  it("points at the endpoint over https with the cluster's CA", () => {
    assert.equal(doc.clusters[0].cluster.server, "https://34.1.2.3");
    assert.equal(doc.clusters[0].cluster["certificate-authority-data"], CA);
    assert.equal(doc["current-context"], "gke_p_us-central1-a_c");
    assert.deepEqual(doc.contexts[0].context, {
      cluster: "gke_p_us-central1-a_c",
      user: "gke_p_us-central1-a_c",
    });
    const again = gkeKubeconfig({ name: "n", endpoint: "https://10.0.0.1", caCertificate: CA });
    assert.equal(parse(again).clusters[0].cluster.server, "https://10.0.0.1");
  });

  it("authenticates through gke-gcloud-auth-plugin, with no static credential", () => {
    const user = doc.users[0].user;
    assert.deepEqual(Object.keys(user), ["exec"]);
    assert.equal(user.exec.command, "gke-gcloud-auth-plugin");
    assert.equal(user.exec.apiVersion, "client.authentication.k8s.io/v1beta1");
    assert.equal(user.exec.provideClusterInfo, true);
    assert.doesNotMatch(kc, /token|client-key|client-certificate|password/i);
  });

  it("refuses an empty endpoint or CA rather than writing a kubeconfig that cannot connect", () => {
    assert.throws(() => gkeKubeconfig({ name: "c", endpoint: "", caCertificate: CA }), /endpoint/);
    assert.throws(() => gkeKubeconfig({ name: "c", endpoint: "1.2.3.4", caCertificate: "" }), /CA/);
  });
});

describe("node pool arguments per provisioning model (data)", () => {
  it("STANDARD: fixed size, no spot, no flex-start, auto-repair on, auto-upgrade off", () => {
    const p = nodePoolArgs(base({ nodeCount: 3 }));
    assert.equal(p.nodeCount, 3);
    assert.equal(p.autoscaling, undefined);
    assert.deepEqual(p.management, { autoRepair: true, autoUpgrade: false });
    assert.deepEqual(p.upgradeSettings, { maxSurge: 0, maxUnavailable: 1 });
    const n = p.nodeConfig;
    assert.equal(n.spot, undefined);
    assert.equal(n.flexStart, undefined);
    assert.equal(n.reservationAffinity, undefined);
    assert.equal(n.maxRunDuration, undefined);
    assert.deepEqual(n.gvnic, { enabled: true });
    assert.deepEqual(n.oauthScopes, ["https://www.googleapis.com/auth/cloud-platform"]);
    assert.equal(n.diskType, "pd-ssd");
    assert.ok(n.diskSizeGb >= 200, `boot disk ${n.diskSizeGb} GB is too small for vLLM images`);
  });

  it("SPOT: spot VMs, nothing else changes", () => {
    const p = nodePoolArgs(base({ provisioningModel: "SPOT", nodeCount: 2 }));
    assert.equal(p.nodeConfig.spot, true);
    assert.equal(p.nodeConfig.flexStart, undefined);
    assert.equal(p.nodeCount, 2);
  });

  it("FLEX_START: empty pool autoscaled 0..nodeCount, no reservation, max run duration", () => {
    const p = nodePoolArgs(
      base({ provisioningModel: "FLEX_START", nodeCount: 2, maxRunHours: 2.5 }),
    );
    assert.equal(p.nodeConfig.flexStart, true);
    assert.equal(p.nodeConfig.spot, undefined);
    assert.equal(p.nodeCount, undefined, "nodeCount fights the autoscaler");
    assert.equal(p.initialNodeCount, 0);
    assert.deepEqual(p.autoscaling, {
      totalMinNodeCount: 0,
      totalMaxNodeCount: 2,
      locationPolicy: "ANY",
    });
    assert.equal(p.nodeConfig.maxRunDuration, "9000s");
    assert.deepEqual(p.nodeConfig.reservationAffinity, {
      consumeReservationType: "NO_RESERVATION",
    });
    assert.equal(p.management.autoRepair, false);
    assert.equal("queuedProvisioning" in p, false);
  });

  it("a reservation: SPECIFIC_RESERVATION by name; refused with Spot and flex-start", () => {
    const p = nodePoolArgs(base({ reservation: "h100-res" }));
    assert.deepEqual(p.nodeConfig.reservationAffinity, {
      consumeReservationType: "SPECIFIC_RESERVATION",
      key: "compute.googleapis.com/reservation-name",
      values: ["h100-res"],
    });
    for (const m of ["SPOT", "FLEX_START"] as const) {
      assert.throws(
        () => nodePoolArgs(base({ provisioningModel: m, reservation: "r" })),
        new RegExp(`gke.reservation is set with provisioningModel ${m}`),
      );
    }
  });

  it("property: one provisioning mode, sized once, reservation only when given", () => {
    const machines = Object.keys(GKE_MACHINE_GPUS);
    fc.assert(
      fc.property(
        fc.constantFrom("STANDARD", "SPOT", "FLEX_START" as const),
        fc.option(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), { nil: undefined }),
        fc.constantFrom(...machines),
        fc.integer({ min: 1, max: 1000 }),
        fc.constantFrom("LATEST", "DEFAULT", "INSTALLATION_DISABLED" as const),
        fc.double({ min: 0.1, max: 168, noNaN: true }),
        (model, reservation, machineType, nodeCount, gpuDriverVersion, maxRunHours) => {
          const args = base({
            provisioningModel: model as Args["provisioningModel"],
            reservation,
            machineType,
            nodeCount,
            gpuDriverVersion: gpuDriverVersion as Args["gpuDriverVersion"],
            maxRunHours,
          });
          if (reservation !== undefined && model !== "STANDARD") {
            assert.throws(() => nodePoolArgs(args), /only STANDARD nodes consume a reservation/);
            assert.equal(gkePoolProblems(args).length, 1);
            return;
          }
          const p = nodePoolArgs(args);
          const n = p.nodeConfig;
          const modes = [n.spot === true, n.flexStart === true, !n.spot && !n.flexStart];
          assert.equal(modes.filter(Boolean).length, 1);
          assert.equal(n.spot === true, model === "SPOT");
          assert.equal(n.flexStart === true, model === "FLEX_START");
          assert.equal(
            n.reservationAffinity?.consumeReservationType === "SPECIFIC_RESERVATION",
            reservation !== undefined,
          );
          if (reservation !== undefined)
            assert.deepEqual(n.reservationAffinity?.values, [reservation]);
          // Exactly one way of sizing the pool, and it is nodeCount.
          assert.equal((p.nodeCount === undefined) !== (p.autoscaling === undefined), true);
          assert.equal(p.nodeCount ?? p.autoscaling?.totalMaxNodeCount, nodeCount);
          const [acc] = n.guestAccelerators;
          assert.equal(acc!.type, GKE_MACHINE_GPUS[machineType]!.type);
          assert.equal(acc!.count, GKE_MACHINE_GPUS[machineType]!.count);
          assert.equal(acc!.gpuDriverInstallationConfig.gpuDriverVersion, gpuDriverVersion);
          assert.equal(n.machineType, machineType);
          assert.deepEqual(n.labels, LABELS);
          assert.equal(p.management.autoUpgrade, false);
          assert.deepEqual(gkePoolProblems(args), []);
        },
      ),
    );
  });
});

describe("gkePoolProblems", () => {
  it("a region (nodeCount per zone) and a cluster name GKE refuses", () => {
    assert.match(
      gkePoolProblems(base({ location: "us-central1" })).join(),
      /gke.location = us-central1 is not a zone.*such as us-central1-a/,
    );
    assert.deepEqual(gkePoolProblems(base({ location: "europe-west4-b" })), []);
    assert.match(
      gkePoolProblems(base({ clusterName: "9lives" })).join(),
      /gke.clusterName = 9lives/,
    );
    assert.match(gkePoolProblems(base({ clusterName: "a".repeat(41) })).join(), /≤ 40/);
    assert.deepEqual(gkePoolProblems(base({ clusterName: "a".repeat(40) })), []);
  });

  it("clusterArgs: no default pool, no deletion protection, off the release channels", () => {
    const c = clusterArgs(base());
    assert.equal(c.removeDefaultNodePool, true);
    assert.equal(c.initialNodeCount, 1);
    assert.equal(c.deletionProtection, false);
    assert.deepEqual(c.releaseChannel, { channel: "UNSPECIFIED" });
  });
});

describe("GkeGpuPool (mocks)", () => {
  let std: InstanceType<typeof GkeGpuPool>;
  before(async () => {
    std = new GkeGpuPool(
      "std",
      base({ reservation: "h100-res", nodeCount: 2, gpuDriverVersion: "DEFAULT" }),
    );
    new GkeGpuPool("spot", base({ clusterName: "ib-spot", provisioningModel: "SPOT" }));
    new GkeGpuPool("flex", base({ clusterName: "ib-flex", provisioningModel: "FLEX_START" }));
    await value(std.kubeconfig);
    await settle(); // let pending registrations land
  });

  it("the cluster gets no default pool, no deletion protection, the run labels", () => {
    const c = find("gcp:container/cluster:Cluster", "std-cluster").inputs;
    assert.equal(c.name, "ib-std");
    assert.equal(c.location, "us-central1-a");
    assert.equal(c.project, "my-proj");
    assert.equal(c.removeDefaultNodePool, true);
    assert.equal(c.initialNodeCount, 1);
    assert.equal(c.deletionProtection, false);
    assert.deepEqual(c.releaseChannel, { channel: "UNSPECIFIED" });
    assert.deepEqual(c.resourceLabels, LABELS);
  });

  it("the node pool: on that cluster, machine type, GPUs with their driver, size, gVNIC, labels", () => {
    const p = find("gcp:container/nodePool:NodePool", "std-gpu").inputs;
    assert.equal(p.cluster, "ib-std");
    assert.equal(p.location, "us-central1-a");
    assert.equal(p.nodeCount, 2);
    assert.deepEqual(p.management, { autoRepair: true, autoUpgrade: false });
    const n = p.nodeConfig as Record<string, unknown>;
    assert.equal(n.machineType, "a3-highgpu-8g");
    assert.deepEqual(n.guestAccelerators, [
      {
        type: "nvidia-h100-80gb",
        count: 8,
        gpuDriverInstallationConfig: { gpuDriverVersion: "DEFAULT" },
      },
    ]);
    assert.deepEqual(n.gvnic, { enabled: true });
    assert.deepEqual(n.labels, LABELS);
    assert.deepEqual(n.resourceLabels, LABELS);
    assert.equal(n.spot, undefined);
    assert.equal(n.flexStart, undefined);
    assert.deepEqual(n.reservationAffinity, {
      consumeReservationType: "SPECIFIC_RESERVATION",
      key: "compute.googleapis.com/reservation-name",
      values: ["h100-res"],
    });
  });

  it("Spot and flex-start pools receive their model's options", () => {
    const spot = find("gcp:container/nodePool:NodePool", "spot-gpu").inputs;
    assert.equal(spot.cluster, "ib-spot");
    assert.equal((spot.nodeConfig as Record<string, unknown>).spot, true);
    assert.equal((spot.nodeConfig as Record<string, unknown>).reservationAffinity, undefined);
    assert.equal(spot.nodeCount, 1);
    const flex = find("gcp:container/nodePool:NodePool", "flex-gpu").inputs;
    const fn = flex.nodeConfig as Record<string, unknown>;
    assert.equal(fn.flexStart, true);
    assert.equal(fn.spot, undefined);
    assert.equal(fn.maxRunDuration, "14400s");
    assert.deepEqual(fn.reservationAffinity, { consumeReservationType: "NO_RESERVATION" });
    assert.equal(flex.nodeCount, undefined);
    assert.deepEqual(flex.autoscaling, {
      totalMinNodeCount: 0,
      totalMaxNodeCount: 1,
      locationPolicy: "ANY",
    });
  });

  it("cluster, pool and provider are children of the component", async () => {
    const parentType = "inferbench:gke:GkeGpuPool";
    assert.match(
      await value(std.cluster.urn),
      new RegExp(`::${parentType}\\$gcp:container/cluster:Cluster::std-cluster$`),
    );
    assert.match(
      await value(std.nodePool.urn),
      new RegExp(`::${parentType}\\$gcp:container/nodePool:NodePool::std-gpu$`),
    );
    assert.match(
      await value(std.provider.urn),
      new RegExp(`::${parentType}\\$pulumi:providers:kubernetes::std-k8s$`),
    );
  });

  it("kubeconfig: a secret output, exec plugin, no static token; the provider gets it secret", async () => {
    assert.equal(await pulumi.isSecret(std.kubeconfig), true);
    const kc = await value(std.kubeconfig);
    const doc = parse(kc);
    assert.equal(doc.clusters[0].cluster.server, "https://34.118.1.2");
    assert.equal(doc.clusters[0].cluster["certificate-authority-data"], CA);
    assert.equal(doc["current-context"], "gke_my-proj_us-central1-a_ib-std");
    assert.equal(doc.users[0].user.exec.command, "gke-gcloud-auth-plugin");
    assert.equal(doc.users[0].user.exec.provideClusterInfo, true);
    assert.doesNotMatch(kc, /token|client-key|password/i);
    const prov = find("pulumi:providers:kubernetes", "std-k8s").inputs;
    const wrapped = prov.kubeconfig as Record<string, unknown>;
    assert.equal(wrapped[SECRET_SIG], SECRET_VALUE, "provider kubeconfig is not registered secret");
    assert.equal(wrapped.value, kc);
  });

  it("outputs: names and endpoint plain, kubeconfig secret", async () => {
    assert.equal(await value(std.clusterName), "ib-std");
    assert.equal(await value(std.location), "us-central1-a");
    assert.equal(await value(std.endpoint), "34.118.1.2");
    assert.equal(await pulumi.isSecret(std.endpoint), false);
    assert.equal(await value(std.nodePoolName), "gpu");
  });

  it("an unknown machine type: refused naming it and the known ones, no cluster registered", async () => {
    assert.throws(
      () => new GkeGpuPool("bad", base({ clusterName: "ib-bad", machineType: "a9-hypergpu-8g" })),
      /machine type a9-hypergpu-8g: no GPU mapping.*known machine types: a3-highgpu-1g, .*a3-highgpu-8g/,
    );
    assert.throws(
      () => new GkeGpuPool("regional", base({ clusterName: "ib-reg", location: "us-central1" })),
      /not a zone/,
    );
    await settle();
    assert.ok(!resources.some((r) => r.name === "bad-cluster" || r.name === "regional-cluster"));
  });
});
