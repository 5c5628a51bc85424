/**
 * `run.budgetUsd` while a run goes on: a priced host accrues its hourly price from the start of its
 * billing window; when the accrual reaches the budget, the run stops as on Ctrl-C (the point in
 * flight is abandoned, completed points are kept and collected, everything is torn down) and says
 * why. Preflight refuses a run whose worst case is above the budget where the worst case is known
 * (gcp-vm's dead-man switch); this watch covers hosts without one (ssh) and runs that take longer
 * than planned. The check is pure; the watch is a timer.
 */
import { UserError } from "../lib/errors.ts";
import type { InfraFacts } from "../results/store.ts";
import type { StackConfig } from "../stacks/schema.ts";

/** The tightest budget of the run's arms (they share one host), or none. */
export function runBudget(configs: Readonly<Record<string, unknown>>): number | undefined {
  const budgets = Object.values(configs)
    .map((c) => (c as Partial<StackConfig>).run?.budgetUsd)
    .filter((b): b is number => typeof b === "number");
  return budgets.length ? Math.min(...budgets) : undefined;
}

/** What the host has cost so far (USD), or undefined when it has no price or no start yet. */
export function accruedUsd(billing: InfraFacts["billing"], now: number): number | undefined {
  const start = billing?.start ? Date.parse(billing.start) : Number.NaN;
  if (billing?.hourlyUsd === undefined || !Number.isFinite(start)) return undefined;
  return (billing.hourlyUsd * Math.max(0, now - start)) / 3_600_000;
}

/** Dollars with the digits a small figure needs ($0.0052, $3.40, $1234). */
const usd = (x: number) => `$${x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(2) : x.toPrecision(2)}`;

export class BudgetReachedError extends UserError {
  constructor(budgetUsd: number, accrued: number, hourlyUsd: number, runId: string) {
    super(
      `run.budgetUsd reached: ~${usd(accrued)} accrued at ${usd(hourlyUsd)}/h, budget ${usd(budgetUsd)}; the run was stopped and torn down, completed load points are kept`,
      {
        exitCode: 1,
        hint: `raise run.budgetUsd in the stack, then continue with: inferbench run --resume ${runId}`,
      },
    );
    this.name = "BudgetReachedError";
  }
}

/**
 * Aborts `controller` with a BudgetReachedError once the accrual reaches the budget. Checked at once,
 * then again when the budget would run out at the current price (between 1 s and 60 s ahead; every
 * second while the host has no price or start yet: provisioning sets them). Returns the function that stops watching.
 */
export function watchBudget(opts: {
  budgetUsd: number | undefined;
  billing: () => InfraFacts["billing"];
  runId: string;
  controller: AbortController;
  now?: () => number;
}): () => void {
  const budget = opts.budgetUsd;
  if (budget === undefined) return () => {};
  const now = opts.now ?? Date.now;
  let timer: NodeJS.Timeout | undefined;
  const check = () => {
    if (opts.controller.signal.aborted) return;
    const b = opts.billing();
    const accrued = accruedUsd(b, now());
    if (accrued !== undefined && accrued >= budget) {
      opts.controller.abort(new BudgetReachedError(budget, accrued, b!.hourlyUsd!, opts.runId));
      return;
    }
    const untilSpent =
      accrued === undefined || !b?.hourlyUsd
        ? 1000
        : ((budget - accrued) / b.hourlyUsd) * 3_600_000;
    timer = setTimeout(check, Math.min(60_000, Math.max(1000, untilSpent)));
    timer.unref();
  };
  check();
  return () => clearTimeout(timer);
}
