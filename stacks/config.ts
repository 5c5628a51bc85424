/**
 * Reading a stack: `stacks/Pulumi.<stack>.yaml` (keys `inferbench:<key>` or bare keys, as Pulumi
 * puts them in the project namespace), `--set path=value` overrides, then the zod schema.
 * Every failure is a StackConfigError naming the file, line, config path, what was expected and
 * what was found.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type Document,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  parse as parseYamlValue,
  visit,
} from "yaml";
import type { z } from "zod";
import { UserError } from "../lib/errors.ts";
import { isSecretPath, type StackConfig, stackConfigSchema } from "./schema.ts";

export const PROJECT = "inferbench";
export const STACKS_DIR = dirname(fileURLToPath(import.meta.url));

/** A stack file past this size is not a stack file (they are a few KB). */
export const MAX_STACK_FILE_BYTES = 1_048_576;
/** YAML alias expansions allowed in a stack file (more is an alias bomb). */
export const MAX_ALIAS_COUNT = 100;
/** Keys that would reach an object's prototype when assigned. */
export const PROTOTYPE_KEYS: readonly string[] = ["__proto__", "constructor", "prototype"];

export type ConfigPath = (string | number)[];

/** 1-based line and column in the stack file. */
export interface SourcePos {
  line: number;
  col: number;
}

export interface ConfigProblem {
  /** Dotted config path, e.g. `models[0].replicas`. */
  path: string;
  message: string;
  line?: number | undefined;
  column?: number | undefined;
  /** The value came from a `--set` override, not the file. */
  fromSet?: boolean;
}

const at = (p: SourcePos | undefined) =>
  p ? { line: p.line, column: p.col } : { line: undefined, column: undefined };

