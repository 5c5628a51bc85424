/**
 * The Pulumi program under pulumi.runtime.setMocks: resources and their key arguments, secrets.
 * setMocks is process-wide; node:test runs each file in its own process.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { generateEd25519 } from "../../lib/ssh/keys.ts";

interface Recorded {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}
const resources: Recorded[] = [];
// Pulumi's wire sentinel for secrets (sdk/nodejs/runtime/rpc.ts specialSigKey / specialSecretSig).
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";

await pulumi.runtime.setMocks(
  {
    newResource(args) {
      resources.push({ type: args.type, name: args.name, inputs: args.inputs });
      const state: Record<string, unknown> = { ...args.inputs };
      if (args.type === "gcp:compute/instance:Instance") {
        state.networkInterfaces = [{ accessConfigs: [{ natIp: "203.0.113.10" }] }];
      }
      return { id: `${args.name}-id`, state };
    },
    call: (args) => args.inputs,
  },
  "inferbench",
  "gcp-managed",
  false,
);

const login = generateEd25519("login");
const host = generateEd25519("host");
const HF = "hf_abcdefghijklmnopqrstuvwxyz0123";
const pinned = `ghcr.io/ovg-project/kvcached-vllm@sha256:${"e".repeat(64)}`;

const stackValues = {
  target: "gcp-vm",
  mode: "managed",
  models: [
    {
      name: "llama-3.1-8b",
      hfPath: "meta-llama/Llama-3.1-8B-Instruct",
      replicas: 2,
      maxModelLen: 8192,
      profile: "llama-3.1-8b@h100",
    },
    {
      name: "qwen2.5-7b",
      hfPath: "Qwen/Qwen2.5-7B-Instruct",
      replicas: 2,
      maxModelLen: 8192,
      profile: "qwen2.5-7b@h100",
    },
    {
      name: "llama-3.3-70b-awq",
      hfPath: "casperhansen/llama-3.3-70b-instruct-awq",
      replicas: 2,
      quantization: "awq_marlin",
      maxModelLen: 8192,
      profile: "llama-3.3-70b-awq@h100",
    },
  ],
  gpus: { type: "h100-80gb", count: 6 },
  engine: { images: { managed: pinned } },
  gcp: {
    project: "my-proj",
    region: "us-central1",
    zones: ["us-central1-a", "us-central1-b"],
    provisioningModel: "SPOT",
    maxRunHours: 3,
    sshSourceRanges: ["34.118.7.7/32"],
  },
};

const DEADLINE = new Date(Date.now() + 2 * 3_600_000).toISOString().replace(/\.\d{3}Z$/, "Z");
const config: Record<string, string> = {
  "inferbench:runId": "ib-20261124-abc123",
  "inferbench:deadline": DEADLINE,
  "inferbench:zone": "us-central1-b",
  "inferbench:sshPrivateKey": login.privateKey,
  "inferbench:sshGeneratedPublicKey": login.publicKey,
  "inferbench:sshHostPrivateKey": host.privateKey,
  "inferbench:sshHostPublicKey": host.publicKey,
  "inferbench:hfToken": HF,
};
for (const [k, v] of Object.entries(stackValues)) {
  config[`inferbench:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
}
pulumi.runtime.setAllConfig(config, [
  "inferbench:sshPrivateKey",
  "inferbench:sshHostPrivateKey",
  "inferbench:hfToken",
]);

const { program } = await import("../../infra/program.ts");

function value<T>(o: pulumi.Output<T> | T): Promise<T> {
  if (!pulumi.Output.isInstance(o)) return Promise.resolve(o as T);
  return new Promise((r) => o.apply(r));
}
function find(type: string): Recorded {
  const r = resources.find((x) => x.type === type);
  assert.ok(r, `no ${type} among ${resources.map((x) => x.type).join(", ")}`);
  return r;
}

describe("Pulumi program (mocks)", () => {
  let out: ReturnType<typeof program>;
  before(async () => {
    out = program();
    await value(out.sshCommand);
    await new Promise((r) => setTimeout(r, 50)); // let pending registrations land
  });

  it("creates network, subnet, SSH-only firewall and the instance", () => {
    const types = resources.map((r) => r.type);
    for (const t of [
      "inferbench:gcp:GpuVm",
      "gcp:compute/network:Network",
      "gcp:compute/subnetwork:Subnetwork",
      "gcp:compute/firewall:Firewall",
      "gcp:compute/instance:Instance",
    ]) {
      assert.ok(types.includes(t), t);
    }
    const fw = find("gcp:compute/firewall:Firewall").inputs;
    assert.deepEqual(fw.sourceRanges, ["34.118.7.7/32"]);
    assert.deepEqual(fw.allows, [{ protocol: "tcp", ports: ["22"] }]);
    assert.equal(fw.direction, "INGRESS");
  });

  it("instance: machine type, zone, scheduling dead-man switch, labels, no attached GPUs", () => {
    const vm = find("gcp:compute/instance:Instance").inputs;
    assert.equal(vm.machineType, "a3-highgpu-8g");
    assert.equal(vm.zone, "us-central1-b");
    assert.equal(vm.project, "my-proj");
    assert.equal(vm.guestAccelerators, undefined);
    const s = vm.scheduling as Record<string, unknown>;
    assert.equal(s.onHostMaintenance, "TERMINATE");
    assert.equal(s.provisioningModel, "SPOT");
    assert.equal(s.instanceTerminationAction, "DELETE");
    // The run's absolute deadline, not a duration that a restart would reset.
    assert.equal(s.terminationTime, DEADLINE);
    assert.equal(s.maxRunDuration, undefined);
    assert.equal(s.preemptible, true);
    const nics = vm.networkInterfaces as Record<string, unknown>[];
    assert.equal(nics[0]!.nicType, "GVNIC", "A3 machines have no VirtIO NIC");
    assert.equal((vm.labels as Record<string, string>)["inferbench-run"], "ib-20261124-abc123");
    const disk = (vm.bootDisk as { initializeParams: Record<string, unknown> }).initializeParams;
    assert.equal(disk.size, 1000);
    assert.match(String(disk.image), /deeplearning-platform-release\/global\/images\/family\//);
  });

  it("metadata carries startup script, login key and host key — and is secret", async () => {
    const vm = find("gcp:compute/instance:Instance").inputs;
    // Secret inputs reach the mock wrapped in Pulumi's secret sentinel: proof it is registered secret.
    const wrapped = vm.metadata as Record<string, unknown>;
    assert.equal(wrapped[SECRET_SIG], SECRET_VALUE, "metadata is not registered as a secret");
    const md = wrapped.value as Record<string, string>;
    assert.match(md["startup-script"]!, /^#!\/bin\/bash/);
    assert.equal(md["ssh-keys"], `inferbench:${login.publicKey}`);
    assert.equal(md["enable-oslogin"], "FALSE");
    assert.equal(md["inferbench-ssh-host-key"], host.privateKey);
    const d = find("pulumi-nodejs:dynamic/inferbench:ComposeDeployment").inputs;
    assert.equal((d.privateKey as Record<string, unknown>)[SECRET_SIG], SECRET_VALUE);
    assert.equal((d.hfToken as Record<string, unknown>)[SECRET_SIG], SECRET_VALUE);
  });

  it("the deploy resource gets the bundle hash and the project of this arm", () => {
    const d = find("pulumi-nodejs:dynamic/inferbench:ComposeDeployment").inputs;
    assert.equal(d.projectName, "inferbench-managed");
    assert.equal(d.bundleHash, out.bundleHash);
    assert.equal(d.host, "203.0.113.10");
    assert.equal(d.user, "inferbench");
  });

  it("outputs: ssh command, run id, results path, cost; no secret in them", async () => {
    assert.equal(
      await value(out.sshCommand),
      `ssh -i ~/.inferbench/ib-20261124-abc123/id_ed25519 -o UserKnownHostsFile=~/.inferbench/ib-20261124-abc123/known_hosts -o StrictHostKeyChecking=yes inferbench@203.0.113.10`,
    );
    assert.equal(out.runId, "ib-20261124-abc123");
    assert.equal(out.resultsPath, "results/runs/ib-20261124-abc123/");
    assert.ok((out.hourlyCostUsd ?? 0) > 0);
    const plain: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(out)) {
      if (pulumi.Output.isInstance(v)) {
        assert.equal(await pulumi.isSecret(v), false, `${k} is unexpectedly secret`);
        plain[k] = await value(v);
      } else plain[k] = v;
    }
    const text = JSON.stringify(plain);
    assert.ok(!text.includes("PRIVATE KEY"));
    assert.ok(!text.includes(HF));
    assert.equal(plain.hostPublicKey, host.publicKey);
  });
});

describe("GpuVm secrets", () => {
  it("instance metadata output is secret", async () => {
    const { GpuVm } = await import("../../infra/gpu-vm.ts");
    const { stackConfigSchema } = await import("../../stacks/schema.ts");
    const gcp = stackConfigSchema.shape.gcp.parse({ sshSourceRanges: ["34.118.0.0/24"] });
    const vm = new GpuVm("t", {
      runId: "r1",
      stack: "s",
      gcp,
      zone: "us-central1-a",
      sshPublicKey: login.publicKey,
      hostPrivateKey: pulumi.secret(host.privateKey),
      hostPublicKey: host.publicKey,
    });
    assert.equal(await pulumi.isSecret(vm.instance.metadata), true);
  });

  it("refuses a zone outside gcp.zones and an empty SSH range", async () => {
    const { GpuVm } = await import("../../infra/gpu-vm.ts");
    const { stackConfigSchema } = await import("../../stacks/schema.ts");
    const gcp = stackConfigSchema.shape.gcp.parse({ sshSourceRanges: ["34.118.0.0/24"] });
    const args = {
      runId: "r1",
      stack: "s",
      gcp,
      zone: "europe-west4-a",
      sshPublicKey: login.publicKey,
      hostPrivateKey: host.privateKey,
      hostPublicKey: host.publicKey,
    };
    assert.throws(() => new GpuVm("t2", args), /not one of gcp.zones/);
    assert.throws(
      () =>
        new GpuVm("t3", { ...args, zone: "us-central1-a", gcp: { ...gcp, sshSourceRanges: [] } }),
      /refusing to open SSH/,
    );
  });
});

describe("config round trip", () => {
  it("what `inferbench run` writes into the stack config reads back as the same StackConfig", async () => {
    const { planStack } = await import("../../targets/plan-stack.ts");
    const { configEntries } = await import("../../targets/gcp-vm/index.ts");
    const { readStackConfig } = await import("../../infra/program.ts");
    const { loaded } = planStack("gcp-baseline", ["gcp.project=p2", `hfToken=${HF}`]);
    const entries = configEntries(loaded.config);
    const cfg: Record<string, string> = {};
    const secrets: string[] = [];
    for (const [k, e] of Object.entries(entries)) {
      const key = k.includes(":") ? k : `inferbench:${k}`;
      cfg[key] = e.value;
      if (e.secret) secrets.push(key);
    }
    pulumi.runtime.setAllConfig(cfg, secrets);
    const { config, hfToken } = readStackConfig(new pulumi.Config("inferbench"), "gcp-baseline");
    const { hfToken: _t, ...expected } = loaded.config;
    const { hfToken: _u, ...got } = config;
    assert.deepEqual(got, expected);
    assert.equal(await pulumi.isSecret(hfToken), true);
    assert.equal(await value(hfToken), HF);
  });
});

describe("program refusals (before any resource is registered)", () => {
  const base = () => {
    const c: Record<string, string> = { ...config };
    delete c["inferbench:hfToken"];
    return c;
  };
  const run = (cfg: Record<string, string>, secrets: string[] = []) => {
    pulumi.runtime.setAllConfig(cfg, [
      "inferbench:sshPrivateKey",
      "inferbench:sshHostPrivateKey",
      ...secrets,
    ]);
    const before = resources.length;
    const saved = process.env.HF_TOKEN;
    delete process.env.HF_TOKEN;
    try {
      return { threw: undefined as unknown, out: program(), before };
    } catch (err) {
      return { threw: err, out: undefined, before };
    } finally {
      if (saved !== undefined) process.env.HF_TOKEN = saved;
    }
  };

  it("a gated model without `pulumi config set --secret hfToken` (or HF_TOKEN)", () => {
    const r = run(base());
    assert.match(
      String(r.threw),
      /models\[0\]\.hfPath = meta-llama\/Llama-3\.1-8B-Instruct: gated/,
    );
    assert.equal(resources.length, r.before, "nothing registered");
  });

  it("a documentation address as the SSH range", () => {
    const c = base();
    c["inferbench:hfToken"] = HF;
    c["inferbench:gcp"] = JSON.stringify({
      ...stackValues.gcp,
      sshSourceRanges: ["203.0.113.7/32"],
    });
    const r = run(c, ["inferbench:hfToken"]);
    assert.match(
      String(r.threw),
      /gcp\.sshSourceRanges\[0\] = 203\.0\.113\.7\/32 is in the documentation range/,
    );
  });

  it("run.onProvision=false provisions the VM only", async () => {
    const c = base();
    c["inferbench:hfToken"] = HF;
    c["inferbench:run"] = JSON.stringify({ onProvision: false });
    const r = run(c, ["inferbench:hfToken"]);
    assert.equal(r.threw, undefined);
    await value(r.out!.sshCommand);
    await new Promise((res) => setTimeout(res, 50));
    const added = resources.slice(r.before).map((x) => x.type);
    assert.ok(added.includes("gcp:compute/instance:Instance"));
    assert.ok(!added.some((t) => t.includes("ComposeDeployment")), added.join(", "));
  });
});
