/**
 * `npm run bench:peers`: inferbench against the installed peers (perf_analyzer, AIPerf) on one
 * shared backend in its own process, tools alternated (the order rotates every repeat), ≥ 3
 * repeats; every tool's result is read back through `inferbench import` / compare, so req/s and
 * latencies are computed one way for all. Prints
 *   1. capacity: req/s, requests per client CPU-second (the tool's whole process tree, from the
 *      shell's `times`), TTFT p50/p99, errors, in-flight (req/s × mean latency), medians;
 *   2. metric agreement at low load: TTFT, ITL, output tokens/s and req/s per tool, and TTFT
 *      against the engine's own (engine-sim's vllm:time_to_first_token_seconds).
 * Flags: --backend engine-sim|sse (zero-delay SSE server), --concurrency N, --requests N,
 * --repeats N, --json. Needs peers/install.sh; EMULATED figures on engine-sim.
 */
import { execFileSync, fork, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadArtifactSide } from "../results/artifact-sides.ts";
import { summarizeSide } from "../results/compare.ts";
import { readPeerRun, writeImport } from "../results/importers/index.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MODEL = "llama-3.1-8b";
const ISL = 32;
const OSL = 16;

interface Backend {
  url: string;
  /** Engine-side mean TTFT since the last call, ms (engine-sim only). */
  engineTtft(): Promise<number | undefined>;
  stop(): Promise<void>;
}

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function peersDir(): string {
  const env = execFileSync("bash", [join(ROOT, "peers/install.sh"), "env"], { encoding: "utf8" });
  const dir = /^PEERS_DIR=(.*)$/m.exec(env)?.[1] ?? "";
  if (!existsSync(join(dir, "READY"))) {
    process.stderr.write(`bench:peers: peers not installed (${dir}): run peers/install.sh\n`);
    process.exit(2);
  }
  return dir;
}

