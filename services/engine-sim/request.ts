/**
 * Request validation for engine-sim's OpenAI endpoints, pure (no I/O, no tokenizer): a raw
 * chat/completions body becomes a typed `EngineRequest` or an OpenAI-format error, and a prompt's
 * token count is checked against the context the way vLLM v0.14 checks it.
 *
 * Every step is bounded by the body: `JsonShapeGuard` refuses, while the body streams in, JSON
 * whose parse alone would hold the event loop (deep nesting, millions of containers), and the
 * prompt (up to context-length token-id lists) is checked by hand, not by a zod union that builds
 * an issue per element.
 */
import { z } from "zod";

/** An error answered in vLLM's (OpenAI's) shape: `{"error":{message,type,param,code}}`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** vLLM's `type`: BadRequestError for validation, HTTPStatus(code).phrase for HTTP errors. */
    readonly type = defaultType(status),
  ) {
    super(message);
  }
}

function defaultType(status: number): string {
  if (status === 404) return "NotFoundError";
  if (status === 408) return "Request Timeout";
  if (status === 413) return "Request Entity Too Large";
  if (status === 503) return "ServiceUnavailableError";
  return "BadRequestError";
}

/** vLLM ≥ 0.10.1 (PR #22099) nests the error object, as OpenAI does. */
export function errorBody(status: number, message: string, type: string): string {
  return JSON.stringify({ error: { message, type, param: null, code: status } });
}

export type EndpointKind = "chat" | "completions";

/** Deepest nesting accepted (chat with tool schemas needs ~10). */
export const MAX_JSON_DEPTH = 64;
/** Objects + arrays accepted in one body: JSON.parse spends ~0.13 µs on each. */
export const MAX_JSON_CONTAINERS = 100_000;
/** Values (array elements and object members) accepted: ~16 ms of JSON.parse at the limit. */
export const MAX_JSON_VALUES = 1_000_000;

/**
 * Scans a JSON body as it streams in (strings, escapes, nesting; nothing parsed) and refuses it
 * as soon as it nests deeper than MAX_JSON_DEPTH or holds more containers or values than the
 * limits: a 1 MB `[[[[…]]]]` costs JSON.parse 110 ms, 1M empty objects 125 ms.
 */
export class JsonShapeGuard {
  private inString = false;
  private escaped = false;
  private depth = 0;
  private containers = 0;
  private values = 0;

  /** The error for the body so far, or undefined while it stays within the limits. */
  feed(chunk: Uint8Array): HttpError | undefined {
    let { inString, escaped, depth, containers, values } = this;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 0x5c) escaped = true;
        else if (c === 0x22) inString = false;
      } else if (c === 0x22) inString = true;
      else if (c === 0x5b || c === 0x7b) {
        containers++;
        if (++depth > MAX_JSON_DEPTH || containers > MAX_JSON_CONTAINERS) break;
      } else if (c === 0x5d || c === 0x7d) depth--;
      else if (c === 0x2c && ++values > MAX_JSON_VALUES) break;
    }
    Object.assign(this, { inString, escaped, depth, containers, values });
    if (depth > MAX_JSON_DEPTH)
      return new HttpError(400, `request JSON nests deeper than ${MAX_JSON_DEPTH} levels`);
    if (containers > MAX_JSON_CONTAINERS)
      return new HttpError(
        400,
        `request JSON holds more than ${MAX_JSON_CONTAINERS} objects and arrays`,
      );
    if (values > MAX_JSON_VALUES)
      return new HttpError(400, `request JSON holds more than ${MAX_JSON_VALUES} values`);
    return undefined;
  }
}

const num = z.number().nullish();
// max_tokens/min_tokens ranges are checked after the context, in vLLM's order (checkPromptLength).
const common = {
  model: z.string({ error: "model must be a string" }),
  max_tokens: z.number().int().nullish(),
  stream: z.boolean().nullish(),
  stream_options: z
    .looseObject({
      include_usage: z.boolean().nullish(),
      continuous_usage_stats: z.boolean().nullish(),
    })
    .nullish(),
  ignore_eos: z.boolean().nullish(),
  min_tokens: z.number().int().nullish(),
  n: z.number().int().min(1).nullish(),
  temperature: num,
  top_p: num,
  top_k: z.number().int().nullish(),
  presence_penalty: num,
  frequency_penalty: num,
  seed: z.number().int().nullish(),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
  user: z.string().nullish(),
};

const contentPart = z.looseObject({ type: z.string(), text: z.string().optional() });
export const chatSchema = z.looseObject({
  ...common,
  messages: z
    .array(
      z.looseObject({
        role: z.string(),
        content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
      }),
    )
    .min(1, "messages must not be empty"),
  max_completion_tokens: z.number().int().nullish(),
  logprobs: z.boolean().nullish(),
});

