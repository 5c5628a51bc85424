import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { guestAcceleratorsFor, labelValue, schedulingFor, vmLabels } from "../../infra/gpu-vm.ts";
import { renderStartupScript } from "../../infra/startup-script.ts";
import { matchSnapshot } from "../compose/snapshot.ts";

describe("startup script", () => {
  it("matches its snapshot and parses with bash -n", () => {
    const script = renderStartupScript({ sshUser: "inferbench" });
    matchSnapshot(new URL(".//", import.meta.url).href, "startup-script.sh", script);
    const r = spawnSync("bash", ["-n"], { input: script, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
  });

  it("is idempotent by construction: every install is guarded", () => {
    const script = renderStartupScript({ sshUser: "inferbench" });
    assert.match(script, /if ! command -v docker/);
    assert.match(script, /if ! command -v nvidia-ctk/);
    assert.match(script, /nvidia-ctk runtime configure --runtime=docker/);
    assert.match(script, /set_host_keys = false/);
    assert.match(script, /\/var\/lib\/inferbench\/ready/);
    // The host key is read from metadata at boot, never embedded in the script.
    assert.ok(!script.includes("PRIVATE KEY"));
  });

  it("rehearsal machines skip the nvidia-smi check; bad names are refused", () => {
    assert.ok(!renderStartupScript({ sshUser: "u", requireGpu: false }).includes("nvidia-smi -L"));
    assert.throws(() => renderStartupScript({ sshUser: "x; rm -rf /" }), /invalid ssh user/);
    assert.throws(
      () => renderStartupScript({ sshUser: "u", remoteRoot: "/a b" }),
      /invalid remote root/,
    );
  });
});

describe("VM decisions", () => {
  it("scheduling: TERMINATE on maintenance and DELETE at max run duration for every model", () => {
    for (const m of ["STANDARD", "SPOT", "FLEX_START"] as const) {
      const s = schedulingFor(m, 2.5);
      assert.equal(s.onHostMaintenance, "TERMINATE");
      assert.equal(s.instanceTerminationAction, "DELETE");
      assert.deepEqual(s.maxRunDuration, { seconds: 9000 });
      assert.equal(s.provisioningModel, m);
    }
    assert.equal(schedulingFor("SPOT", 1).automaticRestart, false);
  });

  it("a3/a2/g2 bundle their GPUs; n1 refused; GPU-less types only for rehearsals", () => {
    assert.deepEqual(guestAcceleratorsFor("a3-highgpu-8g"), []);
    assert.deepEqual(guestAcceleratorsFor("g2-standard-8"), []);
    assert.throws(() => guestAcceleratorsFor("n1-standard-8"), /not modelled/);
    assert.throws(() => guestAcceleratorsFor("e2-standard-8"), /has no GPUs/);
    assert.deepEqual(guestAcceleratorsFor("e2-standard-8", false), []);
  });

  it("labels are valid GCP label values", () => {
    assert.equal(labelValue("Run_2026.11.24/ABC"), "run_2026-11-24-abc");
    assert.equal(labelValue("x".repeat(80)).length, 63);
    assert.deepEqual(Object.keys(vmLabels("r", "s")).sort(), [
      "inferbench-run",
      "inferbench-stack",
      "managed-by",
    ]);
  });
});