export class StackConfigError extends UserError {
  constructor(
    readonly file: string,
    readonly problems: ConfigProblem[],
  ) {
    super(
      `invalid stack config ${file}:\n${problems
        .map(
          (p) =>
            `  ${p.fromSet ? "--set " : `${file}${p.line ? `:${p.line}${p.column ? `:${p.column}` : ""}` : ""}: `}${p.path || "(root)"}: ${p.message}`,
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
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort();
}

interface RawStack {
  /** Project-namespace values with the `inferbench:` prefix stripped. */
  values: Record<string, unknown>;
  /** Provider keys such as `gcp:project`, kept for the Pulumi program. */
  providerConfig: Record<string, unknown>;
  /**
   * Position of a config path in the file: the key itself, else the nearest enclosing key that
   * is in the file (a default or missing key points at its parent), else the `config:` key.
   */
  posOf(path: ConfigPath): SourcePos;
  /** Position of the path itself, when the file has it. */
  exactPosOf(path: ConfigPath): SourcePos | undefined;
}

/** Parses a Pulumi stack file's `config:` block. */
export function parseStackYaml(text: string, file: string): RawStack {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const posAt = (offset: number | undefined): SourcePos =>
    offset === undefined ? { line: 1, col: 1 } : lineCounter.linePos(offset);
  if (doc.errors.length > 0) {
    throw new StackConfigError(
      file,
      doc.errors.slice(0, 5).map((e) => ({
        path: pathAtOffset(doc, e.pos[0]),
        ...at(posAt(e.pos[0])),
        message: `YAML syntax error: ${yamlMessage(e.code, e.message)}`,
      })),
    );
  }
  refusePrototypeKeys(doc, file, posAt);
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // Unresolved aliases and alias bombs throw here (ReferenceError), before any value exists.
    throw new StackConfigError(file, [
      {
        path: pathAtOffset(doc, firstAliasOffset(doc)),
        ...at(posAt(firstAliasOffset(doc))),
        message: /Excessive alias count/.test(errorText(err))
          ? `YAML aliases expand more than ${MAX_ALIAS_COUNT} times (an alias bomb?); write the values out`
          : `YAML alias error: ${errorText(err).split("\n")[0]}`,
      },
    ]);
  }
  if (root === null || root === undefined) {
    throw new StackConfigError(file, [
      { path: "", line: 1, column: 1, message: "file is empty; expected a `config:` mapping" },
    ]);
  }
  if (typeof root !== "object" || Array.isArray(root)) {
    throw new StackConfigError(file, [
      {
        path: "",
        ...at(posAt(nodeOffset(doc.contents))),
        message: "expected a mapping with a `config:` key",
      },
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
        ...at(keyPos(doc, lineCounter, [k]) ?? { line: 1, col: 1 }),
        message: `unknown top-level key ${JSON.stringify(k)}; a Pulumi stack file holds \`config:\` (and encryption settings)${suggestion(k, ["config"])}`,
      })),
    );
  }
  const configPos = keyPos(doc, lineCounter, ["config"]) ?? { line: 1, col: 1 };
  const config = top.config ?? {};
  if (typeof config !== "object" || Array.isArray(config) || config === null) {
    throw new StackConfigError(file, [
      { path: "config", ...at(configPos), message: "expected a mapping" },
    ]);
  }
  const values: Record<string, unknown> = {};
  const providerConfig: Record<string, unknown> = {};
  const keyInFile = new Map<string, string>();
  const problems: ConfigProblem[] = [];
  for (const [key, value] of Object.entries(config as Record<string, unknown>)) {
    const ns = key.indexOf(":");
    const namespace = ns === -1 ? PROJECT : key.slice(0, ns);
    if (namespace === PROJECT) {
      const bare = ns === -1 ? key : key.slice(ns + 1);
      const earlier = keyInFile.get(bare);
      if (earlier !== undefined) {
        // `target` and `inferbench:target` are one key: the second would silently win.
        const p = keyPos(doc, lineCounter, ["config", key]);
        problems.push({
          path: bare,
          ...at(p),
          message: `set twice, as "${earlier}" (line ${keyPos(doc, lineCounter, ["config", earlier])?.line}) and as "${key}"; both mean ${PROJECT}:${bare}, keep one`,
        });
      }
      values[bare] = value;
      keyInFile.set(bare, key);
    } else if (namespace !== PROJECT && suggestion(namespace, [PROJECT]) !== "") {
      problems.push({
        path: key,
        ...at(keyPos(doc, lineCounter, ["config", key])),
        message: `unknown namespace "${namespace}" (did you mean "${PROJECT}:${key.slice(ns + 1)}"?); keys of other namespaces are passed to Pulumi providers unread`,
      });
    } else {
      providerConfig[key] = value;
    }
  }
  if (problems.length > 0) throw new StackConfigError(file, problems);
  const exactPosOf = (path: ConfigPath): SourcePos | undefined => {
    const [first, ...rest] = path;
    if (typeof first !== "string") return undefined;
    const fileKey = keyInFile.get(first);
    if (fileKey === undefined) return undefined;
    return keyPos(doc, lineCounter, ["config", fileKey, ...rest]);
  };
  return {
    values,
    providerConfig,
    exactPosOf,
    posOf: (path) => {
      // Walk as deep as the file goes: an unknown or missing key points at its parent.
      for (let depth = path.length; depth >= 1; depth--) {
        const pos = exactPosOf(path.slice(0, depth));
        if (pos) return pos;
      }
      return configPos;
    },
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The yaml library's message, first line only (never source text: it may hold a secret). */
function yamlMessage(code: string, message: string): string {
  const first = message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
  return code === "DUPLICATE_KEY" ? `${first} (a key appears twice in one mapping)` : first;
}

function nodeOffset(node: unknown): number | undefined {
  return (node as { range?: [number, number, number] } | null)?.range?.[0];
}

function firstAliasOffset(doc: Document): number | undefined {
  let offset: number | undefined;
  visit(doc, {
    Alias(_key, node) {
      offset ??= nodeOffset(node);
      return visit.BREAK;
    },
  });
  return offset;
}

/** `__proto__`, `constructor` and `prototype` keys anywhere in the file are refused. */
function refusePrototypeKeys(
  doc: Document,
  file: string,
  posAt: (offset: number | undefined) => SourcePos,
): void {
  const problems: ConfigProblem[] = [];
  visit(doc, {
    Pair(_key, pair, path) {
      if (!isScalar(pair.key) || !PROTOTYPE_KEYS.includes(String(pair.key.value))) return;
      const keys = configPathOf([...path, pair]);
      problems.push({
        path: formatPath(keys),
        ...at(posAt(nodeOffset(pair.key))),
        message: `key "${String(pair.key.value)}" is not allowed (${PROTOTYPE_KEYS.join(", ")} would reach JavaScript object prototypes); rename or remove it`,
      });
    },
  });
  if (problems.length > 0) throw new StackConfigError(file, problems);
}

/**
 * The config path of a node from its ancestors (`config` and the `inferbench:` namespace
 * dropped): what the error names next to the position.
 */
function configPathOf(ancestors: readonly unknown[]): ConfigPath {
  const keys: ConfigPath = [];
  ancestors.forEach((node, i) => {
    if (isPair(node) && isScalar(node.key)) keys.push(String(node.key.value));
    else if (isSeq(node)) {
      const idx = node.items.indexOf(ancestors[i + 1] as never);
      if (idx >= 0) keys.push(idx);
    }
  });
  if (keys[0] === "config") {
    keys.shift();
    if (typeof keys[0] === "string" && keys[0].startsWith(`${PROJECT}:`))
      keys[0] = keys[0].slice(PROJECT.length + 1);
  }
  return keys;
}

/** The config path of the innermost key whose entry holds a source offset (for syntax errors). */
function pathAtOffset(doc: Document, offset: number | undefined): string {
  if (offset === undefined) return "";
  let best: unknown[] = [];
  visit(doc, {
    Pair(_key, pair, path) {
      const start = nodeOffset(pair.key);
      const end = (pair.value as { range?: [number, number, number] } | null)?.range?.[2];
      if (start !== undefined && start <= offset && (end === undefined || offset <= end))
        best = [...path, pair];
    },
  });
  return formatPath(configPathOf(best));
}

/** The first prototype key inside a plain value (a `--set` value read as YAML), if any. */
export function prototypeKeyIn(value: unknown, depth = 0): string | undefined {
  if (value === null || typeof value !== "object" || depth > 64) return undefined;
  for (const k of Object.keys(value)) {
    if (PROTOTYPE_KEYS.includes(k)) return k;
    const inner = prototypeKeyIn((value as Record<string, unknown>)[k], depth + 1);
    if (inner) return inner;
  }
  return undefined;
}

export function keyPos(doc: Document, lc: LineCounter, path: ConfigPath): SourcePos | undefined {
  // Point at the key for mapping entries (that is where a person looks), else at the node.
  const parentPath = path.slice(0, -1);
  const last = path[path.length - 1];
  let parent: unknown;
  try {
    parent = parentPath.length === 0 ? doc.contents : doc.getIn(parentPath, true);
  } catch {
    return undefined;
  }
  if (isMap(parent) && last !== undefined) {
    // An empty key (`: value`) reads as "" in the values: match it too.
    const pair = parent.items.find(
      (p) =>
        (isScalar(p.key) && p.key.value === last) ||
        (last === "" && (p.key === null || (isScalar(p.key) && p.key.value === null))),
    );
    const offset = nodeOffset(pair?.key) ?? nodeOffset(pair?.value);
    if (offset !== undefined) return lc.linePos(offset);
  }
  if (isSeq(parent) && typeof last === "number") {
    const offset = nodeOffset(parent.items[last]);
    if (offset !== undefined) return lc.linePos(offset);
  }
  return undefined;
}

export interface SetOverride {
  path: ConfigPath;
  raw: string;
}

/**
 * Parses `a.b[0].c=value` / `a.b.0.c=value`. The value is read as YAML (numbers, booleans,
 * lists). Messages quote the path, never the value (it may be a secret).
 */
export function parseSetOverride(arg: string): SetOverride {
  const eq = arg.indexOf("=");
  if (eq <= 0) {
    throw new UserError(
      "--set: expected path=value, e.g. --set models[0].replicas=3 (the argument has no path before an '='; it is not shown, as it may be a secret)",
    );
  }
  const pathText = arg.slice(0, eq).trim();
  const raw = arg.slice(eq + 1);
  const path: ConfigPath = [];
  for (const part of pathText.replace(/\[(\d+)\]/g, ".$1").split(".")) {
    if (part === "") throw new UserError(`--set ${pathText}: empty segment in the path`);
    const stripped = part.startsWith(`${PROJECT}:`) ? part.slice(PROJECT.length + 1) : part;
    if (PROTOTYPE_KEYS.includes(stripped))
      throw new UserError(
        `--set ${pathText}: "${stripped}" is not a config key (${PROTOTYPE_KEYS.join(", ")} would reach JavaScript object prototypes)`,
      );
    path.push(/^\d+$/.test(stripped) ? Number(stripped) : stripped);
  }
  return { path, raw };
}

export function applyOverride(values: Record<string, unknown>, o: SetOverride): void {
  let value: unknown;
  try {
    value = parseYamlValue(o.raw, { maxAliasCount: MAX_ALIAS_COUNT });
  } catch {
    value = o.raw;
  }
  const protoKey = prototypeKeyIn(value);
  if (protoKey)
    throw new UserError(
      `--set ${formatPath(o.path)}: the value holds the key "${protoKey}", which is not allowed (${PROTOTYPE_KEYS.join(", ")} would reach JavaScript object prototypes)`,
    );
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
      if (!Object.hasOwn(container, key) || container[key] === undefined)
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
  /**
   * Where a config path came from, for messages: `file:line:col` (the key, or the nearest
   * enclosing key in the file), or `--set` when an override set it.
   */
  locate(path: ConfigPath): string;
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
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name.startsWith("."))
    throw new UserError(
      `stack name "${name.slice(0, 64)}" has characters Pulumi does not allow (letters, digits, _ . - only)`,
    );
  const file = stackFilePath(name, dir);
  const shown = displayPath(file);
  let size: number;
  try {
    const st = statSync(file);
    if (st.isDirectory())
      throw new UserError(`stack "${name}": ${shown} is a directory, not a stack file`, {
        hint: `a stack is one YAML file, stacks/Pulumi.<name>.yaml; move the directory away`,
      });
    if (!st.isFile())
      throw new UserError(`stack "${name}": ${shown} is not a regular file`, {
        hint: "a stack is one YAML file, stacks/Pulumi.<name>.yaml",
      });
    size = st.size;
  } catch (err) {
    if (err instanceof UserError) throw err;
    const known = listStacks(dir);
    throw new UserError(`no stack "${name}": ${shown} does not exist`, {
      hint: known.length ? `stacks here: ${known.join(", ")}${suggestion(name, known)}` : undefined,
    });
  }
  if (size > MAX_STACK_FILE_BYTES)
    throw new UserError(
      `stack "${name}": ${shown} is ${size.toLocaleString("en-US")} bytes; a stack file may be at most ${MAX_STACK_FILE_BYTES.toLocaleString("en-US")} bytes`,
      { hint: "is this the right file? stack files are a few KB of YAML" },
    );
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UserError(
      `stack "${name}": cannot read ${shown} (${(err as NodeJS.ErrnoException).code ?? errorText(err)})`,
      {
        hint: "check the file's permissions",
      },
    );
  }
  return loadStackText(text, shown, name, opts);
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
  const locate = (path: ConfigPath): string => {
    if (fromSet(path)) return "--set";
    const p = raw.posOf(path);
    return `${file}:${p.line}:${p.col}`;
  };
  const pos = (path: ConfigPath) => raw.posOf(path);
  try {
    const config = validateConfig(raw.values, file, pos);
    return { name, file, config, providerConfig: raw.providerConfig, locate };
  } catch (err) {
    if (!(err instanceof StackConfigError) || overrides.length === 0) throw err;
    const problems = err.problems.map((p) => {
      if (p.path === "") return p;
      const path = parseSetOverride(`${p.path}=`).path;
      return fromSet(path) ? { ...p, line: undefined, column: undefined, fromSet: true } : p;
    });
    throw new StackConfigError(file, problems);
  }
}

