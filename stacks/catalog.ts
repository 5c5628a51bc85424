/**
 * Hardware facts and list prices the planner needs. Prices are estimates: approximate GCP list
 * prices (USD, us-central1) — check https://cloud.google.com/compute/gpus-pricing before you
 * spend. Spot/Flex-start figures apply the low end (60%) of GCP's published 60–91% Spot discount,
 * so the estimate errs high.
 */
import type { StackConfig } from "./schema.ts";

export interface GpuSpec {
  memoryGiB: number;
  /** Short name engine-sim profiles use (`llama-3.1-8b@h100`). */
  profileSuffix: string;
}

export const GPU_SPECS: Record<StackConfig["gpus"]["type"], GpuSpec> = {
  "h100-80gb": { memoryGiB: 80, profileSuffix: "h100" },
  "h200-141gb": { memoryGiB: 141, profileSuffix: "h200" },
  "a100-80gb": { memoryGiB: 80, profileSuffix: "a100" },
  "a100-40gb": { memoryGiB: 40, profileSuffix: "a100" },
  "l4-24gb": { memoryGiB: 24, profileSuffix: "l4" },
};

export interface MachineSpec {
  gpuType: StackConfig["gpus"]["type"];
  gpus: number;
  /** On-demand USD/hour (GPUs, vCPUs and memory together). */
  onDemandHourly: number;
}

/** When the table's prices were taken: every cost the kit reports names it. */
export const PRICE_TABLE_DATE = "2026-11-24";

export const PRICE_SOURCE = `approximate GCP list prices of ${PRICE_TABLE_DATE}, us-central1, USD (https://cloud.google.com/compute/gpus-pricing); SPOT/FLEX_START assume a 60% discount`;

export const GCP_MACHINES: Record<string, MachineSpec> = {
  "a3-highgpu-8g": { gpuType: "h100-80gb", gpus: 8, onDemandHourly: 88.49 },
  "a3-highgpu-4g": { gpuType: "h100-80gb", gpus: 4, onDemandHourly: 44.25 },
  "a3-highgpu-2g": { gpuType: "h100-80gb", gpus: 2, onDemandHourly: 22.12 },
  "a3-highgpu-1g": { gpuType: "h100-80gb", gpus: 1, onDemandHourly: 11.06 },
  "a2-ultragpu-8g": { gpuType: "a100-80gb", gpus: 8, onDemandHourly: 40.22 },
  "a2-ultragpu-1g": { gpuType: "a100-80gb", gpus: 1, onDemandHourly: 5.07 },
  "a2-highgpu-8g": { gpuType: "a100-40gb", gpus: 8, onDemandHourly: 29.39 },
  "g2-standard-8": { gpuType: "l4-24gb", gpus: 1, onDemandHourly: 0.85 },
  "g2-standard-96": { gpuType: "l4-24gb", gpus: 8, onDemandHourly: 8.0 },
};

export const SPOT_DISCOUNT = 0.6;

export function hourlyPrice(
  machineType: string,
  provisioningModel: "STANDARD" | "SPOT" | "FLEX_START",
): number | undefined {
  const m = GCP_MACHINES[machineType];
  if (!m) return undefined;
  const price =
    provisioningModel === "STANDARD" ? m.onDemandHourly : m.onDemandHourly * (1 - SPOT_DISCOUNT);
  return Math.round(price * 100) / 100;
}

/** Bytes per parameter by quantization: BF16 2, FP8 1, 4-bit AWQ/GPTQ/bnb 0.5. */
export function bytesPerParam(quantization: string | undefined): number {
  if (!quantization) return 2;
  if (quantization === "fp8") return 1;
  return 0.5;
}

/** Parameter count (billions) read from a Hugging Face id such as `meta-llama/Llama-3.3-70B-Instruct`. */
export function paramsBillionsFromName(hfPath: string): number | undefined {
  const m = /(?:^|[^0-9.])(\d+(?:\.\d+)?)[bB](?![a-zA-Z])/.exec(hfPath.split("/").pop() ?? "");
  return m ? Number(m[1]) : undefined;
}

/**
 * Weight memory in GiB: explicit `weightsGiB`, else parameters × bytes per parameter plus 5% for
 * embeddings/quantization scales kept in higher precision. Undefined when it cannot be estimated.
 */
export function estimateWeightsGiB(model: {
  hfPath?: string | undefined;
  quantization?: string;
  weightsGiB?: number;
}): number | undefined {
  if (model.weightsGiB !== undefined) return model.weightsGiB;
  if (model.hfPath === undefined) return undefined;
  const params = paramsBillionsFromName(model.hfPath);
  if (params === undefined) return undefined;
  return (params * 1e9 * bytesPerParam(model.quantization) * 1.05) / 2 ** 30;
}
