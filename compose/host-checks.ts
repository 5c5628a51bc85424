/**
 * What a Docker host is and whether the kit's files can run on it: engine and compose versions
 * (the compose files use healthcheck.start_interval), the GPUs the plan pins, the login's uid:gid.
 * One definition for the ssh target's provision and the ComposeDeployment resource of a hand
 * `pulumi up`: probing is one SSH connection of bounded commands, judging is pure.
 */
import { MIN_COMPOSE, MIN_DOCKER_ENGINE } from "../infra/startup-script.ts";
import type { RemoteHost } from "../lib/ssh/ssh.ts";

export interface HostFacts {
  docker?: string;
  compose?: string;
  uid: number;
  gid: number;
  gpus: { index: number; name: string; memoryMiB: number; driver?: string }[];
  nvidiaSmi?: string;
}

export interface HostCheck {
  check: string;
  ok: boolean;
  message: string;
  hint?: string;
}

function versionAtLeast(v: string | undefined, min: readonly [number, number]): boolean {
  const m = /(\d+)\.(\d+)/.exec(v ?? "");
  if (!m) return false;
  const [maj, min2] = [Number(m[1]), Number(m[2])];
  return maj > min[0] || (maj === min[0] && min2 >= min[1]);
}

/** What the probe asks nvidia-smi; the driver column is optional when parsing. */
export const NVIDIA_SMI_QUERY =
  "nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader,nounits";

/** `NVIDIA_SMI_QUERY` output (with or without the driver column) → GPUs. */
export function parseNvidiaSmi(out: string): HostFacts["gpus"] {
  return out
    .split("\n")
    .map((l) => l.split(",").map((x) => x.trim()))
    .filter((f) => f.length >= 3 && /^\d+$/.test(f[0]!))
    .map(([i, name, mem, driver]) => ({
      index: Number(i),
      name: name!,
      memoryMiB: Number(mem),
      ...(driver ? { driver } : {}),
    }));
}

/** The host's NVIDIA driver version(s), as one string for the manifest ("none" without GPUs). */
export function driverOf(gpus: HostFacts["gpus"]): string {
  const d = [...new Set(gpus.map((g) => g.driver).filter((x): x is string => !!x))];
  return d.join(", ") || (gpus.length ? "unknown" : "none");
}

/** The host checks, pure: what the host reported → refusals that name the check and the fix. */
export function judgeHost(
  facts: HostFacts,
  need: { gpuIds: number[]; rehearsal: boolean },
): HostCheck[] {
  const out: HostCheck[] = [];
  const docker = facts.docker;
  out.push(
    docker === undefined
      ? {
          check: "docker",
          ok: false,
          message: "no Docker engine answers on the host (`docker version` failed)",
          hint: "install Docker Engine ≥ 25 and add the SSH user to the docker group",
        }
      : {
          check: "docker",
          ok: versionAtLeast(docker, MIN_DOCKER_ENGINE),
          message: `Docker engine ${docker}`,
          hint: `the kit's compose files need engine ≥ ${MIN_DOCKER_ENGINE.join(".")} (healthcheck.start_interval); upgrade Docker (Debian 12's docker.io 20.10 is too old)`,
        },
  );
  out.push(
    facts.compose === undefined
      ? {
          check: "compose",
          ok: false,
          message: "no Docker Compose v2 plugin (`docker compose version` failed)",
          hint: "install the docker-compose-plugin (compose v2)",
        }
      : {
          check: "compose",
          ok: versionAtLeast(facts.compose, MIN_COMPOSE),
          message: `Docker Compose ${facts.compose}`,
          hint: `need compose ≥ ${MIN_COMPOSE.join(".")}`,
        },
  );
  if (!need.rehearsal) {
    const have = new Set(facts.gpus.map((g) => g.index));
    const missing = need.gpuIds.filter((id) => !have.has(id));
    out.push({
      check: "gpus",
      ok: facts.gpus.length > 0 && missing.length === 0,
      message:
        facts.gpus.length === 0
          ? `no GPU found (nvidia-smi: ${facts.nvidiaSmi?.trim().slice(0, 200) || "not installed"})`
          : `${facts.gpus.length} GPU(s): ${facts.gpus.map((g) => `${g.index} ${g.name}`).join("; ")}${missing.length ? `; the plan needs GPU ids ${missing.join(",")} that the host does not have` : ""}`,
      hint: "set gpus.count / gpus.ids to what the host has, or use rehearsal: true (engine-sim, no GPUs)",
    });
  }
  return out.map((c) => (c.ok ? { check: c.check, ok: true, message: c.message } : c));
}

/** Reads what the host is, over one connection (each probe bounded). */
export async function probeHost(host: RemoteHost): Promise<HostFacts> {
  const run = async (cmd: string) => {
    const r = await host.exec(cmd, { timeoutMs: 30_000 });
    return r.code === 0 ? r.stdout.trim() : undefined;
  };
  const ids = (await run("id -u; id -g")) ?? "0\n0";
  const [uid, gid] = ids.split("\n").map(Number);
  const smi = await host.exec(NVIDIA_SMI_QUERY, { timeoutMs: 30_000 });
  return {
    ...(await run("docker version --format '{{.Server.Version}}'").then((v) =>
      v ? { docker: v } : {},
    )),
    ...(await run("docker compose version --short").then((v) => (v ? { compose: v } : {}))),
    uid: uid ?? 0,
    gid: gid ?? 0,
    gpus: smi.code === 0 ? parseNvidiaSmi(smi.stdout) : [],
    nvidiaSmi: smi.code === 0 ? smi.stdout : smi.stderr || "nvidia-smi not found",
  };
}

/** The refusal for failed checks, each with its fix; undefined when every check passed. */
export function hostCheckFailure(host: string, checks: readonly HostCheck[]): string | undefined {
  const bad = checks.filter((c) => !c.ok);
  if (!bad.length) return undefined;
  return `host checks failed on ${host}:\n${bad.map((c) => `  - ${c.check}: ${c.message}${c.hint ? `\n    ${c.hint}` : ""}`).join("\n")}`;
}
