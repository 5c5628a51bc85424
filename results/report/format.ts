/** Number formatting shared by the Markdown and HTML reports (one place, so both agree). */

/** Three significant digits for readable latencies; fixed decimals only for small numbers. */
export function fmtNum(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return "—";
  const ax = Math.abs(x);
  if (ax === 0) return "0";
  if (ax >= 1000) return Math.round(x).toLocaleString("en-US");
  if (ax >= 100) return x.toFixed(0);
  if (ax >= 10) return x.toFixed(1);
  if (ax >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}

export function fmtPct(x: number | undefined, digits = 1): string {
  if (x === undefined || !Number.isFinite(x)) return "—";
  return `${(x * 100).toFixed(digits)}%`;
}

/** Signed percentage, e.g. `+12.3%` / `-4.0%`. */
export function fmtSignedPct(x: number): string {
  if (!Number.isFinite(x)) return "—";
  const s = x.toFixed(1);
  return x > 0 || (x === 0 && !s.startsWith("-")) ? `+${s}%` : `${s}%`;
}

/** `+12.3% [+8.1, +16.0]`: the delta with its 95% confidence interval. */
export function fmtDeltaCi(deltaPct: number, lo: number, hi: number): string {
  if (!Number.isFinite(deltaPct)) return "—";
  if (!Number.isFinite(lo) || !Number.isFinite(hi))
    return `${fmtSignedPct(deltaPct)} (no interval)`;
  const b = (v: number) => fmtSignedPct(v).replace("%", "");
  return `${fmtSignedPct(deltaPct)} [${b(lo)}, ${b(hi)}]`;
}
