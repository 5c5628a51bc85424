/**
 * The endpoint target: an OpenAI-compatible server that is already running (a vLLM you deployed,
 * a gateway, a hosted API). Nothing is provisioned, deployed or destroyed. Before the first point
 * every arm's endpoint is checked: reachable with its key, serving the workload's models, and
 * honest about emulation. The runner then measures it from this machine, into the run store.
 */
import { errorMessage, UserError } from "../../lib/errors.ts";
import { registerSecret } from "../../lib/redact.ts";
import { engineVersions, runArm } from "../../runner/run-arm.ts";
import type { Arm, EndpointPlan } from "../../stacks/plan-types.ts";
import type { Leftover, Target, TargetContext } from "../types.ts";

/** The Authorization header for an endpoint, from the variable its plan names (never the plan). */
export function endpointHeaders(
  ep: EndpointPlan,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  if (!ep.apiKeyEnv) return {};
  const key = env[ep.apiKeyEnv];
  if (!key)
    throw new UserError(
      `endpoint.apiKeyEnv: environment variable ${ep.apiKeyEnv} is unset or empty`,
      {
        exitCode: 2,
        hint: `export ${ep.apiKeyEnv}=<the endpoint's API key> (read at run time, never written), or remove endpoint.apiKeyEnv for an endpoint without a key`,
      },
    );
  registerSecret(key);
  return { authorization: `Bearer ${key}` };
}

/** Engine name for an engine URL: its host:port (the URL path where two share one). */
export function engineNames(urls: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const u of urls) {
    const url = new URL(u);
    let name = url.host;
    if (name in out) name = `${url.host}${url.pathname}`;
    for (let k = 2; name in out; k++) name = `${url.host}#${k}`;
    out[name] = u;
  }
  return out;
}

async function get(
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
): Promise<{ status: number; body: string }> {
  const r = await fetch(url, {
    headers,
    signal: AbortSignal.any([signal, AbortSignal.timeout(10_000)]),
  });
  return { status: r.status, body: await r.text() };
}

/** The model ids `GET <url>/v1/models` lists; undefined when the endpoint has no such route. */
async function servedModels(
  arm: Arm,
  ep: EndpointPlan,
  headers: Record<string, string>,
  signal: AbortSignal,
): Promise<string[] | undefined> {
  const where = `${arm} endpoint ${ep.url}`;
  let r: { status: number; body: string };
  try {
    r = await get(`${ep.url}/v1/models`, headers, signal);
  } catch (err) {
    signal.throwIfAborted();
    // undici says "fetch failed"; the cause says why (ENOTFOUND, ECONNREFUSED, a TLS error).
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause ? ` (${cause.code ?? cause.message})` : "";
    throw new UserError(`${where} cannot be reached: ${errorMessage(err)}${why}`, {
      exitCode: 2,
      hint: "check endpoint.url (scheme, address, port) and that the server is up",
    });
  }
  if (r.status === 401 || r.status === 403)
    throw new UserError(`${where} refused the key: HTTP ${r.status} on /v1/models`, {
      exitCode: 2,
      hint: ep.apiKeyEnv
        ? `check the key in $${ep.apiKeyEnv}`
        : "the endpoint wants a key: put it in an environment variable and name it in endpoint.apiKeyEnv",
    });
  if (r.status === 404 || r.status === 405) return undefined;
  if (r.status !== 200)
    throw new UserError(`${where}: HTTP ${r.status} on /v1/models`, {
      exitCode: 2,
      hint: "the server is not ready, or endpoint.url is not an OpenAI-compatible base URL",
    });
  try {
    const data = (JSON.parse(r.body) as { data?: { id?: unknown }[] }).data;
    if (!Array.isArray(data)) throw new Error("no data list");
    return data.map((m) => String(m.id));
  } catch (err) {
    throw new UserError(`${where}: /v1/models is not an OpenAI model list (${errorMessage(err)})`, {
      exitCode: 2,
    });
  }
}

/**
 * What answers behind the arm: the engines' and the endpoint's own `/version` (vLLM and engine-sim
 * serve it). An emulated server measured as real, or a real one labelled emulated, is refused.
 */
