/**
 * Every rendered object checked against the Kubernetes OpenAPI schema, through kubernetes-models
 * (JSON schemas generated from the API's OpenAPI spec), not a hand list of fields. The schemas do
 * not forbid unknown fields; the rehearsal cluster's server-side dry run with strict field
 * validation covers those (rehearsal/rehearse-kube.ts).
 */

import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { Job } from "kubernetes-models/batch/v1/Job";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import type { KubeObject } from "./render.ts";

type Model = new (data: never) => { validate(): void };

const MODELS: Record<string, Model> = {
  "v1/Namespace": Namespace as unknown as Model,
  "v1/ConfigMap": ConfigMap as unknown as Model,
  "v1/Secret": Secret as unknown as Model,
  "v1/Service": Service as unknown as Model,
  "apps/v1/Deployment": Deployment as unknown as Model,
  "batch/v1/Job": Job as unknown as Model,
};

/** Throws naming the object and the schema's complaint; unknown kinds are refused, not skipped. */
export function validateKubeObject(obj: KubeObject): void {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const M = MODELS[key];
  const where = `${obj.kind} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ""}${obj.metadata.name}`;
  if (!M)
    throw new Error(
      `${where}: no schema for ${key} (kube/validate.ts knows ${Object.keys(MODELS).join(", ")})`,
    );
  try {
    new M(obj as never).validate();
  } catch (err) {
    throw new Error(`${where} does not match the Kubernetes schema: ${(err as Error).message}`);
  }
}

export function validateKubeObjects(objs: readonly KubeObject[]): void {
  for (const o of objs) validateKubeObject(o);
}
