/**
 * The few things the kube target asks of a cluster, over @kubernetes/client-node: reachability,
 * permissions, nodes, health through the API server's service proxy (no port-forward), Jobs,
 * pod events and logs, exec (tar out of a pod), and a label query for the audit. Everything is
 * bounded by a timeout; errors carry the API server's own reason.
 */
import { PassThrough, type Writable } from "node:stream";
import * as k8s from "@kubernetes/client-node";
import type { KubeObject } from "./render.ts";

export interface NodeFacts {
  name: string;
  ready: boolean;
  /** Allocatable units of the GPU resource (0 when the node has none). */
  gpus: number;
  kubeletVersion: string;
}

export interface PodFacts {
  name: string;
  phase: string;
  ready: boolean;
  /** Why it is not running, from container states and conditions (empty when it is). */
  reasons: string[];
  /** What each container runs: the reference and the image id the node resolved. */
  images: Array<{ container: string; image: string; imageID: string }>;
}

export interface Labelled {
  kind: string;
  name: string;
  namespace?: string;
}

export interface KubeCluster {
  /** The API server's version (`v1.34.4`); throws when it cannot be reached in time. */
  version(timeoutMs: number): Promise<string>;
  /** SelfSubjectAccessReview: may this identity do `verb` on `resource` (cluster-wide when no namespace)? */
  canI(verb: string, resource: string, group: string, namespace?: string): Promise<boolean>;
  nodes(selector: Record<string, string>, gpuResource: string): Promise<NodeFacts[]>;
  /** GET through the service proxy: `/api/v1/namespaces/<ns>/services/<svc>:<port>/proxy<path>`. */
  serviceGet(ns: string, service: string, path: string, timeoutMs: number): Promise<string>;
  createJob(job: KubeObject): Promise<void>;
  job(
    ns: string,
    name: string,
  ): Promise<{ active: number; succeeded: number; failed: number; reason?: string } | undefined>;
  deleteJob(ns: string, name: string): Promise<void>;
  pods(ns: string, selector: string): Promise<PodFacts[]>;
  /** Warning and scheduling events of the namespace, one line each, oldest first. */
  events(ns: string): Promise<string[]>;
  logs(ns: string, pod: string, container: string, limitBytes: number): Promise<string>;
  /** Streams a container's log lines until it ends or `signal` aborts. */
  followLogs(
    ns: string,
    pod: string,
    container: string,
    onLine: (line: string) => void,
    signal: AbortSignal,
  ): Promise<void>;
  /** Runs argv in a container; stdout goes to `stdout`. Resolves with the exit code. */
  exec(
    ns: string,
    pod: string,
    container: string,
    argv: string[],
    stdout?: Writable,
    timeoutMs?: number,
  ): Promise<{ code: number; stderr: string }>;
  /** Namespaces and namespaced objects carrying the label selector, across the cluster. */
  labelled(selector: string): Promise<Labelled[]>;
  /** Deletes the namespaces carrying the selector (their objects go with them); returns their names. */
  deleteNamespaces(selector: string): Promise<string[]>;
}

export function loadKubeConfig(content: string, context?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromString(content);
  if (context) kc.setCurrentContext(context);
  return kc;
}

