export * from "./artifacts.ts";
export * from "./metrics.ts";
export * from "./pyformat.ts";
export * from "./reader.ts";
export * from "./sse.ts";
export * from "./stats.ts";
