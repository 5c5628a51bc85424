/**
 * The run's Hugging Face token, one definition for every target that deploys real engines: given
 * in plain (env HF_TOKEN, --set), or a Pulumi secret of the user's stack (`pulumi config set
 * --secret hfToken --stack <stack>`) read back through the Automation API; and the refusal of a
 * gated model without one (engine-sim downloads nothing, so a rehearsal needs none).
 */

import type { AutomationApi } from "../infra/automation.ts";
import { gatedModelIndexes } from "../infra/gated-models.ts";
import { errorMessage, UserError } from "../lib/errors.ts";
import { registerSecret } from "../lib/redact.ts";
import type { StackPlan } from "../stacks/plan-types.ts";
import type { StackConfig } from "../stacks/schema.ts";

/** One arm as the token checks see it. */
export interface TokenArm {
  stack: string;
  config: StackConfig;
  plan: StackPlan;
}

export interface TokenFinding {
  check: "hfToken";
  message: string;
  hint?: string;
}

/** Where the run's HF token stands: given in plain (env/--set), read from a Pulumi secret, absent, or a secret that could not be read. */
export type TokenState =
  | { kind: "set" }
  | { kind: "none" }
  | { kind: "unreadable"; stack: string; reason: string };

export function checkHfToken(arms: TokenArm[], token: TokenState): TokenFinding[] {
  if (token.kind === "unreadable")
    return [
      {
        check: "hfToken",
        message: `hfToken is a Pulumi secret in stack ${token.stack} but could not be read: ${token.reason}`,
        hint: "log in to the backend that encrypted it (and export PULUMI_CONFIG_PASSPHRASE for a local one), or export HF_TOKEN=hf_... instead",
      },
    ];
  if (token.kind === "set") return [];
  const out: TokenFinding[] = [];
  for (const a of arms) {
    if (a.plan.emulated) continue; // engine-sim downloads nothing
    for (const i of gatedModelIndexes(a.config.models)) {
      const m = a.config.models[i]!;
      out.push({
        check: "hfToken",
        message: `stack ${a.stack}: models[${i}].hfPath = ${m.hfPath} is a gated Hugging Face model and no token is set`,
        hint: `accept the model's licence on Hugging Face, then export HF_TOKEN=hf_... or \`pulumi config set --secret hfToken --stack ${a.stack}\``,
      });
    }
  }
  return out;
}

/** The token state from the configs alone (a `{secure}` value counts as unread). */
export function tokenStateOf(arms: TokenArm[]): TokenState {
  const t = arms[0]?.config.hfToken;
  if (typeof t === "string") return { kind: "set" };
  if (t && typeof t === "object")
    return { kind: "unreadable", stack: arms[0]!.stack, reason: "not decrypted yet" };
  return { kind: "none" };
}

/**
 * The HF token of the run in plaintext: given in plain (env HF_TOKEN, --set), or a Pulumi secret
 * of the user's stack (`pulumi config set --secret hfToken --stack <stack>`) read through the
 * Automation API.
 */
export async function resolveHfToken(
  config: StackConfig,
  stack: string,
  automation: Pick<AutomationApi, "readProjectConfig">,
): Promise<{ token?: string; state: TokenState }> {
  const t = config.hfToken;
  if (typeof t === "string") return { token: t, state: { kind: "set" } };
  if (t === undefined) return { state: { kind: "none" } };
  if (!automation.readProjectConfig)
    return { state: { kind: "unreadable", stack, reason: "no Pulumi backend to decrypt it with" } };
  try {
    const token = await automation.readProjectConfig(stack, "hfToken");
    if (!token) return { state: { kind: "unreadable", stack, reason: "the stack has no value" } };
    registerSecret(token);
    return { token, state: { kind: "set" } };
  } catch (err) {
    return { state: { kind: "unreadable", stack, reason: errorMessage(err).slice(0, 300) } };
  }
}

/**
 * The run's token for a target that deploys engines: read (a Pulumi secret too), and a gated
 * model without one refused before anything is created. Rehearsed arms (engine-sim) need none.
 */
export async function requireHfToken(
  configs: Readonly<Record<string, StackConfig>>,
  arms: Readonly<Record<string, StackPlan>>,
  rehearsal: (p: StackPlan) => boolean,
  automation: Pick<AutomationApi, "readProjectConfig">,
): Promise<string | undefined> {
  const list = Object.entries(configs).map(([arm, config]) => ({
    stack: arms[arm]!.stack,
    config,
    plan: arms[arm]!,
  }));
  const first = list[0]!;
  const token = await resolveHfToken(first.config, first.stack, automation);
  const problems = checkHfToken(
    list.map((a) => (rehearsal(a.plan) ? { ...a, plan: { ...a.plan, emulated: true } } : a)),
    token.state,
  );
  if (problems.length)
    throw new UserError(
      problems.map((p) => p.message).join("\n"),
      problems[0]!.hint ? { hint: problems[0]!.hint } : {},
    );
  return token.token;
}