/** The API server's reason for a failed call, without the request (which may carry tokens). */
export function apiReason(err: unknown): string {
  const e = err as { code?: number; body?: unknown; message?: string };
  let body: { message?: string; reason?: string } | undefined;
  try {
    body = typeof e.body === "string" ? JSON.parse(e.body) : (e.body as typeof body);
  } catch {
    body = undefined;
  }
  if (body?.message) return `${e.code ?? ""} ${body.reason ?? ""}: ${body.message}`.trim();
  return (e.message ?? String(err)).split("\n")[0]!.slice(0, 300);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, rej) => {
    timer = setTimeout(
      () => rej(new Error(`${what}: no answer within ${Math.round(ms / 1000)} s`)),
      ms,
    );
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

const isNotFound = (err: unknown) => (err as { code?: number }).code === 404;

/** The real cluster behind a kubeconfig. */
export function kubeCluster(kc: k8s.KubeConfig): KubeCluster {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const authz = kc.makeApiClient(k8s.AuthorizationV1Api);
  const ver = kc.makeApiClient(k8s.VersionApi);
  return {
    async version(timeoutMs) {
      const v = await withTimeout(
        ver.getCode(),
        timeoutMs,
        `the API server at ${kc.getCurrentCluster()?.server ?? "?"}`,
      );
      return v.gitVersion;
    },
    async canI(verb, resource, group, namespace) {
      const r = await authz.createSelfSubjectAccessReview({
        body: {
          spec: {
            resourceAttributes: { verb, resource, group, ...(namespace ? { namespace } : {}) },
          },
        },
      });
      return r.status?.allowed === true;
    },
    async nodes(selector, gpuResource) {
      const labelSelector = Object.entries(selector)
        .map(([k, v]) => `${k}=${v}`)
        .join(",");
      const list = await core.listNode(labelSelector ? { labelSelector } : {});
      return list.items.map((n) => ({
        name: n.metadata?.name ?? "?",
        ready:
          n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
        gpus: Number(n.status?.allocatable?.[gpuResource] ?? 0),
        kubeletVersion: n.status?.nodeInfo?.kubeletVersion ?? "?",
      }));
    },
    async serviceGet(ns, service, path, timeoutMs) {
      return withTimeout(
        core.connectGetNamespacedServiceProxyWithPath({
          name: service,
          namespace: ns,
          path: path.replace(/^\//, ""),
        }),
        timeoutMs,
        `${ns}/${service}${path}`,
      );
    },
    async createJob(job) {
      await batch.createNamespacedJob({
        namespace: job.metadata.namespace!,
        body: job as k8s.V1Job,
      });
    },
    async job(ns, name) {
      try {
        const j = await batch.readNamespacedJob({ name, namespace: ns });
        const failed = j.status?.conditions?.find(
          (c) => c.type === "Failed" && c.status === "True",
        );
        return {
          active: j.status?.active ?? 0,
          succeeded: j.status?.succeeded ?? 0,
          failed: j.status?.failed ?? 0,
          ...(failed ? { reason: `${failed.reason ?? ""}: ${failed.message ?? ""}` } : {}),
        };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async deleteJob(ns, name) {
      try {
        await batch.deleteNamespacedJob({
          name,
          namespace: ns,
          propagationPolicy: "Background",
          gracePeriodSeconds: 5,
        });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
    async pods(ns, selector) {
      const list = await core.listNamespacedPod({ namespace: ns, labelSelector: selector });
      return list.items.map((p) => {
        const reasons: string[] = [];
        for (const c of p.status?.conditions ?? [])
          if (c.status !== "True" && c.reason)
            reasons.push(`${c.type}: ${c.reason}${c.message ? ` (${c.message})` : ""}`);
        for (const s of p.status?.containerStatuses ?? []) {
          if (s.state?.waiting)
            reasons.push(
              `${s.name}: ${s.state.waiting.reason ?? "waiting"}${s.state.waiting.message ? ` (${s.state.waiting.message})` : ""}`,
            );
          if (s.state?.terminated)
            reasons.push(
              `${s.name}: exited ${s.state.terminated.exitCode} (${s.state.terminated.reason ?? ""})`,
            );
          if (s.restartCount > 0) reasons.push(`${s.name}: restarted ${s.restartCount}×`);
        }
        return {
          name: p.metadata?.name ?? "?",
          phase: p.status?.phase ?? "Unknown",
          ready:
            p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
          reasons,
          images: (p.status?.containerStatuses ?? []).map((c) => ({
            container: c.name,
            image: c.image,
            imageID: c.imageID,
          })),
        };
      });
    },
    async events(ns) {
      const list = await core.listNamespacedEvent({ namespace: ns });
      const time = (e: k8s.CoreV1Event) => {
        const t = e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp;
        return t instanceof Date ? t.toISOString() : String(t ?? "");
      };
      return list.items
        .sort((a, b) => time(a).localeCompare(time(b)))
        .map(
          (e) =>
            `${time(e)} ${e.type ?? ""} ${e.involvedObject.kind}/${e.involvedObject.name}: ${e.reason ?? ""}: ${e.message ?? ""}${(e.count ?? 1) > 1 ? ` (×${e.count})` : ""}`,
        );
    },
    async logs(ns, pod, container, limitBytes) {
      try {
        return await core.readNamespacedPodLog({
          name: pod,
          namespace: ns,
          container,
          limitBytes,
          timestamps: true,
        });
      } catch (err) {
        return `(no log: ${apiReason(err)})`;
      }
    },
    async followLogs(ns, pod, container, onLine, signal) {
      const out = new PassThrough();
      let rest = "";
      out.on("data", (b: Buffer) => {
        const lines = (rest + b.toString("utf8")).split("\n");
        rest = lines.pop() ?? "";
        for (const l of lines) onLine(l);
      });
      const ended = new Promise<void>((res) => out.on("end", () => res()));
      const ctl = await new k8s.Log(kc).log(ns, pod, container, out, { follow: true });
      const stop = () => ctl.abort();
      signal.addEventListener("abort", stop, { once: true });
      try {
        await Promise.race([
          ended,
          new Promise<void>((res) => signal.addEventListener("abort", () => res(), { once: true })),
        ]);
      } finally {
        signal.removeEventListener("abort", stop);
        if (rest) onLine(rest);
      }
    },
    async exec(ns, pod, container, argv, stdout, timeoutMs = 120_000) {
      let stderr = "";
      const err = new PassThrough().on("data", (b: Buffer) => {
        if (stderr.length < 10_000) stderr += b.toString("utf8");
      });
      const sink = stdout ?? new PassThrough().resume();
      const run = new Promise<{ code: number; stderr: string }>((resolve, reject) => {
        let status: k8s.V1Status | undefined;
        new k8s.Exec(kc)
          .exec(ns, pod, container, argv, sink, err, null, false, (s) => {
            status = s;
          })
          .then((ws) => {
            ws.on("close", () => {
              if (!status)
                return reject(
                  new Error(`exec ${argv[0]} in ${ns}/${pod}: the stream closed without a status`),
                );
              const cause = status.details?.causes?.find((c) => c.reason === "ExitCode");
              const code = status.status === "Success" ? 0 : Number(cause?.message ?? 1);
              resolve({
                code,
                stderr: stderr || (status.status === "Success" ? "" : (status.message ?? "")),
              });
            });
            ws.on("error", reject);
          }, reject);
      });
      return withTimeout(run, timeoutMs, `exec ${argv.join(" ")} in ${ns}/${pod}`);
    },
    async labelled(selector) {
      const found: Labelled[] = [];
      const ns = await core.listNamespace({ labelSelector: selector });
      for (const n of ns.items) found.push({ kind: "Namespace", name: n.metadata!.name! });
      const each = async (
        kind: string,
        list: Promise<{ items: Array<{ metadata?: k8s.V1ObjectMeta }> }>,
      ) => {
        for (const o of (await list).items)
          found.push({
            kind,
            name: o.metadata?.name ?? "?",
            ...(o.metadata?.namespace ? { namespace: o.metadata.namespace } : {}),
          });
      };
      await Promise.all([
        each("Deployment", apps.listDeploymentForAllNamespaces({ labelSelector: selector })),
        each("Job", batch.listJobForAllNamespaces({ labelSelector: selector })),
        each("Pod", core.listPodForAllNamespaces({ labelSelector: selector })),
        each("Service", core.listServiceForAllNamespaces({ labelSelector: selector })),
        each("ConfigMap", core.listConfigMapForAllNamespaces({ labelSelector: selector })),
        each("Secret", core.listSecretForAllNamespaces({ labelSelector: selector })),
        each(
          "PersistentVolumeClaim",
          core.listPersistentVolumeClaimForAllNamespaces({ labelSelector: selector }),
        ),
      ]);
      return found;
    },
    async deleteNamespaces(selector) {
      const ns = await core.listNamespace({ labelSelector: selector });
      const names = ns.items.map((n) => n.metadata!.name!);
      for (const name of names)
        await core.deleteNamespace({ name, propagationPolicy: "Foreground" }).catch((err) => {
          if (!isNotFound(err)) throw err;
        });
      return names;
    },
  };
}
