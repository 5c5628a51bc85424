/**
 * Reading a stack: `stacks/Pulumi.<stack>.yaml` (keys `inferbench:<key>` or bare keys, as Pulumi
 * puts them in the project namespace), `--set path=value` overrides, then the zod schema.
 * Every failure is a StackConfigError naming the file, line, config path, what was expected and
 * what was found.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type Document,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  parse as parseYamlValue,
} from "yaml";
import type { z } from "zod";
import { UserError } from "../lib/errors.ts";
import { type StackConfig, stackConfigSchema } from "./schema.ts";

export const PROJECT = "inferbench";
export const STACKS_DIR = dirname(fileURLToPath(import.meta.url));

export type ConfigPath = (string | number)[];

export interface ConfigProblem {
  /** Dotted config path, e.g. `models[0].replicas`. */
  path: string;
  message: string;
  line?: number | undefined;
  /** The value came from a `--set` override, not the file. */
  fromSet?: boolean;
}

export class StackConfigError extends UserError {
  constructor(
    readonly file: string,
    readonly problems: ConfigProblem[],
  ) {
    super(
      `invalid stack config ${file}:\n${problems
        .map(
          (p) =>
            `  ${p.fromSet ? "--set " : `${file}${p.line ? `:${p.line}` : ""}: `}${p.path || "(root)"}: ${p.message}`,
        )
        .join("\n")}`,
      {
        exitCode: 2,
        hint: "Fix the stack file (or the --set value) and run again; `inferbench plan --help` lists the keys.",
      },
    );
    this.name = "StackConfigError";
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out;
}

export function stackFilePath(stack: string, dir = STACKS_DIR): string {
  return join(dir, `Pulumi.${stack}.yaml`);
}

export function listStacks(dir = STACKS_DIR): string[] {
  return readdirSync(dir)
    .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort();
}

interface RawStack {
  /** Project-namespace values with the `inferbench:` prefix stripped. */
  values: Record<string, unknown>;
  /** Provider keys such as `gcp:project`, kept for the Pulumi program. */
  providerConfig: Record<string, unknown>;
  /** Line of a config path in the file, when it came from the file. */
  lineOf(path: ConfigPath): number | undefined;
}

/** Parses a Pulumi stack file's `config:` block. */
export function parseStackYaml(text: string, file: string): RawStack {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0]?.line;
    throw new StackConfigError(file, [
      { path: "", line, message: `YAML syntax error: ${e.message.split("\n")[0]}` },
    ]);
  }
  const root = doc.toJS() as unknown;
  if (root === null || root === undefined) {
    throw new StackConfigError(file, [
      { path: "", message: "file is empty; expected a `config:` mapping" },
    ]);
  }
  if (typeof root !== "object" || Array.isArray(root)) {
    throw new StackConfigError(file, [
      { path: "", line: 1, message: "expected a mapping with a `config:` key" },
    ]);
  }
  const top = root as Record<string, unknown>;
  const extraTop = Object.keys(top).filter(
    (k) => !["config", "encryptionsalt", "secretsprovider", "encryptedkey"].includes(k),
  );
  if (extraTop.length > 0) {
    throw new StackConfigError(
      file,
      extraTop.map((k) => ({
        path: k,
        line: lineOfNode(doc, lineCounter, [k]),
        message: `unknown top-level key; a Pulumi stack file holds \`config:\` (and encryption settings)`,
      })),
    );
  }
  const config = top.config ?? {};
  if (typeof config !== "object" || Array.isArray(config) || config === null) {
    throw new StackConfigError(file, [
      {
        path: "config",
        line: lineOfNode(doc, lineCounter, ["config"]),
        message: "expected a mapping",
      },
    ]);
  }
  const values: Record<string, unknown> = {};
  const providerConfig: Record<string, unknown> = {};
  const keyInFile = new Map<string, string>();
  for (const [key, value] of Object.entries(config as Record<string, unknown>)) {
    const ns = key.indexOf(":");
    if (ns === -1 || key.slice(0, ns) === PROJECT) {
      const bare = ns === -1 ? key : key.slice(ns + 1);
      values[bare] = value;
      keyInFile.set(bare, key);
    } else {
      providerConfig[key] = value;
    }
  }
  return {
    values,
    providerConfig,
    lineOf: (path) => {
      const [first, ...rest] = path;
      if (typeof first !== "string") return undefined;
      const fileKey = keyInFile.get(first);
      if (fileKey === undefined) return undefined;
      // Walk as deep as the file goes: an unknown or missing key points at its parent.
      for (let depth = rest.length; depth >= 0; depth--) {
        const line = lineOfNode(doc, lineCounter, ["config", fileKey, ...rest.slice(0, depth)]);
        if (line !== undefined) return line;
      }
      return undefined;
    },
  };
}

