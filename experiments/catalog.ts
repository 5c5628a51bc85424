/**
 * The experiment catalog: files `experiments/*.yaml`, each a list of named experiments over the
 * shipped stacks. An experiment names its stacks (one for both arms, or one per arm) and config
 * overrides; `extends: NAME` deep-merges a base's stacks, config, quick, interleave and autoRates under it
 * (mappings merge key by key; lists and scalars are replaced whole; a base's matrix is not
 * inherited); `matrix:` takes factors (config paths) × levels and expands into one experiment per
 * combination, named `<name>-<factor>-<level>…`.
 *
 * Every expanded experiment is planned through the stacks it names (the schema and the planner's
 * refusals, as `inferbench plan` would), and a schema problem points at the catalog line that set
 * the value (file:line:column).
 */
import { readFileSync, statSync } from "node:fs";
import { LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import { errorMessage, UserError } from "../lib/errors.ts";
import type { ExperimentPlan } from "../runner/plan-file.ts";
import {
  type ConfigPath,
  displayPath,
  formatPath,
  keyPos,
  parseSetOverride,
  type SourcePos,
  StackConfigError,
  suggestion,
} from "../stacks/config.ts";
import type { StackPlan } from "../stacks/plan-types.ts";
import { isSecretPath } from "../stacks/schema.ts";
import { planStack } from "../targets/plan-stack.ts";
import { type AutoRates, autoRates } from "./auto-rates.ts";
import { planArms } from "./execute.ts";
import { experimentPlan } from "./plan.ts";

/** One experiment after inheritance and matrix expansion: what `inferbench run` would get. */
export interface CatalogExperiment {
  name: string;
  description?: string;
  /** One stack (both arms from it) or one per arm. */
  stacks: string[];
  /** `path=value` overrides applied to every arm, in path order (values as JSON, which is YAML). */
  overrides: string[];
  quick: boolean;
  interleave: boolean;
  /** A sweep of auto request rates (a probe run, then the sweep run). */
  autoRates?: AutoRates;
  /** Where it was defined (file:line). */
  definedAt: string;
  /** The base chain, nearest first, and the matrix levels it was expanded with. */
  extends: string[];
  levels: Record<string, unknown>;
}

/** A problem in a catalog file, located like a stack file's. */
export class CatalogError extends UserError {
  constructor(
    readonly file: string,
    readonly problems: { at: string; path: string; message: string }[],
  ) {
    super(
      `invalid experiment catalog ${file}:\n${problems.map((p) => `  ${p.at}: ${p.path || "(root)"}: ${p.message}`).join("\n")}`,
      {
        exitCode: 2,
        hint: "fix the catalog file and run again; `inferbench experiment list FILE` shows what it expands into",
      },
    );
    this.name = "CatalogError";
  }
}

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const entrySchema = z.strictObject({
  name: z.string().regex(NAME, {
    message: "lowercase letters, digits and '-', starting and ending alphanumeric, ≤ 63 chars",
  }),
  description: z.string().max(2000).optional(),
  extends: z.string().min(1).optional(),
  stacks: z.array(z.string().min(1)).min(1).max(2).optional(),
  config: z.record(z.string(), z.unknown()).optional(),
  matrix: z
    .record(z.string().regex(/^[A-Za-z][\w.[\]]*$/, "a config path"), z.array(z.unknown()).min(1))
    .optional(),
  quick: z.boolean().optional(),
  interleave: z.boolean().optional(),
  /** Probe the saturation, then sweep rates at fractions of it (`inferbench run --auto-rates`). */
  autoRates: z
    .strictObject({
      fractions: z.array(z.number()).optional(),
      distribution: z.enum(["poisson", "constant"]).optional(),
      probeConcurrency: z.number().int().optional(),
      probeRequests: z.number().int().optional(),
    })
    .optional(),
});
type Entry = z.output<typeof entrySchema>;

const MAX_EXPANDED = 500;
const MAX_FILE_BYTES = 1024 * 1024;

/** Reads and expands a catalog file. */
export function loadCatalog(file: string, opts: { stacksDir?: string } = {}): CatalogExperiment[] {
  const shown = displayPath(file);
  let text: string;
  try {
    if (statSync(file).size > MAX_FILE_BYTES)
      throw new UserError(`${shown}: larger than ${MAX_FILE_BYTES} bytes; a catalog is a few KB`);
    text = readFileSync(file, "utf8");
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`${shown}: cannot read (${(err as NodeJS.ErrnoException).code ?? err})`, {
      hint: "give a catalog file, e.g. experiments/studies.yaml",
    });
  }
  return expandCatalog(text, shown, opts);
}