/** Validates plain values (as the Pulumi program gets them) against the schema. */
export function validateConfig(
  values: Record<string, unknown>,
  file: string,
  posOf: (path: ConfigPath) => SourcePos | undefined = () => undefined,
): StackConfig {
  const result = stackConfigSchema.safeParse(values);
  if (result.success) return result.data;
  throw new StackConfigError(file, describeIssues(result.error.issues, values, posOf));
}

export function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  values: unknown,
  posOf: (path: ConfigPath) => SourcePos | undefined,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of issues) {
    const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
    if (issue.code === "invalid_union" && !isSecretPath(path)) {
      // The one branch the value was meant for (its keys all fit) says what is wrong in it.
      const fitting = issue.errors.filter((branch) =>
        branch.every((i) => i.code !== "unrecognized_keys" && i.path.length > 0),
      );
      if (fitting.length === 1) {
        const inner = fitting[0]!.map((i) => ({ ...i, path: [...path, ...i.path] }));
        problems.push(...describeIssues(inner as z.core.$ZodIssue[], values, posOf));
        continue;
      }
    }
    if (issue.code === "unrecognized_keys") {
      const known = keysAtPath(stackConfigSchema, path);
      for (const key of issue.keys) {
        const full = [...path, key];
        problems.push({
          path: formatPath(full),
          ...at(posOf(full)),
          message: `unknown key "${key}"${suggestion(key, known)}; expected one of: ${known.join(", ")}`,
        });
      }
      continue;
    }
    const found = valueAt(values, path);
    // A secret's value is never shown, well-formed or not: only what kind of value it is.
    const foundText =
      found === undefined
        ? "nothing (missing)"
        : isSecretPath(path)
          ? `${kindOf(found)} (the value is not shown: it is a secret)`
          : truncate(
              typeof found === "number" ? String(found) : (JSON.stringify(found) ?? String(found)),
            );
    let message = issue.message;
    if (issue.code === "invalid_type") message = `expected ${issue.expected}`;
    if (issue.code === "invalid_value") {
      message = `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    }
    if (issue.code === "invalid_key") {
      const inner = (issue as { issues?: { message: string }[] }).issues?.[0]?.message;
      message = `key ${JSON.stringify(String(path[path.length - 1]))} ${inner ?? "is not allowed"}`;
    }
    if (issue.code === "invalid_union" && !isSecretPath(path)) {
      const alternatives = issue.errors.flatMap((branch) => {
        const root = branch.find((i) => i.path.length === 0);
        if (root?.code === "invalid_value") return root.values.map((v) => JSON.stringify(v));
        if (root?.code === "invalid_type")
          return [`a${/^[aeio]/.test(root.expected) ? "n" : ""} ${root.expected}`];
        return [];
      });
      if (alternatives.length > 0) message = `expected ${alternatives.join(" or ")}`;
    }
    if (issue.code === "invalid_union" && isSecretPath(path)) {
      message =
        "expected a non-empty string, or {secure: <ciphertext>} as `pulumi config set --secret` writes it";
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
      ...at(posOf(path)),
      message: `${message}; found ${foundText}`,
    });
  }
  return problems;
}

/** What kind of value a secret holds, without any of its content. */
function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object")
    return `a mapping with keys ${Object.keys(v as object).join(", ") || "(none)"}`;
  if (typeof v === "string") return v === "" ? "an empty string" : "a string";
  return `a ${typeof v}`;
}

function truncate(s: string): string {
  // Code points, not UTF-16 units: never cut a character in half.
  const chars = [...s];
  if (chars.length > 80) return `${chars.slice(0, 77).join("")}...`;
  return s;
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
