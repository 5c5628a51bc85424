/** O(1)-per-request counters and a fixed-bucket histogram for the router's /metrics. */
import { formatPrometheusText, type MetricFamily } from "../../lib/prometheus.ts";

export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Array<number>(bounds.length).fill(0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    // Linear scan over ~14 buckets: constant, branch-predictable, cheaper than a binary search here.
    for (let i = 0; i < this.bounds.length; i++)
      if (v <= this.bounds[i]!) {
        this.counts[i]!++;
        return;
      }
  }
  family(name: string, help: string): MetricFamily {
    const samples: MetricFamily["samples"] = [];
    let cum = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cum += this.counts[i]!;
      samples.push({ name: `${name}_bucket`, labels: { le: String(this.bounds[i]) }, value: cum });
    }
    samples.push({ name: `${name}_bucket`, labels: { le: "+Inf" }, value: this.count });
    samples.push({ name: `${name}_sum`, labels: {}, value: this.sum });
    samples.push({ name: `${name}_count`, labels: {}, value: this.count });
    return { name, help, type: "histogram", samples };
  }
}

/** Seconds. */
export const ADDED_LATENCY_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];

export class Counter {
  private readonly m = new Map<string, number>();
  inc(key: string, by = 1): void {
    this.m.set(key, (this.m.get(key) ?? 0) + by);
  }
  get(key: string): number {
    return this.m.get(key) ?? 0;
  }
  entries(): [string, number][] {
    return [...this.m.entries()];
  }
}

export { formatPrometheusText };