type Where = (path: ConfigPath) => string;
type Problems = CatalogError["problems"];
interface Indexed {
  e: Entry;
  /** Position in the file's list. */
  i: number;
}
/** An entry with its bases merged in; each config leaf remembers the catalog line that set it. */
interface Resolved {
  e: Entry;
  chain: string[];
  config: Record<string, unknown>;
  origin: Map<string, string>;
}

/** Parses, resolves `extends`, expands `matrix` and checks every experiment against its stacks. */
export function expandCatalog(
  text: string,
  file: string,
  opts: { stacksDir?: string } = {},
): CatalogExperiment[] {
  const { entries, where } = readEntries(text, file);
  const resolve = inheritance(entries, where, file);
  const problems: Problems = [];
  const out: { x: CatalogExperiment; origin: Map<string, string> }[] = [];
  for (const { e, i } of entries) {
    const r = resolve(e.name);
    if (!r.e.stacks)
      problems.push({
        at: where(["experiments", i, "name"]),
        path: `experiments[${i}].stacks`,
        message: `experiment "${e.name}" names no stacks (nor does a base it extends)`,
      });
    out.push(...expandMatrix(r, i, where, file));
    if (out.length > MAX_EXPANDED)
      throw new CatalogError(file, [
        {
          at: where(["experiments", i]),
          path: `experiments[${i}]`,
          message: `the file expands past ${MAX_EXPANDED} experiments`,
        },
      ]);
  }
  const names = new Map<string, string>();
  for (const { x } of out) {
    if (names.has(x.name))
      problems.push({
        at: x.definedAt,
        path: "name",
        message: `expands to "${x.name}", as does the experiment at ${names.get(x.name)}`,
      });
    names.set(x.name, x.definedAt);
  }
  if (problems.length) throw new CatalogError(file, problems);
  for (const { x, origin } of out) problems.push(...checkAgainstStacks(x, origin, opts.stacksDir));
  if (problems.length) throw new CatalogError(file, problems);
  return out.map(({ x }) => x);
}

/** The file's entries, each schema-checked; duplicate names and unknown bases refused. */
function readEntries(text: string, file: string): { entries: Indexed[]; where: Where } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const where: Where = (path) => {
    for (let d = path.length; d >= 1; d--) {
      const p = keyPos(doc, lc, path.slice(0, d));
      if (p) return `${file}:${p.line}:${p.col}`;
    }
    return `${file}:1:1`;
  };
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const p: SourcePos = lc.linePos(e.pos[0]);
    throw new CatalogError(file, [
      {
        at: `${file}:${p.line}:${p.col}`,
        path: "",
        message: `YAML syntax error: ${e.message.split("\n")[0]}`,
      },
    ]);
  }
  const root = doc.toJS({ maxAliasCount: 100 }) as unknown;
  const list = (root as { experiments?: unknown } | null)?.experiments;
  const extra =
    root && typeof root === "object" ? Object.keys(root).filter((k) => k !== "experiments") : [];
  if (!Array.isArray(list) || list.length === 0 || extra.length)
    throw new CatalogError(file, [
      {
        at: where(extra.length ? [extra[0]!] : ["experiments"]),
        path: extra[0] ?? "experiments",
        message: extra.length
          ? `unknown top-level key "${extra[0]}"; a catalog holds \`experiments:\` only`
          : "expected `experiments:` with a list of experiments (name, stacks, config, extends, matrix)",
      },
    ]);
  const problems: Problems = [];
  const entries: Indexed[] = [];
  const known = Object.keys(entrySchema.shape);
  list.forEach((raw, i) => {
    const r = entrySchema.safeParse(raw);
    if (r.success) {
      entries.push({ e: r.data, i });
      return;
    }
    for (const issue of r.error.issues)
      for (const k of issue.code === "unrecognized_keys" ? issue.keys : [undefined]) {
        const path = ["experiments", i, ...(issue.path as (string | number)[]), ...(k ? [k] : [])];
        problems.push({
          at: where(path),
          path: formatPath(path),
          message: k
            ? `unknown key "${k}"${suggestion(k, known)}; expected one of: ${known.join(", ")}`
            : issue.message,
        });
      }
  });
  // A catalog is a file people commit and share: secrets stay in the environment or Pulumi.
  for (const x of entries) {
    for (const leaf of leaves(x.e.config ?? {}))
      if (isSecretPath(leaf.path))
        problems.push({
          at: where(["experiments", x.i, "config", ...leaf.path]),
          path: formatPath(["experiments", x.i, "config", ...leaf.path]),
          message:
            "a secret does not go in a catalog (the value is not shown); set HF_TOKEN in the environment, or `pulumi config set --secret` on the stack",
        });
    for (const path of Object.keys(x.e.matrix ?? {}))
      if (isSecretPath(parseSetOverride(`${path}=`).path))
        problems.push({
          at: where(["experiments", x.i, "matrix", path]),
          path: `experiments[${x.i}].matrix.${path}`,
          message: "a secret does not go in a catalog (the value is not shown)",
        });
  }
  const byName = new Map<string, Indexed>();
  for (const x of entries) {
    const before = byName.get(x.e.name);
    if (before)
      problems.push({
        at: where(["experiments", x.i, "name"]),
        path: `experiments[${x.i}].name`,
        message: `duplicate name "${x.e.name}" (first at ${where(["experiments", before.i, "name"])})`,
      });
    else byName.set(x.e.name, x);
  }
  for (const x of entries)
    if (x.e.extends !== undefined && !byName.has(x.e.extends))
      problems.push({
        at: where(["experiments", x.i, "extends"]),
        path: `experiments[${x.i}].extends`,
        message: `no experiment "${x.e.extends}" in this file${suggestion(x.e.extends, [...byName.keys()])}`,
      });
  if (problems.length) throw new CatalogError(file, problems);
  return { entries, where };
}