/** `prompt` is checked by hand (promptField): a zod union over 100k token ids takes ~65 ms. */
export const completionSchema = z.looseObject({
  ...common,
  prompt: z.unknown(),
  logprobs: z.number().int().nullish(),
  echo: z.boolean().nullish(),
});

type ChatBody = z.infer<typeof chatSchema>;
type CompletionBody = z.infer<typeof completionSchema>;

/** The prompt as sent: text to tokenise, or token ids as they are. */
export type PromptInput = { text: string } | { ids: number[] };

/** A validated chat or completions request: what the engine needs, nothing else. */
export interface EngineRequest {
  kind: EndpointKind;
  model: string;
  prompt: PromptInput;
  /** chat: max_completion_tokens, else max_tokens. */
  maxTokens: number | undefined;
  minTokens: number | undefined;
  ignoreEos: boolean;
  stream: boolean;
  includeUsage: boolean;
  seed: number | undefined;
}

export type Validated<T> = { ok: true; value: T } | { ok: false; error: HttpError };

const fail = (status: number, message: string, type?: string): Validated<never> => ({
  ok: false,
  error: new HttpError(status, message, type),
});

function zodMessage(err: z.ZodError): string {
  const i = err.issues[0];
  if (!i) return "invalid request";
  const path = i.path.join(".");
  return path ? `${path}: ${i.message}` : i.message;
}

/** Chat: message contents joined by newlines (chat templates are not modelled). */
function chatPrompt(body: ChatBody): PromptInput {
  const parts: string[] = [];
  for (const m of body.messages) {
    const c = m.content;
    if (typeof c === "string") parts.push(c);
    else if (Array.isArray(c))
      for (const p of c) if (typeof p.text === "string") parts.push(p.text);
  }
  return { text: parts.join("\n") };
}

const PROMPT_TYPES =
  "prompt: expected a string, a list of strings, a list of token ids or a list of token-id lists";

/** Index of the first element that is not a non-negative integer, or -1. */
function badTokenId(ids: unknown[]): number {
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) return i;
  }
  return -1;
}

function promptField(p: unknown): Validated<PromptInput> {
  if (typeof p === "string") return { ok: true, value: { text: p } };
  if (!Array.isArray(p)) return fail(400, PROMPT_TYPES);
  if (p.length === 0) return fail(400, "prompt must not be empty");
  if (typeof p[0] === "number") {
    const bad = badTokenId(p);
    if (bad >= 0) return fail(400, `prompt.${bad}: expected a non-negative integer token id`);
    return { ok: true, value: { ids: p as number[] } };
  }
  if (typeof p[0] !== "string" && !Array.isArray(p[0])) return fail(400, PROMPT_TYPES);
  if (p.length !== 1)
    return fail(
      400,
      "batched prompts (a list of several prompts) are not supported by engine-sim; send one prompt per request",
    );
  const one: unknown = p[0];
  if (typeof one === "string") return { ok: true, value: { text: one } };
  const ids = one as unknown[];
  const bad = badTokenId(ids);
  if (bad >= 0) return fail(400, `prompt.0.${bad}: expected a non-negative integer token id`);
  if (ids.length === 0) return fail(400, "prompt must not be empty");
  return { ok: true, value: { ids: ids as number[] } };
}

