/**
 * One schema for results imported from peer tools: per load point, inferbench's per-request
 * records (what compare reads), and per metric the source tool and its definition, so that
 * compare can refuse to put two different definitions side by side.
 */
import { InputFileError } from "../../lib/errors.ts";

export const IMPORT_FILE = "import.json";
export const IMPORT_SCHEMA_VERSION = 1;

export type PeerTool = "aiperf" | "genai-perf" | "perf-analyzer";
export const PEER_TOOLS: readonly PeerTool[] = ["aiperf", "genai-perf", "perf-analyzer"];

/** The per-request metrics compare reads; each import says how its tool defines them. */
export type DefinedMetric =
  | "time_to_first_token"
  | "inter_token_latency"
  | "request_latency"
  | "output_sequence_length";
export const DEFINED_METRICS: readonly DefinedMetric[] = [
  "time_to_first_token",
  "inter_token_latency",
  "request_latency",
  "output_sequence_length",
];

export interface MetricDefinition {
  /** Who measured it, e.g. "aiperf 0.13.0". */
  tool: string;
  /** Compared between sides: equal ids mean the same definition. */
  id: string;
  /** The definition in words. */
  text: string;
}

export type MetricDefinitions = Record<DefinedMetric, MetricDefinition>;

/** GenAI-Perf's definitions, which inferbench's own load generator and re-measurement use. */
export function genaiPerfDefinitions(tool: string): MetricDefinitions {
  return {
    time_to_first_token: {
      tool,
      id: "ttft:first-non-empty-response-minus-send",
      text: "first response with non-empty text − request sent",
    },
    inter_token_latency: {
      tool,
      id: "itl:(latency-ttft)/(osl-1)",
      text: "(request latency − TTFT) / (OSL − 1) per request (vLLM calls this TPOT)",
    },
    request_latency: {
      tool,
      id: "e2e:last-response-minus-send",
      text: "last response − request sent",
    },
    output_sequence_length: {
      tool,
      id: "osl:client-tokenizer-of-output-text",
      text: "tokens of the concatenated output text, client tokenizer, no special tokens",
    },
  };
}

/** What a side measured with when it carries no import record: inferbench itself. */
export const INFERBENCH_DEFINITIONS = genaiPerfDefinitions("inferbench");

/** One request in inferbench's record schema (profile_export_inferbench_requests.jsonl). */
export interface ImportedRecord {
  index: number;
  model: string;
  status: "ok" | "error";
  /** ns since the epoch (or the tool's clock), as decimal strings: exact beyond 2^53. */
  sent_ns: string;
  end_ns: string;
  ttft_ns?: number;
  latency_ns?: number;
  isl_tokens?: number;
  osl_tokens?: number;
  http_status?: number;
  error?: string;
}

export interface ImportedPoint {
  /** Run folder name, GenAI-Perf style: <model>-openai-<type>-<concurrencyN|request_rateR>. */
  folder: string;
  model: string;
  endpointType: "chat" | "completions";
  endpoint: string;
  streaming: boolean;
  mode: "concurrency" | "request_rate";
  value: number;
  records: ImportedRecord[];
  /** Source files copied unchanged into the point folder (absolute paths). */
  copies: string[];
}

export interface ImportedRun {
  tool: PeerTool;
  toolVersion: string;
  /** The source's own schema version, where it has one (AIPerf's schema_version). */
  sourceSchemaVersion?: string;
  source: string;
  definitions: MetricDefinitions;
  points: ImportedPoint[];
  /** Cross-checks against the tool's own summary, in words. */
  checks: string[];
  notes: string[];
}

/** A field of an input file that is missing or of the wrong kind: names the file and the path. */
export function fieldError(
  file: string,
  path: string,
  expected: string,
  got: unknown,
): InputFileError {
  const seen =
    got === undefined
      ? "missing"
      : `got ${Array.isArray(got) ? "an array" : got === null ? "null" : typeof got}${
          typeof got === "string" || typeof got === "number"
            ? ` ${JSON.stringify(got).slice(0, 60)}`
            : ""
        }`;
  return new InputFileError(file, undefined, `${path}: expected ${expected}, ${seen}`);
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