async function checkEmulation(
  arm: Arm,
  ep: EndpointPlan,
  emulated: boolean,
  headers: Record<string, string>,
  signal: AbortSignal,
): Promise<Record<string, string>> {
  const versions = await engineVersions(engineNames(ep.engineUrls), signal);
  let own: string | undefined;
  try {
    const r = await get(`${ep.url}/version`, headers, signal);
    const v = r.status === 200 ? (JSON.parse(r.body) as { version?: unknown }).version : undefined;
    own = typeof v === "string" ? v.slice(0, 100) : undefined;
  } catch {
    // A gateway without /version says nothing about what serves behind it.
  }
  const all = { ...(own ? { [ep.url]: own } : {}), ...versions };
  const sims = Object.entries(all).filter(([, v]) => v === "engine-sim");
  const real = Object.entries(all).filter(
    ([, v]) => v !== "engine-sim" && !v.startsWith("unknown"),
  );
  if (!emulated && sims.length)
    throw new UserError(
      `the ${arm} endpoint is emulated: ${sims.map(([k]) => k).join(", ")} answer /version "engine-sim"`,
      {
        exitCode: 2,
        hint: "set endpoint.emulated: true, so that its results are labelled EMULATED",
      },
    );
  if (emulated && real.length && !sims.length)
    throw new UserError(
      `endpoint.emulated is true but the ${arm} endpoint reports real engines: ${real.map(([k, v]) => `${k} ${v}`).join(", ")}`,
      { exitCode: 2, hint: "remove endpoint.emulated (its results would be labelled EMULATED)" },
    );
  return versions;
}

export function endpointTarget(env: NodeJS.ProcessEnv = process.env): Target {
  const headers = new Map<Arm, Record<string, string>>();
  const endpointOf = (arm: Arm, ctx: TargetContext): EndpointPlan => {
    const ep = ctx.plan.arms[arm]?.endpoint;
    if (!ep) throw new Error(`arm ${arm} has no endpoint in its plan`);
    return ep;
  };
  return {
    kind: "endpoint",
    sideBySide: true,
    async provision(ctx) {
      const facts: Record<string, string> = {};
      for (const arm of ctx.plan.armNames) {
        const ep = endpointOf(arm, ctx);
        const h = endpointHeaders(ep, env);
        headers.set(arm, h);
        const served = await servedModels(arm, ep, h, ctx.signal);
        const missing = ctx.plan.workload.models.filter((m) => served && !served.includes(m));
        if (missing.length)
          throw new UserError(
            `the ${arm} endpoint ${ep.url} does not serve ${missing.join(", ")} (it serves: ${served!.join(", ") || "nothing"})`,
            { exitCode: 2, hint: "set models[].name to the names the endpoint serves" },
          );
        const versions = await checkEmulation(arm, ep, ctx.plan.arms[arm]!.emulated, h, ctx.signal);
        facts[`${arm}.url`] = ep.url;
        facts[`${arm}.models`] = served ? served.join(", ") : "not listed (no /v1/models)";
        for (const [name, v] of Object.entries(versions)) facts[`${arm}.engine ${name}`] = v;
        ctx.onProgress?.(
          `${arm}: endpoint ${ep.url}${served ? ` serves ${served.join(", ")}` : ""}${ep.engineUrls.length ? `; ${ep.engineUrls.length} engine(s) scraped` : ""}`,
        );
      }
      const hourly = Object.values(ctx.plan.arms).find((p) => p.cost)?.cost?.hourly;
      ctx.saveInfra({
        state: "none",
        hostFacts: facts,
        billing: {
          start: new Date().toISOString(),
          ...(hourly !== undefined ? { hourlyUsd: hourly } : {}),
        },
      });
    },
    async deployArm() {},
    async runArm(arm, steps, ctx) {
      const ep = endpointOf(arm, ctx);
      await runArm({
        plan: ctx.plan,
        arm,
        endpoints: { router: ep.url, engines: engineNames(ep.engineUrls), readyPath: ep.readyPath },
        headers: headers.get(arm) ?? endpointHeaders(ep, env),
        store: ctx.store,
        steps: steps.map((s) => s.index),
        resume: true,
        signal: ctx.signal,
        log: ctx.log,
        progress: process.stderr.isTTY === true,
      });
    },
    async collect() {},
    async undeployArm() {},
    async destroy(ctx) {
      const billing = ctx.store.readManifest().infra?.billing;
      if (billing) ctx.saveInfra({ billing: { ...billing, end: new Date().toISOString() } });
      return true;
    },
    async audit(): Promise<Leftover[]> {
      return [];
    },
  };
}
