#!/usr/bin/env -S node --max-semi-space-size=64
// --max-semi-space-size=64: a larger young generation means ~4× fewer scavenges while the load
// generator sends; at 500 req/s Poisson that cut schedule-lag p99 from 1.1–1.5 ms to 0.4–0.6 ms
// (runners/README.md). Keep `npm start` and bench:loadgen in package.json in step.
// The CLI is TypeScript run through tsx (no build step), so `npx inferbench` works from a clone.
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