function lineOfNode(doc: Document, lc: LineCounter, path: ConfigPath): number | undefined {
  // Point at the key for mapping entries (that is where a person looks), else at the node.
  const parentPath = path.slice(0, -1);
  const last = path[path.length - 1];
  const parent = parentPath.length === 0 ? doc.contents : doc.getIn(parentPath, true);
  if (isMap(parent) && last !== undefined) {
    const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === last);
    const range = (pair?.key as { range?: [number, number, number] } | undefined)?.range;
    if (range) return lc.linePos(range[0]).line;
  }
  if (isSeq(parent) && typeof last === "number") {
    const item = parent.items[last] as { range?: [number, number, number] } | undefined;
    if (item?.range) return lc.linePos(item.range[0]).line;
  }
  return undefined;
}

export interface SetOverride {
  path: ConfigPath;
  raw: string;
}

/** Parses `a.b[0].c=value` / `a.b.0.c=value`. The value is read as YAML (numbers, booleans, lists). */
export function parseSetOverride(arg: string): SetOverride {
  const eq = arg.indexOf("=");
  if (eq <= 0) {
    throw new UserError(`--set "${arg}": expected path=value, e.g. --set models[0].replicas=3`);
  }
  const pathText = arg.slice(0, eq).trim();
  const raw = arg.slice(eq + 1);
  const path: ConfigPath = [];
  for (const part of pathText.replace(/\[(\d+)\]/g, ".$1").split(".")) {
    if (part === "") throw new UserError(`--set "${arg}": empty segment in path "${pathText}"`);
    const stripped = part.startsWith(`${PROJECT}:`) ? part.slice(PROJECT.length + 1) : part;
    path.push(/^\d+$/.test(stripped) ? Number(stripped) : stripped);
  }
  return { path, raw };
}

export function applyOverride(values: Record<string, unknown>, o: SetOverride): void {
  let value: unknown;
  try {
    value = parseYamlValue(o.raw);
  } catch {
    value = o.raw;
  }
  let node: unknown = values;
  for (let i = 0; i < o.path.length; i++) {
    const key = o.path[i]!;
    const last = i === o.path.length - 1;
    const here = formatPath(o.path.slice(0, i + 1));
    if (typeof key === "number") {
      if (!Array.isArray(node)) {
        throw new UserError(
          `--set ${formatPath(o.path)}: "${formatPath(o.path.slice(0, i))}" is not a list, cannot index [${key}]`,
        );
      }
      if (key > node.length) {
        throw new UserError(
          `--set ${formatPath(o.path)}: index ${key} is past the end of a list of ${node.length}`,
        );
      }
    } else if (node === null || typeof node !== "object" || Array.isArray(node)) {
      throw new UserError(
        `--set ${formatPath(o.path)}: "${formatPath(o.path.slice(0, i))}" is not a mapping, cannot set "${key}"`,
      );
    }
    const container = node as Record<string | number, unknown>;
    if (last) {
      container[key] = value;
    } else {
      if (container[key] === undefined)
        container[key] = typeof o.path[i + 1] === "number" ? [] : {};
      node = container[key];
      if (node === null || typeof node !== "object") {
        throw new UserError(
          `--set ${formatPath(o.path)}: "${here}" holds a value, not a mapping or list`,
        );
      }
    }
  }
}

export interface LoadedStack {
  name: string;
  file: string;
  config: StackConfig;
  providerConfig: Record<string, unknown>;
}

export interface LoadOptions {
  dir?: string;
  overrides?: string[];
  /** Extra environment (HF_TOKEN) so tests need not touch process.env. */
  env?: NodeJS.ProcessEnv;
}

/** Reads, overrides and validates a stack by name. */
export function loadStack(name: string, opts: LoadOptions = {}): LoadedStack {
  const dir = opts.dir ?? STACKS_DIR;
  const file = stackFilePath(name, dir);
  if (!/^[A-Za-z0-9_.-]+$/.test(name))
    throw new UserError(`stack name "${name}" has characters Pulumi does not allow`);
  if (!existsSync(file)) {
    const known = existsSync(dir) ? listStacks(dir) : [];
    throw new UserError(`no stack "${name}": ${file} does not exist`, {
      hint: known.length ? `stacks here: ${known.join(", ")}${suggestion(name, known)}` : undefined,
    });
  }
  return loadStackText(readFileSync(file, "utf8"), displayPath(file), name, opts);
}

