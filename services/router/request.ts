/**
 * What the router needs from an OpenAI request body: the `model` (which replica set), the `user`
 * (session key fallback) and, for prefix policies, the chained hashes of the prompt's blocks.
 * Pure; the body bytes themselves are forwarded unchanged.
 */
import { errorMessage } from "../../lib/errors.ts";
import { blockHashes, promptText } from "./prefix.ts";

/**
 * Prompt blocks hashed per request (256 Ki characters at 64 per block, about 64k tokens): a prefix
 * cache match is decided by the prompt's start, and one huge prompt must neither cost the event
 * loop more than a few ms in the prefix index (~0.9 µs a block) nor evict everyone else's entries.
 */
export const MAX_PREFIX_BLOCKS = 4096;

export interface ApiRequestRules {
  /** Served models, in the order the error message lists them. */
  models: ReadonlySet<string>;
  /** Hash the prompt (prefix-aware, kv-aware). */
  hashPrefix: boolean;
  prefixBlockChars: number;
}

export interface ApiRequest {
  ok: true;
  model: string;
  /** Body `user` when a non-empty string (session key when the header is absent). */
  user: string | undefined;
  /** Prompt block hashes (only with `hashPrefix`). */
  hashes: number[] | undefined;
}

export interface ApiRejection {
  ok: false;
  status: 400 | 404;
  message: string;
  code: string | null;
  /** The `inferbench_router_requests_total` outcome. */
  outcome: "bad_request" | "unknown_model";
}

const reject = (status: 400 | 404, message: string, code: string | null = null): ApiRejection => ({
  ok: false,
  status,
  message,
  code,
  outcome: status === 404 ? "unknown_model" : "bad_request",
});

export function parseApiRequest(body: Buffer, rules: ApiRequestRules): ApiRequest | ApiRejection {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch (err) {
    return reject(400, `invalid JSON body: ${errorMessage(err)}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
    return reject(400, "request body must be a JSON object");
  const obj = parsed as Record<string, unknown>;
  const model = obj.model;
  if (typeof model !== "string" || model === "")
    return reject(400, "missing `model` (string)", "missing_model");
  if (!rules.models.has(model))
    return reject(
      404,
      `The model \`${model}\` does not exist. Served models: ${[...rules.models].join(", ")}`,
      "model_not_found",
    );
  return {
    ok: true,
    model,
    user: typeof obj.user === "string" && obj.user !== "" ? obj.user : undefined,
    hashes: rules.hashPrefix
      ? blockHashes(
          promptText(obj).slice(0, MAX_PREFIX_BLOCKS * rules.prefixBlockChars),
          rules.prefixBlockChars,
          model,
        )
      : undefined,
  };
}
