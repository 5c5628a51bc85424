/**
 * The exec side of a Docker host for the loopback SSH test server: real where it matters for
 * evidence — `compose up` starts the arm's engine-sim + router (from the uploaded bundle's
 * plan.json) as local processes, `compose run runner` runs the real runner on the uploaded
 * experiment.json into the project's results folder — and scripted for the host's own facts
 * (docker/compose versions, nvidia-smi, id) and the run lock (real mkdir under the server's root).
 * The real engine, sshd and dockerd run in the rehearsal (`npm run rehearse:vm`).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { createLogger } from "../lib/logger.ts";
import { RunStore } from "../results/store.ts";
import { parseExperimentPlan } from "../runner/plan-file.ts";
import { runArm } from "../runner/run-arm.ts";
import type { Arm, StackPlan } from "../stacks/plan-types.ts";
import { type LocalDeployment, launchLocal } from "../targets/local/launch.ts";
import type { ExecHandler, TestSshServer } from "./ssh-server.ts";

/** Writes to a stream of the exec and returns the exit code (one line per scripted answer). */
function say(w: (s: string) => void, text: string, code: number): number {
  w(text);
  return code;
}

export interface FakeDockerHost {
  deployments: Map<string, LocalDeployment>;
  /** Called when the runner starts; may abort a signal, throw, or change `runnerExit`. */
  onRunner?: (() => Promise<void>) | undefined;
  runnerExit: number;
  docker: string | undefined;
  compose: string | undefined;
  /** nvidia-smi CSV (index, name, memory MiB) or undefined for "not found". */
  nvidiaSmi: string | undefined;
  /** Every command the runner was asked to run. */
  runnerCommands: string[];
  /** What `docker compose logs` prints for any project. */
  logs: string;
  stopAll(): Promise<void>;
}

const unq = (s: string) => s.replace(/^'|'$/g, "");

