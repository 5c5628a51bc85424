import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  checkDeadline,
  guestAcceleratorsFor,
  labelValue,
  schedulingFor,
  vmLabels,
} from "../../infra/gpu-vm.ts";
import { FAILED_MARKER, renderStartupScript, SHELL_HELPERS } from "../../infra/startup-script.ts";

/** Runs the script's version check against a fake `docker` that reports these versions. */
function versionCheck(engine: string | undefined, compose: string | undefined) {
  const dir = mkdtempSync(join(tmpdir(), "ib-startup-"));
  try {
    const fake = join(dir, "docker");
    writeFileSync(
      fake,
      `#!/bin/sh
if [ "$1" = version ]; then ${engine ? `echo ${engine}` : "exit 1"}; exit 0; fi
if [ "$1" = compose ]; then ${compose ? `echo ${compose}` : "exit 1"}; exit 0; fi
exit 2
`,
    );
    chmodSync(fake, 0o755);
    const failed = join(dir, "failed");
    const r = spawnSync(
      "bash",
      [
        "-c",
        `set -euo pipefail\n${SHELL_HELPERS.replaceAll(FAILED_MARKER, failed)}\ncheck_docker_versions`,
      ],
      { encoding: "utf8", env: { PATH: `${dir}:/usr/bin:/bin` } },
    );
    let marker: string | undefined;
    try {
      marker = readFileSync(failed, "utf8");
    } catch {}
    return { code: r.status, out: r.stdout, marker };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

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

  it("refuses a Docker engine or compose older than the kit's files need, with the failure marker", () => {
    assert.deepEqual(versionCheck("26.1.5", "2.26.1"), {
      code: 0,
      out: "docker=26.1.5 compose=2.26.1\n",
      marker: undefined,
    });
    assert.equal(versionCheck("25.0.3", "v2.20.0").code, 0);
    const old = versionCheck("20.10.24+dfsg1", "2.26.1");
    assert.equal(old.code, 1);
    assert.match(old.marker!, /Docker engine 20\.10\.24\+dfsg1 is older than 25\.0/);
    assert.match(
      versionCheck("26.1.5", "2.12.2").marker!,
      /Docker Compose 2\.12\.2 is older than 2\.20/,
    );
    assert.match(versionCheck(undefined, undefined).marker!, /Docker engine not running/);
  });

  it("every apt-get waits for the dpkg lock; update is retried", () => {
    const script = renderStartupScript({ sshUser: "inferbench" });
    assert.match(script, /apt-get -q -y -o DPkg::Lock::Timeout=\$APT_LOCK_WAIT/);
    // No bare apt-get outside the helpers.
    const bare = script
      .split("\n")
      .filter((l) => /\bapt-get\b/.test(l) && !/^apt_get\(\)|apt_get update|^#/.test(l.trim()));
    assert.deepEqual(bare, []);
    // A too-old preinstalled engine is replaced from Docker's repository.
    assert.match(script, /version_ge "\$\(docker version --format '\{\{\.Client\.Version\}\}'/);
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

  it("an absolute deadline: terminationTime, which no restart resets (FLEX_START keeps its required duration)", () => {
    const at = "2026-12-01T16:00:00Z";
    for (const m of ["STANDARD", "SPOT"] as const) {
      const s = schedulingFor(m, 4, at) as Record<string, unknown>;
      assert.equal(s.terminationTime, at);
      assert.equal(s.maxRunDuration, undefined, "GCE takes a duration or a time");
      assert.equal(s.instanceTerminationAction, "DELETE");
    }
    const flex = schedulingFor("FLEX_START", 4, at) as Record<string, unknown>;
    assert.deepEqual(flex.maxRunDuration, { seconds: 14400 });
    assert.equal(flex.automaticRestart, false);
    const now = new Date("2026-12-01T12:00:00Z");
    assert.equal(checkDeadline(at, 4, now), undefined);
    assert.match(checkDeadline("2026-12-01T11:00:00Z", 4, now)!, /has passed/);
    assert.match(checkDeadline("2026-12-02T12:00:00Z", 4, now)!, /more than gcp\.maxRunHours/);
    assert.match(checkDeadline("tomorrow", 4, now)!, /not an RFC 3339/);
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
