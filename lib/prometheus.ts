/**
 * Prometheus text exposition format (0.0.4): a small strict parser and a writer.
 * Used by the router (replica load from vLLM /metrics), results (server metrics before/after a
 * load point) and tests (engine-sim and router /metrics must parse).
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedMetrics {
  samples: Sample[];
  types: Map<string, string>;
}

export class PrometheusParseError extends Error {
  constructor(
    readonly line: number,
    problem: string,
  ) {
    super(`metrics line ${line}: ${problem}`);
    this.name = "PrometheusParseError";
  }
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

function parseValue(raw: string, line: number): number {
  if (raw === "+Inf" || raw === "Inf") return Number.POSITIVE_INFINITY;
  if (raw === "-Inf") return Number.NEGATIVE_INFINITY;
  if (raw === "NaN") return Number.NaN;
  const v = Number(raw);
  if (raw.trim() === "" || Number.isNaN(v))
    throw new PrometheusParseError(line, `bad value "${raw}"`);
  return v;
}

export function parsePrometheusText(text: string): ParsedMetrics {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.trim();
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^#\s+TYPE\s+(\S+)\s+(\S+)/.exec(line);
      if (m) types.set(m[1]!, m[2]!);
      continue;
    }
    const nameMatch = NAME_RE.exec(line);
    if (!nameMatch) throw new PrometheusParseError(lineNo, `bad metric name in "${line}"`);
    const name = nameMatch[0];
    let pos = name.length;
    const labels: Record<string, string> = {};
    if (line[pos] === "{") {
      pos++;
      while (true) {
        while (line[pos] === " " || line[pos] === ",") pos++;
        if (line[pos] === "}") {
          pos++;
          break;
        }
        const lm = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(pos));
        if (!lm) throw new PrometheusParseError(lineNo, `bad label name in "${line}"`);
        const key = lm[0];
        pos += key.length;
        if (line[pos] !== "=" || line[pos + 1] !== '"') {
          throw new PrometheusParseError(lineNo, `expected ="value" after label ${key}`);
        }
        pos += 2;
        let value = "";
        while (pos < line.length && line[pos] !== '"') {
          if (line[pos] === "\\") {
            const next = line[pos + 1];
            value += next === "n" ? "\n" : (next ?? "");
            pos += 2;
          } else {
            value += line[pos];
            pos++;
          }
        }
        if (line[pos] !== '"') throw new PrometheusParseError(lineNo, "unterminated label value");
        pos++;
        labels[key] = value;
      }
    }
    const rest = line.slice(pos).trim().split(/\s+/);
    if (rest.length < 1 || rest.length > 2 || rest[0] === "") {
      throw new PrometheusParseError(lineNo, `expected "<value> [timestamp]" after ${name}`);
    }
    samples.push({ name, labels, value: parseValue(rest[0]!, lineNo) });
  }
  return { samples, types };
}

/** Sum of every sample named `name` whose labels include `match`. Undefined when none. */
export function sumSamples(
  samples: readonly Sample[],
  name: string,
  match: Record<string, string> = {},
): number | undefined {
  let total: number | undefined;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
    total = (total ?? 0) + s.value;
  }
  return total;
}

/** The first of several names (e.g. vLLM V1 then V0) that has samples. */
export function sumFirstPresent(
  samples: readonly Sample[],
  names: readonly string[],
  match: Record<string, string> = {},
): number | undefined {
  for (const n of names) {
    const v = sumSamples(samples, n, match);
    if (v !== undefined) return v;
  }
  return undefined;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

export function formatLabels(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
}

function formatValue(v: number): string {
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  if (Number.isNaN(v)) return "NaN";
  return String(v);
}

export interface MetricFamily {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  samples: { name?: string; labels: Record<string, string>; value: number }[];
}

export function formatPrometheusText(families: readonly MetricFamily[]): string {
  let out = "";
  for (const f of families) {
    out += `# HELP ${f.name} ${f.help.replace(/\n/g, " ")}\n# TYPE ${f.name} ${f.type}\n`;
    for (const s of f.samples)
      out += `${s.name ?? f.name}${formatLabels(s.labels)} ${formatValue(s.value)}\n`;
  }
  return out;
}
