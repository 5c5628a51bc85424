/** Programmatic API of the router (used by the CLI, the local launcher, tests and the bench). */
export { type Choice, type ChoiceContext, type ChoiceRequest, chooseReplica } from "./choose.ts";
export {
  type BackendConfig,
  DEFAULT_POLICY_OPTIONS,
  DEFAULTS,
  effectiveStaleMs,
  parseBackendsFlag,
  ROUTER_POLICIES,
  type RouterConfig,
  routerConfigFromPlan,
} from "./config.ts";
export { buildRouterConfig, configureRouterCommand } from "./options.ts";
export * from "./policies.ts";
export { blockHashes, PrefixIndex, promptText } from "./prefix.ts";
export {
  type ApiRejection,
  type ApiRequest,
  type ApiRequestRules,
  parseApiRequest,
} from "./request.ts";
export {
  classifyUpstreamError,
  openAiError,
  type ReplicaState,
  type RunningRouter,
  startRouter,
} from "./server.ts";
export { parseVllmLoad, type ReplicaLoad } from "./vllm-metrics.ts";
