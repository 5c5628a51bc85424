/**
 * Model families that Hugging Face serves only to an account that accepted the licence, with a
 * token: a run without one pays for a GPU VM whose engines then fail to download their weights.
 * Shared by the run's preflight and the Pulumi program. The list is of families known to be
 * gated; a model not on it may still be.
 */
export const GATED_MODELS: readonly RegExp[] = [/^meta-llama\//i, /^google\/gemma/i];

/** Indexes of the models (in `models[]`) that need a token. */
export function gatedModelIndexes(models: readonly { hfPath?: string | undefined }[]): number[] {
  return models.flatMap((m, i) =>
    m.hfPath !== undefined && GATED_MODELS.some((g) => g.test(m.hfPath!)) ? [i] : [],
  );
}
