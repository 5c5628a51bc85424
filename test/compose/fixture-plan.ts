/**
 * The plans the compose tests render: `plan()` of the shipped gcp-baseline / gcp-managed stacks
 * (through planStack, as `inferbench plan` does), with the images pinned by digest. So a snapshot
 * changes when a shipped stack or the planner does, and never describes a hand-built plan that
 * no stack produces.
 */
import { fileURLToPath } from "node:url";
import type { StackPlan } from "../../stacks/plan-types.ts";
import { planStack } from "../../targets/plan-stack.ts";

const VLLM = `vllm/vllm-openai@sha256:${"a".repeat(64)}`;
const ROUTER = `ghcr.io/inferbench/inferbench@sha256:${"c".repeat(64)}`;

/**
 * Fixed digests, so snapshots do not move with the stack's default image references. The managed
 * image is left to its default: built on the host FROM the baseline's digest + kvcached.
 */
export const PINNED_IMAGES = [`engine.images.baseline=${VLLM}`, `router.image=${ROUTER}`];

/** A shipped stack's plan with pinned images (no HF token from the environment). */
export function shippedPlan(stack: string, overrides: string[] = []): StackPlan {
  return planStack(stack, [...PINNED_IMAGES, ...overrides], { env: {} }).plan;
}

export function fixturePlan(mode: "baseline" | "managed"): StackPlan {
  return shippedPlan(`gcp-${mode}`);
}

/** `<repo>/fixtures/<rel>`: data copied into the repository (provenance in fixtures/README.md). */
export function fixturePath(rel: string): string {
  return fileURLToPath(new URL(`../../fixtures/${rel}`, import.meta.url));
}
