/**
 * One arm's rendered Kubernetes objects (kube/render.ts) as Pulumi resources, through
 * @pulumi/kubernetes: the same component serves `gke` (on the GkeGpuPool's provider) and
 * `kubeconfig` (any existing cluster, VKE included). It creates only objects it renders, so a
 * destroy deletes exactly those and never anything else in the cluster.
 *
 * Await: engines can take longer to load weights than the provider's default rollout wait, and
 * the provider judges pod readiness, not the engine's /health. Deployments and Services therefore
 * carry `pulumi.com/skipAwait: "true"`; the target polls every engine's /health through the API
 * server's service proxy with its own bound, and reports the pods' events when it runs out.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { HF_TOKEN_SECRET, type KubeObject, LABEL } from "../kube/render.ts";
export const SKIP_AWAIT = { "pulumi.com/skipAwait": "true" };

export interface KubeWorkloadsArgs {
  /** Rendered objects of the arm, the Namespace first. */
  objects: readonly KubeObject[];
  /** HF token (a Pulumi secret): becomes the Secret the engines read; absent in a rehearsal. */
  hfToken?: pulumi.Input<string>;
}

type Meta = KubeObject["metadata"];

function withAnnotations(meta: Meta, extra: Record<string, string>): Meta {
  return { ...meta, annotations: { ...meta.annotations, ...extra } };
}

/** The resource for one rendered object, typed by kind (unknown kinds are refused, not guessed). */
function resourceFor(obj: KubeObject, opts: pulumi.CustomResourceOptions): pulumi.CustomResource {
  const name = `${obj.kind.toLowerCase()}-${obj.metadata.name}`;
  const body = obj as unknown as Record<string, pulumi.Input<unknown>>;
  switch (`${obj.apiVersion}/${obj.kind}`) {
    case "v1/Namespace":
      return new k8s.core.v1.Namespace(name, body as k8s.core.v1.NamespaceArgs, opts);
    case "v1/ConfigMap":
      return new k8s.core.v1.ConfigMap(name, body as k8s.core.v1.ConfigMapArgs, opts);
    case "v1/Service":
      // A Service is awaited until its pods are ready: the router's pod is ready only when its
      // engines answer, which is the target's own bounded wait (with the pods' reasons).
      return new k8s.core.v1.Service(
        name,
        { ...body, metadata: withAnnotations(obj.metadata, SKIP_AWAIT) } as k8s.core.v1.ServiceArgs,
        opts,
      );
    case "apps/v1/Deployment":
      return new k8s.apps.v1.Deployment(
        name,
        {
          ...body,
          metadata: withAnnotations(obj.metadata, SKIP_AWAIT),
        } as k8s.apps.v1.DeploymentArgs,
        opts,
      );
    default:
      throw new pulumi.RunError(
        `kube workloads: no resource for ${obj.apiVersion}/${obj.kind} (${obj.metadata.name})`,
      );
  }
}

export class KubeWorkloads extends pulumi.ComponentResource {
  readonly namespace: pulumi.Output<string>;
  /** Resource names, for tests and the rehearsal's audit of what Pulumi holds. */
  readonly objectNames: string[];

  constructor(name: string, args: KubeWorkloadsArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("inferbench:kube:Workloads", name, {}, opts);
    const [nsObj, ...rest] = args.objects;
    if (nsObj?.kind !== "Namespace")
      throw new pulumi.RunError(
        "kube workloads: the rendered objects must start with the Namespace",
      );
    const child = { parent: this };
    const ns = resourceFor(nsObj, child);
    const inNs = { parent: this, dependsOn: [ns] };
    const made: pulumi.CustomResource[] = [];
    if (args.hfToken !== undefined)
      made.push(
        new k8s.core.v1.Secret(
          `secret-${HF_TOKEN_SECRET}`,
          {
            metadata: {
              name: HF_TOKEN_SECRET,
              namespace: nsObj.metadata.name,
              labels: { ...nsObj.metadata.labels },
            },
            type: "Opaque",
            stringData: { HF_TOKEN: pulumi.secret(args.hfToken) },
          },
          inNs,
        ),
      );
    // Config before the pods that mount it, so a first start never waits on a missing ConfigMap.
    const configs = rest.filter((o) => o.kind === "ConfigMap").map((o) => resourceFor(o, inNs));
    const after = { ...inNs, dependsOn: [ns, ...configs, ...made] };
    for (const o of rest.filter((x) => x.kind !== "ConfigMap")) made.push(resourceFor(o, after));
    this.namespace = pulumi.output(nsObj.metadata.name);
    this.objectNames = args.objects.map((o) => `${o.kind}/${o.metadata.name}`);
    this.registerOutputs({ namespace: this.namespace, run: nsObj.metadata.labels[LABEL.run] });
  }
}

export interface KubeArmProgramArgs {
  objects: readonly KubeObject[];
  kubeconfig: string;
  context?: string;
  /** Plain (the CLI, registered as a secret) or a Pulumi secret (a hand `pulumi up`). */
  hfToken?: pulumi.Input<string>;
}

/**
 * The inline program of one arm's stack: a provider for the cluster (kubeconfig a secret) and the
 * workloads on it. `deleteUnreachable` lets a destroy finish when the cluster itself is gone
 * (a GKE cluster destroyed first, a kubeconfig revoked): the objects went with it.
 */
export function kubeArmProgram(args: KubeArmProgramArgs): () => Promise<Record<string, unknown>> {
  return async () => {
    const w = deployKubeArm(args);
    return { namespace: w.namespace, objects: w.objectNames.length };
  };
}

/** The provider and the workloads: what both the inline program and a hand `pulumi up` create. */
export function deployKubeArm(args: KubeArmProgramArgs): KubeWorkloads {
  const provider = new k8s.Provider("cluster", {
    kubeconfig: pulumi.secret(args.kubeconfig),
    ...(args.context ? { context: args.context } : {}),
    deleteUnreachable: true,
  });
  return new KubeWorkloads(
    "arm",
    {
      objects: args.objects,
      ...(args.hfToken !== undefined ? { hfToken: pulumi.secret(args.hfToken) } : {}),
    },
    { providers: { kubernetes: provider } },
  );
}