export function fakeDockerHost(srv: TestSshServer, scratch: string): FakeDockerHost {
  const fake: FakeDockerHost = {
    deployments: new Map(),
    runnerExit: 0,
    docker: "26.1.5",
    compose: "2.26.1",
    nvidiaSmi: undefined,
    runnerCommands: [],
    logs: "",
    async stopAll() {
      for (const d of fake.deployments.values()) await d.stop();
      fake.deployments.clear();
    },
  };
  const onHost = (p: string) => join(srv.root, p);
  const ups = new Map<string, Promise<void>>();
  const handler: ExecHandler = async (cmd, io) => {
    const projectDir = (cmdDir: string) => onHost(cmdDir);
    if (cmd.includes("/var/lib/inferbench/ready")) return say(io.stdout, "ready\n", 0);
    if (cmd === "id -u; id -g") return say(io.stdout, "1000\n1000\n", 0);
    if (cmd.startsWith("docker version"))
      return fake.docker
        ? say(io.stdout, `${fake.docker}\n`, 0)
        : say(io.stderr, "docker: not found\n", 127);
    if (cmd.startsWith("docker compose version"))
      return fake.compose
        ? say(io.stdout, `${fake.compose}\n`, 0)
        : say(io.stderr, "not a docker command\n", 1);
    if (cmd.startsWith("nvidia-smi"))
      return fake.nvidiaSmi
        ? say(io.stdout, fake.nvidiaSmi, 0)
        : say(io.stderr, "nvidia-smi: not found\n", 127);
    let m =
      /^mkdir ('[^']+'|\S+) 2>\/dev\/null && printf %s ('(?:[^']|'\\'')*'|\S+) > ('[^']+'|\S+)$/.exec(
        cmd,
      );
    if (m) {
      const dir = onHost(unq(m[1]!));
      if (existsSync(dir)) return 1;
      mkdirSync(dir, { recursive: true });
      writeFileSync(onHost(unq(m[3]!)), unq(m[2]!).replace(/'\\''/g, "'"));
      return 0;
    }
    m = /^cat ('[^']+'|\S+)$/.exec(cmd);
    if (m) {
      const f = onHost(unq(m[1]!));
      return existsSync(f) ? say(io.stdout, readFileSync(f, "utf8"), 0) : 1;
    }
    m = /^rm -rf ('[^']+'|\S+)$/.exec(cmd);
    if (m) {
      rmSync(onHost(unq(m[1]!)), { recursive: true, force: true });
      return 0;
    }
    if (cmd.startsWith("docker compose ls"))
      return say(
        io.stdout,
        JSON.stringify([...fake.deployments.keys()].map((Name) => ({ Name }))),
        0,
      );
    m =
      /^cd ('[^']+'|\S+) && (?:echo \$\$ > \S+ && exec )?docker compose -p '?(inferbench-\w+)'? up /.exec(
        cmd,
      );
    if (m) {
      const plan = JSON.parse(
        readFileSync(join(projectDir(unq(m[1]!)), "plan.json"), "utf8"),
      ) as StackPlan;
      // Compose dials engines by service name; these processes listen on loopback.
      const backends = Object.fromEntries(
        Object.entries(plan.router.backends).map(([k, bs]) => [
          k,
          bs.map((b) => ({ ...b, host: "127.0.0.1" })),
        ]),
      );
      const local = { ...plan, target: "local" as const, router: { ...plan.router, backends } };
      const up = (async () => {
        const d = await launchLocal(local, {
          dir: await mkdtemp(join(scratch, "deploy-")),
          log: createLogger("t", () => {}),
        });
        fake.deployments.set(m[2]!, d);
      })();
      // An interrupted `up` goes on here (as compose may); a `down` waits for it, then stops it.
      ups.set(
        m[2]!,
        up.catch(() => {}),
      );
      await up;
      return 0;
    }
    m = /docker compose -p '?(inferbench-\w+)'? (?:--profile runner )?down/.exec(cmd);
    if (m) {
      await ups.get(m[1]!);
      await fake.deployments.get(m[1]!)?.stop();
      fake.deployments.delete(m[1]!);
      return 0;
    }
    m =
      /^cd ('[^']+'|\S+) && mkdir -p results && docker compose -p '?(inferbench-(\w+))'? --profile runner run .* '?--steps'? '?([\d,]+)'?$/.exec(
        cmd,
      );
    if (m) {
      const [, dir, p, arm, steps] = m;
      fake.runnerCommands.push(cmd);
      await fake.onRunner?.();
      if (fake.runnerExit !== 0) return fake.runnerExit;
      const file = join(projectDir(unq(dir!)), "experiment.json");
      const plan = parseExperimentPlan(readFileSync(file, "utf8"), file);
      const d = fake.deployments.get(p!);
      if (!d) return say(io.stderr, "project not up\n", 1);
      if (!plan.endpoints?.[arm!]?.router.startsWith("http://router:"))
        return say(io.stderr, "the plan is not bound to compose service addresses\n", 1);
      const runId = /--out '?\/results\/([\w-]+)/.exec(cmd)![1]!;
      await runArm({
        plan,
        arm: arm as Arm,
        endpoints: { router: d.routerUrl, engines: d.engineUrls },
        // The project's results folder is mounted at /results in the runner container.
        store: RunStore.atDir(join(projectDir(unq(dir!)), "results", runId)),
        steps: steps!.split(",").map(Number),
        resume: true,
        log: createLogger("runner", () => {}),
      });
      return 0;
    }
    m =
      /^cd ('[^']+'|\S+) 2>\/dev\/null && find points -mindepth 2 -maxdepth 2 -name point.json$/.exec(
        cmd,
      );
    if (m) {
      const points = join(onHost(unq(m[1]!)), "points");
      if (!existsSync(points)) return 1;
      const found = readdirSync(points)
        .filter((d) => existsSync(join(points, d, "point.json")))
        .map((d) => `points/${d}/point.json\n`);
      return say(io.stdout, found.join(""), 0);
    }
    if (/docker compose -p \S+ logs /.test(cmd)) return say(io.stdout, fake.logs, 0);
    m = /^test -d ('[^']+'|\S+)$/.exec(cmd);
    if (m) return existsSync(onHost(unq(m[1]!))) ? 0 : 1;
    return 0; // mkdir -p / test -w, docker ps/network/volume ls: nothing left
  };
  srv.setExec(handler);
  return fake;
}
