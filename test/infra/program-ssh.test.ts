/**
 * The Pulumi program for an ssh stack under pulumi.runtime.setMocks: no cloud resource, one
 * ComposeDeployment on the given host after its checks, the key read from ssh.keyFile as a secret.
 * (The same program runs under the real engine in `npm run rehearse:vm`.)
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { generateEd25519 } from "../../lib/ssh/keys.ts";

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
  "my-box",
  false,
);

const login = generateEd25519("login");
const hostKey = generateEd25519("host").publicKey;
const dir = mkdtempSync(join(tmpdir(), "ib-prog-ssh-"));
const keyFile = join(dir, "id_ed25519");
writeFileSync(keyFile, login.privateKey, { mode: 0o600 });
const HF = "hf_sshprogramtoken0123456789abcd";

const stackValues = {
  target: "ssh",
  mode: "baseline",
  rehearsal: true,
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
  ssh: { host: "10.1.2.3", port: 2222, user: "bench", keyFile, hostKey, hourlyUsd: 12.5 },
};
const config: Record<string, string> = { "inferbench:hfToken": HF };
for (const [k, v] of Object.entries(stackValues))
  config[`inferbench:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
pulumi.runtime.setAllConfig(config, ["inferbench:hfToken"]);

const { program } = await import("../../infra/program.ts");

describe("Pulumi program, ssh target (mocks)", () => {
  let out: ReturnType<typeof program>;
  before(async () => {
    out = program();
    await new Promise((r) => setTimeout(r, 100)); // let pending registrations land
  });

  it("registers only the deployment: no VM, network or firewall for a host that exists", () => {
    assert.deepEqual(
      resources.map((r) => r.type),
      ["pulumi-nodejs:dynamic/inferbench:ComposeDeployment"],
    );
    assert.equal(out.instance, undefined);
    assert.equal(out.host, "10.1.2.3");
    assert.equal(out.sshCommand, "ssh -p 2222 bench@10.1.2.3");
    assert.equal(out.hourlyCostUsd, 12.5);
    assert.equal(out.emulated, true);
  });

  it("deploys to the configured host with checks instead of the startup marker", () => {
    const d = resources[0]!.inputs;
    assert.equal(d.host, "10.1.2.3");
    assert.equal(d.port, 2222);
    assert.equal(d.user, "bench");
    assert.equal(d.hostPublicKey, hostKey);
    assert.equal(d.startupMarker, false);
    assert.deepEqual(d.hostChecks, { gpuIds: [0, 1], rehearsal: true });
    assert.equal(d.remoteRoot, "/opt/inferbench");
    assert.equal(d.bundleHash, out.bundleHash);
    assert.ok(String((d.files as Record<string, string>)["compose.yaml"]).includes("engine-sim"));
  });

  it("the login key (from ssh.keyFile) and the HF token reach the deployment as secrets only", () => {
    const d = resources[0]!.inputs;
    const SECRET_SIG = "4dabf18193072939515e22adb298388d";
    for (const k of ["privateKey", "hfToken"]) {
      const v = d[k] as Record<string, unknown>;
      assert.equal(v[SECRET_SIG], "1b47061264138c4ac30d75fd1eb44270", `${k} is not a secret`);
    }
    assert.equal((d.privateKey as { value: string }).value, login.privateKey);
    const plain = JSON.stringify({ ...d, privateKey: null, hfToken: null, out });
    assert.ok(!plain.includes(HF));
    assert.ok(!plain.includes(login.privateKey.split("\n")[1]!));
  });

  it("an unreadable key file, or no key and no agent, is refused naming ssh.keyFile", () => {
    const withSsh = (ssh: Record<string, unknown>) =>
      pulumi.runtime.setAllConfig(
        { ...config, "inferbench:ssh": JSON.stringify({ ...stackValues.ssh, ...ssh }) },
        ["inferbench:hfToken"],
      );
    const n = resources.length;
    withSsh({ keyFile: join(dir, "missing") });
    assert.throws(() => program(), /ssh\.keyFile: cannot read .*missing \(ENOENT\)/);
    const agent = process.env.SSH_AUTH_SOCK;
    delete process.env.SSH_AUTH_SOCK;
    try {
      withSsh({ keyFile: undefined });
      assert.throws(() => program(), /ssh\.keyFile is not set and no SSH agent is running/);
    } finally {
      if (agent !== undefined) process.env.SSH_AUTH_SOCK = agent;
    }
    assert.equal(resources.length, n, "nothing registered");
  });
});
