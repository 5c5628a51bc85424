/**
 * The ComposeDeployment provider is serialised into state by the Pulumi engine and run in a
 * separate node process. Serialise it the same way (runtime.serializeFunction) and run the
 * result in a fresh `node --import tsx` process: the captured module URL must load the logic.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { composeDeploymentProvider } from "../../infra/deploy.ts";

it("the deploy provider serialises and its diff runs in a fresh process", async () => {
  const sf = await pulumi.runtime.serializeFunction(() => composeDeploymentProvider, {
    allowSecrets: true,
  });
  assert.ok(!/ssh2|PRIVATE KEY/.test(sf.text), "the closure captured more than the module URL");
  const dir = await mkdtemp(join(tmpdir(), "ib-ser-"));
  try {
    const file = join(dir, "provider.cjs");
    await writeFile(
      file,
      `${sf.text}\nconst p = exports.${sf.exportName}();\n` +
        `p.diff("id", {bundleHash: "a"}, {bundleHash: "b"}).then((d) => { console.log(JSON.stringify(d)); });\n`,
    );
    const r = spawnSync(process.execPath, ["--import", "tsx", file], {
      encoding: "utf8",
      timeout: 30_000,
      cwd: process.cwd(),
    });
    assert.equal(r.status, 0, r.stderr);
    const d = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    assert.equal(d.changes, true);
    assert.deepEqual(d.replaces, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
