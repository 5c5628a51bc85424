/**
 * Run store: `results/runs/<run-id>/` with a manifest (provenance) and one folder per arm and load
 * point. Writes are atomic; a load point is complete when its `point.json` exists (written last),
 * so a resumed run skips exactly the points that finished. A completed run is never modified.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { cpus, hostname, platform, release, totalmem } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomicSync } from "../lib/atomic.ts";
import { UserError } from "../lib/errors.ts";
import { readJsonFile } from "../lib/json-file.ts";
import { redactObject } from "../lib/redact.ts";
import type { Arm, LoadPoint, StackPlan } from "../stacks/plan-types.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const DEFAULT_RUNS_DIR = join(REPO_ROOT, "results", "runs");
/** One writer per run folder (results/store.ts RunStore.lock). */
export const LOCK_FILE = ".lock";

/** What a completed load point left in its folder (`point.json`, written last). */
export interface PointRecord {
  arm: Arm;
  label: string;
  repeat: number;
  /** The experiment plan's step index and workload seed (absent in runs made before plan.json). */
  step?: number;
  seed?: number;
  loadPoint: LoadPoint;
  /** The GenAI-Perf artifact folder, relative to the run folder. */
  artifactDir: string;
  valid: boolean;
  invalidReasons: string[];
  requestCount: number;
  errorCount: number;
  lagP99Ms: number;
  targetRate?: number;
  achievedRate?: number;
  aborted?: string;
  /** engine name → model, for the server view. */
  engines: Record<string, string>;
  /** engine name → what its `GET /version` said when the runner started (absent in older runs). */
  engineVersions?: Record<string, string>;
}

/** What ran on a host, per arm (compose targets): `<arm>/host/images.json`, read by compare. */
export const DEPLOYED_IMAGES_FILE = "host/images.json";
/** The arm's service logs, taken before it is taken down (success or failure). */
export const HOST_LOG_FILE = "host/compose.log";
/** Kubernetes targets: every pod's log of the arm, and the namespace's events, taken the same way. */
export const PODS_LOG_FILE = "host/pods.log";
export const EVENTS_FILE = "host/events.txt";

export interface DeployedImage {
  service: string;
  /** The reference the compose file names. */
  image: string;
  /** The engine's image id (sha256:…): what ran, whatever a tag pointed to. */
  id: string;
  /** Registry digests of that image (none for an image built on the host). */
  repoDigests: string[];
  /** The image's `dev.inferbench.*` labels (a built managed image: its base image and kvcached). */
  labels?: Record<string, string>;
}

/** What a remote target created or used: read by `status`, `destroy`, `report` and `compare`. */
export interface InfraFacts {
  state: "provisioning" | "up" | "destroying" | "destroyed" | "kept" | "destroy-failed" | "none";
  /** Pulumi stack (run id) and its local state folder, for `inferbench destroy`. */
  pulumiStack?: string;
  workDir?: string;
  project?: string;
  zone?: string;
  instance?: string;
  network?: string;
  /** Address the kit reached the host at, and the ssh command for a person. */
  host?: string;
  sshCommand?: string;
  /** What the host reported at its checks (engine, compose, GPUs). */
  hostFacts?: Record<string, string>;
  /** Image references as the host resolved them (digests), per arm. */
  resolvedImages?: Record<string, string[]>;
  /** Billing window: provisioned → destroyed (ISO times). */
  billing?: { start?: string; end?: string; hourlyUsd?: number };
  leftovers?: { kind: string; name: string; location?: string }[];
  cleanup?: string[];
}

export type RunStatus = "running" | "interrupted" | "failed" | "complete";

/** Auto request rates: the closed-loop probe a sweep's rates are fractions of. */
export interface SaturationProbe {
  /** The probe's own run. */
  runId: string;
  concurrency: number;
  /** Measured requests per arm. */
  requests: number;
  /** Completed requests per second each arm sustained (arm label → req/s). */
  perArm: Record<string, number>;
  /** The higher arm's: the sweep's 100 %. */
  saturationRps: number;
  fractions: number[];
}

export interface RunManifest {
  schemaVersion: 1;
  runId: string;
  status: RunStatus;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
  /** The command line that started the run (for resume and provenance). */
  command: {
    stack: string;
    /** Every stack of the run (one per arm for cloud targets); `stack` is the first. */
    stacks?: string[];
    overrides: string[];
    quick: boolean;
    interleave: boolean;
  };
  target: StackPlan["target"];
  /** A sweep of auto request rates: the probe its load points were computed from. */
  probe?: SaturationProbe;
  /** Fingerprint of the experiment plan (plan.json beside the manifest): a resume must match it. */
  planFingerprint?: string;
  /** Cloud and host facts of targets that provision or use a remote host. */
  infra?: InfraFacts;
  arms: Arm[];
  emulated: boolean;
  gitCommit?: string;
  gitDirty?: boolean;
  packageVersions: Record<string, string>;
  /** Images per arm (engine, router), with digests where pinned. */
  images: Record<string, { engine: string[]; router: string }>;
  /** The rendered plan per arm (ports as planned, before the local launcher moves them). */
  plans: Record<string, StackPlan>;
  /** The stack config with secrets redacted. */
  config: unknown;
  host: {
    hostname: string;
    platform: string;
    release: string;
    cpus: number;
    cpuModel: string;
    memoryGiB: number;
    node: string;
  };
  error?: string;
}