export function loadStackText(
  text: string,
  file: string,
  name: string,
  opts: LoadOptions = {},
): LoadedStack {
  const raw = parseStackYaml(text, file);
  const overrides = (opts.overrides ?? []).map(parseSetOverride);
  for (const o of overrides) applyOverride(raw.values, o);
  const env = opts.env ?? process.env;
  if (raw.values.hfToken === undefined && env.HF_TOKEN) raw.values.hfToken = env.HF_TOKEN;
  const fromSet = (path: ConfigPath) =>
    overrides.some((o) => o.path.length <= path.length && o.path.every((p, i) => p === path[i]));
  try {
    const config = validateConfig(raw.values, file, raw.lineOf);
    return { name, file, config, providerConfig: raw.providerConfig };
  } catch (err) {
    if (!(err instanceof StackConfigError) || overrides.length === 0) throw err;
    const problems = err.problems.map((p) => {
      if (p.path === "") return p;
      const path = parseSetOverride(`${p.path}=`).path;
      return fromSet(path) ? { ...p, line: undefined, fromSet: true } : p;
    });
    throw new StackConfigError(file, problems);
  }
}

/** Validates plain values (as the Pulumi program gets them) against the schema. */
export function validateConfig(
  values: Record<string, unknown>,
  file: string,
  lineOf: (path: ConfigPath) => number | undefined = () => undefined,
): StackConfig {
  const result = stackConfigSchema.safeParse(values);
  if (result.success) return result.data;
  throw new StackConfigError(file, describeIssues(result.error.issues, values, lineOf));
}

export function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  values: unknown,
  lineOf: (path: ConfigPath) => number | undefined,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of issues) {
    const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
    if (issue.code === "unrecognized_keys") {
      const known = keysAtPath(stackConfigSchema, path);
      for (const key of issue.keys) {
        const full = [...path, key];
        problems.push({
          path: formatPath(full),
          line: lineOf(full),
          message: `unknown key "${key}"${suggestion(key, known)}; expected one of: ${known.join(", ")}`,
        });
      }
      continue;
    }
    const found = valueAt(values, path);
    const foundText = found === undefined ? "nothing (missing)" : `${JSON.stringify(found)}`;
    let message = issue.message;
    if (issue.code === "invalid_type") message = `expected ${issue.expected}`;
    if (issue.code === "invalid_value") {
      message = `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    }
    if (
      issue.code === "invalid_union" &&
      path.length > 0 &&
      formatPath(path).startsWith("workload.loadPoints")
    ) {
      message =
        "expected {concurrency: N} or {requestRate: R, distribution?, burstiness?, maxConcurrency?}";
    }
    problems.push({
      path: formatPath(path),
      line: lineOf(path),
      message: `${message}; found ${truncate(foundText)}`,
    });
  }
  return problems;
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function valueAt(values: unknown, path: ConfigPath): unknown {
  let node = values;
  for (const p of path) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<string | number, unknown>)[p];
  }
  return node;
}

type AnySchema = { _zod: { def: Record<string, unknown> & { type: string } } };

/** The keys an object schema allows at a config path (for "did you mean"). */
export function keysAtPath(schema: unknown, path: ConfigPath): string[] {
  let nodes: AnySchema[] = [schema as AnySchema];
  for (const p of path) {
    const next: AnySchema[] = [];
    for (const n of nodes.flatMap(unwrap)) {
      const def = n._zod.def;
      if (def.type === "object" && typeof p === "string") {
        const child = (def.shape as Record<string, AnySchema>)[p];
        if (child) next.push(child);
      } else if (def.type === "array" && typeof p === "number") {
        next.push(def.element as AnySchema);
      } else if (def.type === "record" && typeof p === "string") {
        next.push(def.valueType as AnySchema);
      }
    }
    nodes = next;
  }
  const keys = new Set<string>();
  for (const n of nodes.flatMap(unwrap)) {
    if (n._zod.def.type === "object")
      for (const k of Object.keys(n._zod.def.shape as object)) keys.add(k);
  }
  return [...keys].sort();
}

function unwrap(n: AnySchema): AnySchema[] {
  const def = n._zod.def;
  switch (def.type) {
    case "optional":
    case "nullable":
    case "default":
    case "prefault":
    case "readonly":
    case "catch":
      return unwrap(def.innerType as AnySchema);
    case "pipe":
      return unwrap(def.in as AnySchema);
    case "union":
      return (def.options as AnySchema[]).flatMap(unwrap);
    default:
      return [n];
  }
}

/** ` (did you mean "x"?)` when a known word is close enough, else "". */
export function suggestion(word: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDist = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = editDistance(word.toLowerCase(), k.toLowerCase());
    if (d < bestDist) {
      bestDist = d;
      best = k;
    }
  }
  return best !== undefined && bestDist <= Math.max(2, Math.floor(word.length / 3))
    ? ` (did you mean "${best}"?)`
    : "";
}

export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** Repository-relative path helper for messages. */
export function displayPath(file: string): string {
  const rel = resolve(file).replace(`${resolve(STACKS_DIR, "..")}/`, "");
  return rel;
}