/** JSON.parse with vLLM-style 400s; the body must be an object. */
export function parseJsonBody(raw: string): Validated<Record<string, unknown>> {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return fail(400, "Invalid JSON body: could not parse the request body as JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    return fail(400, "request body must be a JSON object");
  return { ok: true, value: json as Record<string, unknown> };
}

/**
 * Validates a parsed body for `kind`, served as `model`: field types, the model name (404 as vLLM
 * answers an unknown model), n = 1, the prompt's shape.
 */
/**
 * SamplingParams' range checks, with vLLM's messages (sampling_params.py `_verify_args`): a value
 * vLLM refuses is refused here too, so a benchmark never measures a request the real engine
 * would have answered 400.
 */
export function samplingRangeError(b: {
  temperature?: number | null | undefined;
  top_p?: number | null | undefined;
  top_k?: number | null | undefined;
  presence_penalty?: number | null | undefined;
  frequency_penalty?: number | null | undefined;
}): string | undefined {
  const t = b.temperature;
  if (t != null && t < 0) return `temperature must be non-negative, got ${t}.`;
  const p = b.top_p;
  if (p != null && !(p > 0 && p <= 1)) return `top_p must be in (0, 1], got ${p}.`;
  const k = b.top_k;
  // 0 disables top-k in recent vLLM, as -1 always did; only below -1 is refused by every version.
  if (k != null && k < -1) return `top_k must be -1 (disable), or at least 1, got ${k}.`;
  for (const [name, v] of [
    ["presence_penalty", b.presence_penalty],
    ["frequency_penalty", b.frequency_penalty],
  ] as const)
    if (v != null && !(v >= -2 && v <= 2)) return `${name} must be in [-2, 2], got ${v}.`;
  return undefined;
}

export function validateBody(
  kind: EndpointKind,
  json: Record<string, unknown>,
  model: string,
): Validated<EngineRequest> {
  const parsed = (kind === "chat" ? chatSchema : completionSchema).safeParse(json);
  if (!parsed.success) return fail(400, zodMessage(parsed.error));
  const body = parsed.data as ChatBody & CompletionBody;
  let prompt: PromptInput;
  if (kind === "chat") prompt = chatPrompt(body);
  else {
    const p = promptField(body.prompt);
    if (!p.ok) return p;
    prompt = p.value;
  }
  if (body.model !== model) return fail(404, `The model \`${body.model}\` does not exist.`);
  if ((body.n ?? 1) !== 1) return fail(400, "n > 1 is not supported by engine-sim (n must be 1)");
  const sampling = samplingRangeError(body);
  if (sampling) return fail(400, sampling);
  const stream = body.stream === true;
  return {
    ok: true,
    value: {
      kind,
      model: body.model,
      prompt,
      // vLLM: `request.max_completion_tokens or request.max_tokens`.
      maxTokens:
        (kind === "chat" ? body.max_completion_tokens || undefined : undefined) ??
        body.max_tokens ??
        undefined,
      minTokens: body.min_tokens ?? undefined,
      ignoreEos: body.ignore_eos ?? false,
      stream,
      includeUsage: stream && body.stream_options?.include_usage === true,
      seed: body.seed ?? undefined,
    },
  };
}

/** parseJsonBody then validateBody. */
export function parseRequest(
  kind: EndpointKind,
  raw: string,
  model: string,
): Validated<EngineRequest> {
  const json = parseJsonBody(raw);
  return json.ok ? validateBody(kind, json.value, model) : json;
}

/**
 * The checks that need the prompt's token count, with vLLM v0.14's messages and order
 * (entrypoints/openai/serving_engine.py `_validate_input` for chat; entrypoints/renderer.py
 * `_create_tokens_prompt` with max_length = max_model_len − max_tokens for completions, hence
 * its "maximum context length" there is what is left for the prompt), then SamplingParams'
 * max_tokens/min_tokens checks. `promptTokens` may be a lower bound once it exceeds the context
 * (the encoder stops counting there).
 */
export function checkPromptLength(
  req: EngineRequest,
  promptTokens: number,
  maxModelLen: number,
): HttpError | undefined {
  const max = req.maxTokens;
  if (promptTokens === 0) return new HttpError(400, "the prompt is empty (0 tokens)");
  const tooLong = (limit: number) =>
    new HttpError(
      400,
      `This model's maximum context length is ${limit} tokens. However, your request has ${promptTokens} input tokens. Please reduce the length of the input messages.`,
    );
  if (req.kind === "completions") {
    const limit = maxModelLen - (max ?? 0);
    if (promptTokens > limit) return tooLong(limit);
  } else {
    if (promptTokens >= maxModelLen) return tooLong(maxModelLen);
    if (max !== undefined && promptTokens + max > maxModelLen)
      return new HttpError(
        400,
        `'max_tokens' or 'max_completion_tokens' is too large: ${max}. This model's maximum context length is ${maxModelLen} tokens and your request has ${promptTokens} input tokens (${max} > ${maxModelLen} - ${promptTokens}).`,
      );
  }
  // Without max_tokens vLLM generates up to the context's end: none left is max_tokens = 0.
  const effective = max ?? maxModelLen - promptTokens;
  if (effective < 1) return new HttpError(400, `max_tokens must be at least 1, got ${effective}.`);
  const min = req.minTokens ?? 0;
  if (min < 0)
    return new HttpError(400, `min_tokens must be greater than or equal to 0, got ${min}.`);
  if (max !== undefined && min > max)
    return new HttpError(
      400,
      `min_tokens must be less than or equal to max_tokens=${max}, got ${min}.`,
    );
  return undefined;
}

/** vLLM's processor refuses ids beyond the vocabulary. */
export function checkTokenIds(ids: readonly number[], vocabSize: number): HttpError | undefined {
  let top = -1;
  for (const id of ids) if (id > top) top = id;
  return top >= vocabSize ? new HttpError(400, `Token id ${top} is out of vocabulary`) : undefined;
}