/** `extends`, resolved once per name (cycles refused with the chain). */
function inheritance(entries: Indexed[], where: Where, file: string): (name: string) => Resolved {
  const byName = new Map(entries.map((x) => [x.e.name, x]));
  const resolved = new Map<string, Resolved>();
  const resolve = (name: string, seen: string[]): Resolved => {
    const done = resolved.get(name);
    if (done) return done;
    const { e, i } = byName.get(name)!;
    if (seen.includes(name))
      throw new CatalogError(file, [
        {
          at: where(["experiments", i, "extends"]),
          path: `experiments[${i}].extends`,
          message: `extends cycle: ${[...seen, name].join(" → ")}`,
        },
      ]);
    const base = e.extends ? resolve(e.extends, [...seen, name]) : undefined;
    const origin = new Map(base?.origin ?? []);
    for (const leaf of leaves(e.config ?? {}))
      origin.set(formatPath(leaf.path), where(["experiments", i, "config", ...leaf.path]));
    const r: Resolved = {
      e: {
        ...e,
        stacks: e.stacks ?? base?.e.stacks,
        quick: e.quick ?? base?.e.quick,
        interleave: e.interleave ?? base?.e.interleave,
        autoRates: e.autoRates ?? base?.e.autoRates,
      },
      chain: base ? [base.e.name, ...base.chain] : [],
      config: deepMerge(base?.config ?? {}, e.config ?? {}),
      origin,
    };
    resolved.set(name, r);
    return r;
  };
  return (name) => resolve(name, []);
}

/** The entry's auto rates, checked; a refusal points at the catalog line. */
function autoRatesAt(
  o: NonNullable<Entry["autoRates"]>,
  at: string,
  file: string,
  i: number,
): AutoRates {
  try {
    return autoRates(o);
  } catch (err) {
    throw new CatalogError(file, [
      { at, path: `experiments[${i}].autoRates`, message: errorMessage(err) },
    ]);
  }
}

/** One experiment per combination of the entry's matrix levels (one when it has none). */
function expandMatrix(
  r: Resolved,
  i: number,
  where: Where,
  file: string,
): { x: CatalogExperiment; origin: Map<string, string> }[] {
  const matrix = r.e.matrix ?? {};
  const size = Object.values(matrix).reduce((n, levels) => n * levels.length, 1);
  if (size > MAX_EXPANDED)
    throw new CatalogError(file, [
      {
        at: where(["experiments", i, "matrix"]),
        path: `experiments[${i}].matrix`,
        message: `${size} combinations; at most ${MAX_EXPANDED}`,
      },
    ]);
  return combinations(matrix).map((combo) => {
    let config = r.config;
    const origin = new Map(r.origin);
    for (const [path, level] of Object.entries(combo)) {
      const at = parseSetOverride(`${path}=`).path;
      config = deepMerge(config, nest(at, level));
      origin.set(formatPath(at), where(["experiments", i, "matrix", path]));
    }
    const name = [
      r.e.name,
      ...Object.entries(combo).map(
        ([p, v]) => `${factorName(p)}-${levelName(v, matrix[p]!.indexOf(v))}`,
      ),
    ].join("-");
    return {
      origin,
      x: {
        name,
        ...(r.e.description ? { description: r.e.description } : {}),
        stacks: r.e.stacks ?? [],
        overrides: leaves(config).map((l) => `${formatPath(l.path)}=${JSON.stringify(l.value)}`),
        quick: r.e.quick ?? false,
        interleave: r.e.interleave ?? true,
        ...(r.e.autoRates
          ? {
              autoRates: autoRatesAt(
                r.e.autoRates,
                where(["experiments", i, "autoRates"]),
                file,
                i,
              ),
            }
          : {}),
        definedAt: where(["experiments", i, "name"]),
        extends: r.chain,
        levels: combo,
      },
    };
  });
}

