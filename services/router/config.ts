/**
 * Router configuration: from a StackPlan's `router` section or from `--backends model=url,...`.
 */

import { UserError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/logger.ts";
import type {
  RouterPlan,
  RouterPolicy,
  RouterPolicyOptions,
  StackPlan,
} from "../../stacks/plan-types.ts";
import type { Rng } from "./policies.ts";

export const ROUTER_POLICIES: readonly RouterPolicy[] = [
  "round-robin",
  "least-busy",
  "power-of-two",
  "prefix-aware",
  "session",
  "kv-aware",
];

export interface BackendConfig {
  /** Engine name (EnginePlan.name); reported in `x-inferbench-backend` and metrics labels. */
  engine: string;
  /** Base URL, `http://host:port` (http only; the router talks to engines on a private network). */
  url: string;
}

export interface RouterConfig {
  policy: RouterPolicy;
  /** 0 = ephemeral. */
  port: number;
  /** Listen address; default 127.0.0.1 (containers pass 0.0.0.0 explicitly). */
  host?: string;
  pollIntervalMs: number;
  /** Time allowed for the upstream response headers (connect included). */
  requestTimeoutMs: number;
  /** Time allowed to connect; a connect failure is retried once on another replica. */
  connectTimeoutMs?: number;
  options: RouterPolicyOptions;
  backends: Record<string, BackendConfig[]>;
  /** Bearer token clients must send (read from an env var by the CLI). Never logged. */
  apiKey?: string;
  /** Request body limit in bytes (413 above it). Default 32 MiB. */
  maxBodyBytes?: number;
  /** Time allowed from the request head to the end of its body (408 after it). Default 30 s. */
  bodyTimeoutMs?: number;
  /** Injectable RNG for tie-breaks (tests); default Math.random. */
  rng?: Rng;
  logger?: Logger;
}

export const DEFAULT_POLICY_OPTIONS: RouterPolicyOptions = {
  prefixBlockChars: 64,
  loadGateThreshold: 4,
  sessionHeader: "x-session-id",
  kvAwareWeights: { queue: 1, kvUsage: 1, prefix: 1 },
  metricsStaleMs: 200,
};

export const DEFAULTS = {
  pollIntervalMs: 1000,
  requestTimeoutMs: 60_000,
  maxBodyBytes: 32 * 1024 * 1024,
  bodyTimeoutMs: 30_000,
  host: "127.0.0.1",
} as const;

export const MIN_POLL_INTERVAL_MS = 50;

/**
 * Metrics must outlive one poll interval or every replica would be unknown most of the time:
 * the effective staleness limit is max(metricsStaleMs, 2 × pollIntervalMs).
 */
export function effectiveStaleMs(pollIntervalMs: number, metricsStaleMs: number): number {
  return Math.max(metricsStaleMs, 2 * pollIntervalMs);
}

function checkUrl(url: string, what: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UserError(`${what}: "${url}" is not a URL`, { hint: "use http://host:port" });
  }
  if (u.protocol !== "http:" || !u.hostname || !u.port)
    throw new UserError(`${what}: "${url}" must be http://host:port`);
  // URL.hostname keeps IPv6 brackets.
  return `http://${u.hostname}:${u.port}`;
}

/** `model=url[,model=url...]`: repeat a model for more replicas. Engines are named `model-<i>`. */
export function parseBackendsFlag(spec: string): Record<string, BackendConfig[]> {
  const out: Record<string, BackendConfig[]> = {};
  const parts = spec
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "");
  if (parts.length === 0) throw new UserError("--backends is empty", { hint: "model=url,..." });
  for (const p of parts) {
    const eq = p.indexOf("=");
    if (eq <= 0 || eq === p.length - 1)
      throw new UserError(`--backends: "${p}" is not model=url`, {
        hint: "e.g. --backends llama=http://127.0.0.1:8001,llama=http://127.0.0.1:8002",
      });
    const model = p.slice(0, eq);
    const url = checkUrl(p.slice(eq + 1), "--backends");
    const list = out[model] ?? [];
    out[model] = list;
    list.push({ engine: `${model}-${list.length}`, url });
  }
  return out;
}

/**
 * RouterConfig from a plan's router section. `engineUrls` maps engine names to URLs when the
 * launcher runs engines on ports it chose itself (e.g. ephemeral local ports).
 */
export function routerConfigFromPlan(
  plan: RouterPlan | StackPlan,
  opts: { engineUrls?: Record<string, string>; host?: string; port?: number } = {},
): RouterConfig {
  const rp: RouterPlan = "router" in plan ? plan.router : plan;
  const backends: Record<string, BackendConfig[]> = {};
  for (const [model, list] of Object.entries(rp.backends)) {
    if (list.length === 0) throw new UserError(`router plan: model "${model}" has no backends`);
    backends[model] = list.map((b) => {
      const mapped = opts.engineUrls?.[b.engine];
      const host = b.host.includes(":") ? `[${b.host}]` : b.host;
      return {
        engine: b.engine,
        url: checkUrl(mapped ?? `http://${host}:${b.port}`, `router backend ${b.engine}`),
      };
    });
  }
  if (Object.keys(backends).length === 0) throw new UserError("router plan has no backends");
  return {
    policy: rp.policy,
    port: opts.port ?? rp.port,
    ...(opts.host === undefined ? {} : { host: opts.host }),
    pollIntervalMs: rp.pollIntervalMs,
    requestTimeoutMs: rp.requestTimeoutMs,
    options: { ...DEFAULT_POLICY_OPTIONS, ...rp.options },
    backends,
  };
}
