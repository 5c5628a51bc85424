/** A one-line progress bar on stderr when it is a terminal; silent otherwise. */

export interface ProgressState {
  label: string;
  total: number;
  completed: number;
  errors: number;
  inFlight: number;
  elapsedS: number;
}

export function renderProgress(s: ProgressState, width = 30): string {
  if (!Number.isFinite(s.total))
    return `${s.label} ${s.completed} done, ${s.errors} err, ${s.inFlight} in flight, ${s.elapsedS.toFixed(1)} s`;
  const frac = s.total > 0 ? Math.min(1, s.completed / s.total) : 0;
  const filled = Math.round(frac * width);
  const rate = s.elapsedS > 0 ? s.completed / s.elapsedS : 0;
  return `${s.label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${s.completed}/${s.total} ok+err, ${s.errors} err, ${s.inFlight} in flight, ${rate.toFixed(1)} req/s`;
}

export class ProgressBar {
  private last = 0;
  private shown = false;
  constructor(
    private readonly enabled = Boolean(process.stderr.isTTY),
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}
  update(s: ProgressState, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < 200) return;
    this.last = now;
    this.shown = true;
    this.stream.write(`\r\x1b[K${renderProgress(s)}`);
  }
  done(): void {
    if (this.enabled && this.shown) this.stream.write("\r\x1b[K");
    this.shown = false;
  }
}
