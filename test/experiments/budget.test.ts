import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  accruedUsd,
  BudgetReachedError,
  runBudget,
  watchBudget,
} from "../../experiments/budget.ts";

describe("run.budgetUsd while the run goes on", () => {
  const start = "2026-12-01T10:00:00.000Z";
  const t0 = Date.parse(start);

  it("accrues the hourly price from the billing start; nothing without a price or a start", () => {
    assert.equal(accruedUsd({ start, hourlyUsd: 88 }, t0 + 30 * 60_000), 44);
    assert.equal(accruedUsd({ start, hourlyUsd: 88 }, t0 - 1000), 0);
    assert.equal(accruedUsd({ start }, t0 + 1), undefined);
    assert.equal(accruedUsd({ hourlyUsd: 1 }, t0), undefined);
    assert.equal(accruedUsd(undefined, t0), undefined);
  });

  it("the tightest budget of the arms; none when no arm sets one", () => {
    assert.equal(runBudget({ a: { run: { budgetUsd: 40 } }, b: { run: { budgetUsd: 25 } } }), 25);
    assert.equal(runBudget({ a: { run: {} }, b: {} }), undefined);
  });

  it("aborts with the accrual named once the budget is spent, not before", () => {
    let now = t0 + 10 * 60_000; // $14.67 of $20 at $88/h
    const controller = new AbortController();
    const stop = watchBudget({
      budgetUsd: 20,
      billing: () => ({ start, hourlyUsd: 88 }),
      runId: "20261201-100000-abcd",
      controller,
      now: () => now,
    });
    assert.equal(controller.signal.aborted, false);
    stop();
    now = t0 + 14 * 60_000; // $20.53
    const c2 = new AbortController();
    watchBudget({
      budgetUsd: 20,
      billing: () => ({ start, hourlyUsd: 88 }),
      runId: "20261201-100000-abcd",
      controller: c2,
      now: () => now,
    })();
    const reason = c2.signal.reason as BudgetReachedError;
    assert.ok(reason instanceof BudgetReachedError);
    assert.match(reason.message, /~\$20\.53 accrued at \$88\.00\/h, budget \$20\.00/);
    assert.match(reason.hint ?? "", /inferbench run --resume 20261201-100000-abcd/);
  });
});
