/**
 * One logger for every command and service. Writes to stderr so that stdout stays clean for
 * `--json` output and piping. Secrets are redacted before anything is written.
 */
import { redactSecrets } from "./redact.ts";

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  child(prefix: string): Logger;
}

let globalLevel: LogLevel = (process.env.INFERBENCH_LOG_LEVEL as LogLevel | undefined) ?? "info";

export function setLogLevel(level: LogLevel): void {
  globalLevel = level;
}

export function createLogger(
  prefix = "",
  write: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
): Logger {
  const emit = (level: LogLevel, msg: string) => {
    if (ORDER[level] < ORDER[globalLevel]) return;
    const tag = level === "info" ? "" : `${level}: `;
    write(redactSecrets(`${prefix ? `[${prefix}] ` : ""}${tag}${msg}`));
  };
  return {
    debug: (m) => emit("debug", m),
    info: (m) => emit("info", m),
    warn: (m) => emit("warn", m),
    error: (m) => emit("error", m),
    child: (p) => createLogger(prefix ? `${prefix}/${p}` : p, write),
  };
}

export const logger = createLogger();