/** Both arms planned as `inferbench run` plans them (quick, overrides, mode), and their plan. */
export function planCatalogExperiment(
  x: CatalogExperiment,
  stacksDir?: string,
): { plans: StackPlan[]; configs: Record<string, unknown>; plan: ExperimentPlan } {
  const { plans, configs } = planArms(x.stacks, x.overrides, x.quick, (stack, overrides) => {
    const { plan, loaded } = planStack(stack, overrides, {
      env: {},
      ...(stacksDir ? { stacksDir } : {}),
    });
    return { plan, config: loaded.config };
  });
  const plan = experimentPlan({
    stacks: x.stacks,
    overrides: x.overrides,
    quick: x.quick,
    plans,
    interleave: x.interleave,
  });
  return { plans, configs, plan };
}

/** The experiment planned; a problem the catalog caused points at the line that set the value. */
function checkAgainstStacks(
  x: CatalogExperiment,
  origin: Map<string, string>,
  stacksDir?: string,
): Problems {
  try {
    planCatalogExperiment(x, stacksDir);
    return [];
  } catch (err) {
    if (!(err instanceof StackConfigError))
      return [{ at: x.definedAt, path: "stacks", message: `${x.name}: ${errorMessage(err)}` }];
    const stack = /Pulumi\.(.+)\.yaml$/.exec(err.file)?.[1] ?? err.file;
    return err.problems.map((p) => {
      // The catalog line that set this path (or the nearest enclosing path it set).
      const set = [...origin.keys()]
        .filter(
          (k) =>
            p.path === k ||
            p.path.startsWith(`${k}.`) ||
            p.path.startsWith(`${k}[`) ||
            k.startsWith(`${p.path}.`) ||
            k.startsWith(`${p.path}[`),
        )
        .sort((a, b) => b.length - a.length);
      const at = !p.fromSet
        ? `${err.file}${p.line ? `:${p.line}` : ""}`
        : set.length
          ? origin.get(set[0]!)!
          : x.definedAt;
      return { at, path: `config.${p.path}`, message: `${x.name} (stack ${stack}): ${p.message}` };
    });
  }
}

/** Leaf values of a config mapping: scalars, lists (replaced whole) and empty mappings. */
export function leaves(
  v: Record<string, unknown>,
  prefix: ConfigPath = [],
): { path: ConfigPath; value: unknown }[] {
  return Object.keys(v)
    .sort()
    .flatMap((k) => {
      const x = v[k];
      return x && typeof x === "object" && !Array.isArray(x) && Object.keys(x).length
        ? leaves(x as Record<string, unknown>, [...prefix, k])
        : [{ path: [...prefix, k], value: x }];
    });
}

/** `extends`: mappings merge key by key, everything else (lists too) is replaced. */
export function deepMerge(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      isPlain(b) && isPlain(v)
        ? deepMerge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

const isPlain = (v: unknown) => v !== null && typeof v === "object" && !Array.isArray(v);

function nest(path: ConfigPath, value: unknown): Record<string, unknown> {
  return path.reduceRight<unknown>((acc, k) => ({ [String(k)]: acc }), value) as Record<
    string,
    unknown
  >;
}

/** Every combination of the matrix's levels, factors in file order. */
export function combinations(matrix: Record<string, unknown[]>): Record<string, unknown>[] {
  return Object.entries(matrix).reduce<Record<string, unknown>[]>(
    (acc, [path, levels]) => acc.flatMap((c) => levels.map((l) => ({ ...c, [path]: l }))),
    [{}],
  );
}

const factorName = (path: string) =>
  path
    .split(".")
    .at(-1)!
    .replace(/\[\d+\]/g, "")
    .toLowerCase();

/** A level's name: the scalar itself (slugged), else its position. */
function levelName(v: unknown, index: number): string {
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") {
    const s = String(v)
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-|-$/g, "");
    if (s) return s;
  }
  return String(index);
}
