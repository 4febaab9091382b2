// Types for bench/open-load-native.mjs, for the test that checks the generator (test/integration/open-load-native.spec.ts).
export interface OpenLoadOptions {
  url: string;
  body?: string;
  headers?: Record<string, string>;
  /** requests per second */
  rate: number;
  /** seconds recorded */
  duration: number;
  /** seconds sent first and not recorded (1) */
  warmupS?: number;
  /** keep-alive connections (64) */
  connections?: number;
  /** called with the generator's pid once it is spawned */
  onStart?: (pid: number | undefined) => void;
}
export interface OpenLoadResult {
  error?: string;
  requests: number;
  non2xx: number;
  statusCodeStats: Record<string, { count: number }>;
  hist: { bucketUs: number; sparse: number[]; count: number; maxMs: number };
  maxIssueLagMs: number;
  loopDelayP99Ms: number;
  /** answers timed by the kernel's receive stamp (the others at their read) */
  stamped: number;
  /** how late the generator read an answer after the kernel received it: p99 and max, ms */
  readLagP99Ms: number;
  maxReadLagMs: number;
  loadgenCpuS: number;
  wallS: number;
}
export function nativeGenerator(): string;
export function rawRequest(opts: OpenLoadOptions): Buffer;
export function runNative(opts: OpenLoadOptions): Promise<OpenLoadResult>;