async function startEngineSim(): Promise<Backend> {
  const child = spawn(
    process.execPath,
    [
      join(ROOT, "bin/inferbench.js"),
      "serve",
      "engine-sim",
      "--profile",
      `${MODEL}@h100`,
      "--port",
      "0",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let err = "";
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
      const m = /ready to accept connections: [^=]+=(127\.0\.0\.1:\d+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (c) => reject(new Error(`engine-sim exited ${c}: ${err}`)));
  });
  child.stderr.resume();
  let last = { sum: 0, count: 0 };
  const read = async () => {
    const text = await (await fetch(`http://${url}/metrics`)).text();
    const v = (n: string) =>
      Number(
        new RegExp(`^vllm:time_to_first_token_seconds_${n}\\{[^}]*\\} (\\S+)`, "m").exec(
          text,
        )?.[1] ?? 0,
      );
    return { sum: v("sum"), count: v("count") };
  };
  last = await read();
  return {
    url,
    engineTtft: async () => {
      const now = await read();
      const d = { sum: now.sum - last.sum, count: now.count - last.count };
      last = now;
      return d.count > 0 ? (d.sum / d.count) * 1000 : undefined;
    },
    stop: () =>
      new Promise((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

async function startSse(): Promise<Backend> {
  const child = fork(fileURLToPath(import.meta.url), ["--serve"], {
    execArgv: ["--import", "tsx"],
  });
  const url = await new Promise<string>((resolve) =>
    child.once("message", (m) => resolve((m as { url: string }).url)),
  );
  return {
    url,
    engineTtft: async () => undefined,
    stop: async () => {
      child.disconnect();
    },
  };
}

/** Runs a command under bash and returns its process tree's CPU seconds (bash `times`). */
function runTimed(
  cmd: string,
  args: string[],
  cwd: string,
): Promise<{ cpuSec: number; wallSec: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(
      "bash",
      ["-c", '"$@" >"$OUT_LOG" 2>&1; rc=$?; times >&3; exit $rc', "_", cmd, ...args],
      {
        cwd,
        env: { ...process.env, OUT_LOG: join(cwd, `${cmd.split("/").pop()}.log`) },
        stdio: ["ignore", "ignore", "ignore", "pipe"],
      },
    );
    let times = "";
    (child.stdio[3] as NodeJS.ReadableStream).on("data", (d: Buffer) => (times += d.toString()));
    child.once("close", (code) => {
      // Exit 3: inferbench's own validity gate (generator lag) — the artifacts are complete.
      if (code !== 0 && code !== 3)
        return reject(new Error(`${cmd} exited ${code} (log in ${cwd})`));
      const sec = (s: string) => {
        const m = /(\d+)m([\d.]+)s/.exec(s);
        return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
      };
      const children = times.trim().split("\n")[1] ?? "";
      const [u, s] = children.split(/\s+/);
      resolve({ cpuSec: sec(u ?? "") + sec(s ?? ""), wallSec: (performance.now() - t0) / 1000 });
    });
  });
}

interface Measured {
  tool: string;
  requests: number;
  errors: number;
  rps: number;
  perCpuSec: number;
  cpuSec: number;
  ttftP50: number;
  ttftP99: number;
  ttftMean: number;
  itlMean: number;
  tokPerSec: number;
  inFlight: number;
  engineTtft?: number;
}

type Tool = "inferbench" | "perf_analyzer" | "aiperf";
const TOOLS: Tool[] = ["inferbench", "perf_analyzer", "aiperf"];

async function runTool(
  tool: Tool,
  ctx: {
    peers: string;
    backend: Backend;
    dir: string;
    concurrency: number;
    requests: number;
    inputs?: string;
  },
): Promise<{ m: Measured; inputs?: string }> {
  const out = mkdtempSync(join(ctx.dir, `${tool}-`));
  const c = String(ctx.concurrency);
  const n = String(ctx.requests);
  let folder = out;
  let timed: { cpuSec: number };
  if (tool === "inferbench") {
    timed = await runTimed(
      process.execPath,
      [
        ...[
          "--max-semi-space-size=64",
          join(ROOT, "bin/inferbench.js"),
          "profile",
          "-m",
          MODEL,
          "-u",
          ctx.backend.url,
        ],
        ...[
          "--endpoint-type",
          "completions",
          "--streaming",
          "--concurrency",
          c,
          "--request-count",
          n,
        ],
        ...[
          "--synthetic-input-tokens-mean",
          String(ISL),
          "--output-tokens-mean",
          String(OSL),
          "--ignore-eos",
        ],
        ...["--no-server-usage", "--artifact-dir", join(out, "a"), "--no-progress", "--json"],
      ],
      out,
    );
    folder = join(out, "a");
  } else if (tool === "perf_analyzer") {
    timed = await runTimed(
      join(ctx.peers, "bin/perf_analyzer"),
      [
        ...[
          "-m",
          MODEL,
          "--async",
          "--stability-percentage",
          "999",
          "--request-count",
          n,
          "-i",
          "http",
        ],
        ...["-u", ctx.backend.url, "--concurrency-range", c, "--service-kind", "openai"],
        ...["--endpoint", "v1/completions", "--input-data", ctx.inputs!],
        ...["--profile-export-file", join(out, "profile_export.json")],
      ],
      out,
    );
  } else {
    timed = await runTimed(
      join(ctx.peers, "bin/aiperf"),
      [
        ...[
          "profile",
          "-m",
          MODEL,
          "-u",
          `http://${ctx.backend.url}`,
          "--endpoint-type",
          "completions",
        ],
        ...["--streaming", "--concurrency", c, "--request-count", n, "--random-seed", "0"],
        ...["--prompt-input-tokens-mean", String(ISL), "--prompt-output-tokens-mean", String(OSL)],
        ...["--extra-inputs", "ignore_eos:true", "--tokenizer", "inferbench/llama-3-tokenizer"],
        ...[
          "--ui-type",
          "none",
          "--no-server-metrics",
          "--no-gpu-telemetry",
          "--output-artifact-dir",
          out,
        ],
      ],
      out,
    );
  }
  const engineTtft = await ctx.backend.engineTtft();
  let side: ReturnType<typeof loadArtifactSide>;
  let inputs: string | undefined;
  if (tool === "inferbench") {
    side = loadArtifactSide(folder, tool);
    const run = join(folder, readdirSync(folder)[0]!);
    inputs = join(run, "inputs.json");
  } else {
    const imp = join(out, "import");
    writeImport(readPeerRun(tool === "aiperf" ? "aiperf" : "perf-analyzer", out), imp, {
      version: "bench",
      emulated: true,
    });
    side = loadArtifactSide(imp, tool);
  }
  const s = summarizeSide(tool, side.points[0]!, {});
  return {
    inputs,
    m: {
      tool,
      requests: s.requests,
      errors: s.errors,
      rps: s.achievedRps,
      cpuSec: timed.cpuSec,
      perCpuSec: (s.requests - s.errors) / Math.max(timed.cpuSec, 1e-9),
      ttftP50: s.ttftMs?.p50 ?? Number.NaN,
      ttftP99: s.ttftMs?.p99 ?? Number.NaN,
      ttftMean: s.ttftMs?.mean ?? Number.NaN,
      itlMean: s.itlMs?.mean ?? Number.NaN,
      tokPerSec: s.outputTokensPerSec,
      inFlight: s.achievedRps * (s.e2eMs.mean / 1000),
      ...(engineTtft !== undefined ? { engineTtft } : {}),
    },
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "–");

async function main(): Promise<void> {
  const peers = peersDir();
  const backendKind = process.argv.includes("--backend")
    ? process.argv[process.argv.indexOf("--backend") + 1]
    : "engine-sim";
  const concurrency = flag("--concurrency", 32);
  const requests = flag("--requests", 1000);
  const repeats = Math.max(3, flag("--repeats", 3));
  const dir = mkdtempSync(join(tmpdir(), "ib-bench-peers-"));
  const backend = backendKind === "sse" ? await startSse() : await startEngineSim();
  const runs: Measured[] = [];
  const agreement: Measured[] = [];
  try {
    // inferbench first once (untimed in the tables) to make the shared inputs.json for perf_analyzer.
    const warm = await runTool("inferbench", { peers, backend, dir, concurrency, requests: 50 });
    const inputs = warm.inputs!;
    for (let r = 0; r < repeats; r++) {
      const order = TOOLS.map((_, i) => TOOLS[(i + r) % TOOLS.length]!);
      for (const tool of order) {
        const { m } = await runTool(tool, { peers, backend, dir, concurrency, requests, inputs });
        runs.push(m);
        process.stderr.write(
          `repeat ${r + 1} ${tool}: ${f(m.rps)} req/s, ${f(m.perCpuSec, 0)} req/CPU-s, TTFT p99 ${f(m.ttftP99)} ms, errors ${m.errors}\n`,
        );
      }
    }
    for (const tool of TOOLS) {
      const { m } = await runTool(tool, {
        peers,
        backend,
        dir,
        concurrency: 4,
        requests: 80,
        inputs,
      });
      agreement.push(m);
    }
  } finally {
    await backend.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const host = `${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), load ${loadavg()[0]!.toFixed(1)}`;
  if (process.argv.includes("--json")) {
    process.stdout.write(
      `${JSON.stringify({ backendKind, concurrency, requests, repeats, host, runs, agreement }, null, 2)}\n`,
    );
    return;
  }
  const lines: string[] = [];
  lines.push(
    `bench:peers ${new Date().toISOString().slice(0, 10)} — backend ${backendKind}${backendKind === "engine-sim" ? " (EMULATED llama-3.1-8b@h100)" : " (zero-delay SSE)"}, streaming completions ${ISL} in / ${OSL} out, concurrency ${concurrency}, ${requests} requests, ${repeats} repeats alternated, medians; ${host}`,
    "",
    "| tool | req/s | requests per client CPU-second | client CPU s per run (start-up included) | TTFT p50 ms | TTFT p99 ms | errors | in-flight |",
    "|---|---|---|---|---|---|---|---|",
  );
  for (const tool of TOOLS) {
    const rs = runs.filter((x) => x.tool === tool);
    const med = (k: keyof Measured) => median(rs.map((x) => x[k] as number));
    lines.push(
      `| ${tool} | ${f(med("rps"))} | ${f(med("perCpuSec"), 0)} | ${f(med("cpuSec"), 2)} | ${f(med("ttftP50"))} | ${f(med("ttftP99"))} | ${rs.reduce((t, x) => t + x.errors, 0)}/${rs.reduce((t, x) => t + x.requests, 0)} | ${f(med("inFlight"))} |`,
    );
  }
  const base = agreement.find((a) => a.tool === "inferbench")!;
  const rel = (x: number, b: number) =>
    Number.isFinite(x) && b ? `${x >= b ? "+" : ""}${(((x - b) / b) * 100).toFixed(1)} %` : "–";
  lines.push(
    "",
    "Metric agreement at concurrency 4, 80 requests (Δ against inferbench; TTFT − engine: the client's TTFT above the engine's own):",
    "",
    "| tool | TTFT mean ms | TTFT − engine ms | ITL mean ms | output tok/s | req/s |",
    "|---|---|---|---|---|---|",
  );
  for (const a of agreement)
    lines.push(
      `| ${a.tool} | ${f(a.ttftMean, 2)} | ${a.engineTtft !== undefined ? f(a.ttftMean - a.engineTtft, 2) : "–"} | ${f(a.itlMean, 3)} (${rel(a.itlMean, base.itlMean)}) | ${f(a.tokPerSec)} (${rel(a.tokPerSec, base.tokPerSec)}) | ${f(a.rps, 2)} (${rel(a.rps, base.rps)}) |`,
    );
  process.stdout.write(`${lines.join("\n")}\n`);
}

if (process.argv.includes("--serve")) {
  const { startSseServer } = await import("../testkit/sse-server.ts");
  const srv = await startSseServer({ defaultTokens: OSL });
  process.send?.({ url: srv.url.replace(/^http:\/\//, "") });
  process.on("disconnect", () => void srv.close().then(() => process.exit(0)));
} else {
  await main();
}
