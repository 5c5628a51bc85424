#!/usr/bin/env node
// The CLI is TypeScript run through tsx (no build step), so `npx inferbench` works from a clone.
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
