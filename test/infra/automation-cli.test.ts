/**
 * The Automation API through the kit's detached Pulumi command, against the real Pulumi CLI and a
 * local file backend (skipped where no CLI is installed): stack creation, config with secrets,
 * and reading a `pulumi config set --secret hfToken` back decrypted from the user's stack.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { after, describe, it } from "node:test";
import { localAutomation } from "../../infra/automation.ts";

const CANDIDATES = [
  process.env.PULUMI_CLI,
  join(homedir(), ".cache/inferbench/pulumi-v3.248.0/bin/pulumi"),
  ...(process.env.PATH ?? "").split(delimiter).map((d) => join(d, "pulumi")),
].filter((p): p is string => !!p);
const cli = CANDIDATES.find((p) => existsSync(p));

const root = mkdtempSync(join(tmpdir(), "ib-auto-"));
after(() => rmSync(root, { recursive: true, force: true }));

describe("Automation API with the detached Pulumi command", {
  skip: cli ? false : "no Pulumi CLI",
}, () => {
  const env = {
    PULUMI_HOME: join(root, "home"),
    PULUMI_BACKEND_URL: `file://${join(root, "state")}`,
    PULUMI_CONFIG_PASSPHRASE: "test-passphrase",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
  };
  const withEnv = async <T>(f: () => Promise<T>): Promise<T> => {
    const saved = { ...process.env };
    Object.assign(process.env, env, { PATH: `${join(cli!, "..")}${delimiter}${process.env.PATH}` });
    try {
      return await f();
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  };
  mkdirSync(join(root, "state"), { recursive: true });

  it("creates a run stack, stores and reads a secret, reads the user's stack secret decrypted", async () => {
    await withEnv(async () => {
      // The user's project: `pulumi config set --secret hfToken` on stack gcp-managed.
      const project = join(root, "project");
      mkdirSync(project, { recursive: true });
      writeFileSync(join(project, "Pulumi.yaml"), "name: inferbench\nruntime: nodejs\n");
      const opts = { cwd: project, env: { ...process.env }, stdio: "pipe" as const };
      execFileSync(cli!, ["stack", "init", "gcp-managed", "--non-interactive"], opts);
      execFileSync(cli!, ["config", "set", "--secret", "hfToken", "hf_users_secret_token"], opts);
      const auto = localAutomation({}, project);
      assert.equal(
        await auto.readProjectConfig!("gcp-managed", "hfToken"),
        "hf_users_secret_token",
      );
      assert.equal(await auto.readProjectConfig!("gcp-managed", "nothing"), undefined);
      // A run's own stack, as the gcp-vm target makes it.
      const stack = await auto.stack(join(root, "run", "pulumi"), "run-1");
      await stack.setConfig({ hfToken: { value: "hf_run", secret: true }, zone: { value: "z" } });
      assert.deepEqual(await stack.getConfig("hfToken"), { value: "hf_run", secret: true });
      assert.deepEqual(await stack.getConfig("zone"), { value: "z", secret: false });
      await stack.remove();
    });
  });
});
