/**
 * Python-compatible text formatting, so that files GenAI-Perf writes with Python come out byte for
 * byte the same: repr(float), f"{v:,.2f}", json.dumps(indent=2) with ensure_ascii, csv.writer rows.
 */

/** A number that Python holds as a float (prints `2.0`, not `2`). */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** repr(float) of CPython 3: shortest round-trip digits, `.0` on integers, e-notation < 1e-4 or ≥ 1e16. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Number.POSITIVE_INFINITY) return "Infinity";
  if (x === Number.NEGATIVE_INFINITY) return "-Infinity";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const sign = x < 0 ? "-" : "";
  const [mant, expStr] = Math.abs(x).toExponential().split("e") as [string, string];
  const exp = Number(expStr);
  const digits = mant.replace(".", "");
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp);
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${e < 10 ? `0${e}` : e}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  if (digits.length <= exp + 1) return `${sign}${digits}${"0".repeat(exp + 1 - digits.length)}.0`;
  return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
}

/** f"{x:,.2f}": exact-value rounding (ties to even, as CPython), thousands separators. */
export function pyFormatComma2(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  const neg = x < 0 || Object.is(x, -0);
  const ax = Math.abs(x);
  let fixed: string;
  // A true tie needs an exact binary value k/8; toFixed breaks ties upwards, CPython to even.
  if (ax < 1e15 && Number.isInteger(ax * 8) && (ax * 100) % 1 === 0.5) {
    const lo = Math.floor(ax * 100);
    const n = lo % 2 === 0 ? lo : lo + 1;
    fixed = `${Math.floor(n / 100)}.${String(n % 100).padStart(2, "0")}`;
  } else {
    fixed = ax.toFixed(2);
  }
  const [intPart, frac] = fixed.split(".") as [string, string];
  const grouped = intPart.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${neg ? "-" : ""}${grouped}.${frac}`;
}

/** Python `str(float)` of a request rate in folder names: `request_rate10.0`. */
export const pyStrFloat = pyFloatRepr;

function pyJsonString(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) =>
    c === "\u007f" ? c : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * json.dumps(value, indent) as CPython writes it (ensure_ascii=True, separators "," / ": ").
 * Plain JS numbers print as Python ints when integral, PyFloat always as floats.
 */
export function pyJsonDumps(value: unknown, indent?: number, level = 0): string {
  if (value === null || value === undefined) return "null";
  if (value instanceof PyFloat) return pyFloatRepr(value.value);
  if (typeof value === "number")
    return Number.isInteger(value) && Math.abs(value) < 1e21 ? String(value) : pyFloatRepr(value);
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "string") return pyJsonString(value);
  const nl = indent === undefined ? "" : `\n${" ".repeat(indent * (level + 1))}`;
  const end = indent === undefined ? "" : `\n${" ".repeat(indent * level)}`;
  const sep = indent === undefined ? ", " : ",";
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return `[${value.map((v) => nl + pyJsonDumps(v, indent, level + 1)).join(sep)}${end}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>).filter(
    ([, v]) => v !== undefined,
  );
  if (entries.length === 0) return "{}";
  return `{${entries
    .map(([k, v]) => `${nl}${pyJsonString(k)}: ${pyJsonDumps(v, indent, level + 1)}`)
    .join(sep)}${end}}`;
}

/** One row as Python's csv.writer writes it (QUOTE_MINIMAL, lineterminator "\r\n"). */
export function pyCsvRow(cells: readonly string[]): string {
  return `${cells
    .map((c) => (/[",\r\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c))
    .join(",")}\r\n`;
}

/** Parses CSV text (RFC 4180 quoting; CRLF or LF). Returns rows of cells. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  let i = 0;
  let any = false;
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else cell += c;
      i++;
      continue;
    }
    if (c === '"') {
      quoted = true;
      any = true;
    } else if (c === ",") {
      row.push(cell);
      cell = "";
      any = true;
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(cell);
      rows.push(any || cell !== "" ? row : []);
      row = [];
      cell = "";
      any = false;
    } else {
      cell += c;
      any = true;
    }
    i++;
  }
  if (any || cell !== "" || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}