export function hostFacts(): RunManifest["host"] {
  const c = cpus();
  return {
    hostname: hostname(),
    platform: platform(),
    release: release(),
    cpus: c.length,
    cpuModel: c[0]?.model ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  };
}

export function gitInfo(): { gitCommit?: string; gitDirty?: boolean } {
  try {
    const commit = execFileSync("git", ["rev-parse", "HEAD"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
    const dirty =
      execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], {
        cwd: REPO_ROOT,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      }).trim() !== "";
    return { gitCommit: commit, gitDirty: dirty };
  } catch {
    return {};
  }
}

export function packageVersions(): Record<string, string> {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
    version: string;
    dependencies: Record<string, string>;
  };
  const out: Record<string, string> = { inferbench: pkg.version };
  for (const name of Object.keys(pkg.dependencies)) {
    try {
      out[name] = (
        JSON.parse(readFileSync(join(REPO_ROOT, "node_modules", name, "package.json"), "utf8")) as {
          version: string;
        }
      ).version;
    } catch {
      out[name] = pkg.dependencies[name]!;
    }
  }
  return out;
}

export class RunStore {
  readonly dir: string;
  constructor(
    readonly runId: string,
    readonly runsDir = DEFAULT_RUNS_DIR,
  ) {
    if (!/^[A-Za-z0-9_.-]+$/.test(runId)) throw new UserError(`bad run id "${runId}"`);
    this.dir = join(runsDir, runId);
  }

  /** A store rooted at an existing or new run folder (the runner's `--out DIR`). */
  static atDir(dir: string): RunStore {
    const abs = resolve(dir);
    return new RunStore(basename(abs), dirname(abs));
  }

  static open(runId: string, runsDir = DEFAULT_RUNS_DIR): RunStore {
    const store = new RunStore(runId, runsDir);
    if (!existsSync(join(store.dir, "manifest.json"))) {
      throw new UserError(`no run "${runId}" in ${runsDir} (manifest.json missing)`, {
        hint: "list runs with `ls results/runs`",
      });
    }
    return store;
  }

  manifestPath(): string {
    return join(this.dir, "manifest.json");
  }

  readManifest(): RunManifest {
    return readJsonFile<RunManifest>(this.manifestPath(), "run manifest");
  }

  writeManifest(m: RunManifest): void {
    if (existsSync(this.manifestPath()) && this.readManifest().status === "complete") {
      throw new UserError(`run ${this.runId} is complete; completed runs are never modified`);
    }
    writeFileAtomicSync(
      this.manifestPath(),
      `${JSON.stringify(redactObject({ ...m, updatedAt: new Date().toISOString() }), null, 2)}\n`,
    );
  }

  /**
   * Updates only the manifest's `infra` facts: also on a completed run, whose measurements stay
   * immutable but whose host can still be destroyed later (`inferbench destroy` after `--keep`).
   */
  updateInfra(facts: Partial<InfraFacts>): RunManifest {
    const m = this.readManifest();
    const next = { ...m, infra: { ...(m.infra ?? { state: "none" as const }), ...facts } };
    writeFileAtomicSync(
      this.manifestPath(),
      `${JSON.stringify(redactObject({ ...next, updatedAt: new Date().toISOString() }), null, 2)}\n`,
    );
    return next;
  }

  /**
   * Takes the run folder's writer lock: a second writer is refused and told who holds it; a lock
   * whose process is gone (same host) is taken over with a warning. Returns the release.
   */
  lock(warn: (msg: string) => void = () => {}): () => void {
    mkdirSync(this.dir, { recursive: true });
    const file = join(this.dir, LOCK_FILE);
    const me = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(file, JSON.stringify(me), { flag: "wx" });
        return () => {
          try {
            const held = JSON.parse(readFileSync(file, "utf8")) as { pid?: number };
            if (held.pid === process.pid) unlinkSync(file);
          } catch {}
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      let held: { pid?: number; host?: string; since?: string } = {};
      try {
        held = JSON.parse(readFileSync(file, "utf8"));
      } catch {}
      const alive = (pid: number) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch (e) {
          return (e as NodeJS.ErrnoException).code === "EPERM";
        }
      };
      if (held.pid !== undefined && (held.host !== me.host || alive(held.pid)))
        throw new UserError(
          `run ${this.runId} is being written by pid ${held.pid} on ${held.host ?? "?"} since ${held.since ?? "?"}`,
          { hint: "wait for that run to end (two writers would mix their measurements)" },
        );
      warn(`run ${this.runId}: taking over the lock of pid ${held.pid ?? "?"}, which is gone`);
      unlinkSync(file);
    }
    throw new UserError(`run ${this.runId}: could not take the lock ${file}`);
  }

  armDir(arm: string): string {
    return join(this.dir, arm);
  }

  pointDir(arm: string, pointLabel: string, repeat: number): string {
    return join(this.dir, arm, "points", repeat > 0 ? `${pointLabel}-r${repeat}` : pointLabel);
  }

  isPointComplete(arm: string, pointLabel: string, repeat: number): boolean {
    return existsSync(join(this.pointDir(arm, pointLabel, repeat), "point.json"));
  }

  writeJson(path: string, value: unknown): void {
    writeFileAtomicSync(path, `${JSON.stringify(redactObject(value), null, 2)}\n`);
  }

  file(...parts: string[]): string {
    return join(this.dir, ...parts);
  }
}
