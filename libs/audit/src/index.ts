/**
 * `@warden/audit`: the decision log. The entry type and its credential masking, the sink
 * contract, the batching writer (spill to disk, replay in order) and the NDJSON sink. Imports
 * only `@warden/core`; never throws into the decision path.
 */
export { composedEntry, entryFromLine, fieldsLine, serializeEntry, CAPTURED, CAPTURE_NO_ROOM, CAPTURE_NONE } from './audit-entry.js';
export type { AuditActionEffect, AuditEntry, AuditEventKind, AuditIdentities, AuditRecord, AuditResult, CaptureDecoder, ComposedEntry, SerializedEntry } from './audit-entry.js';
export { createInputMask, jsonString, maskChild, maskedJson, maskElement, maskInput, CREDENTIAL_PATHS, MASKED, MASKED_JSON } from './mask.js';
export type { InputMask, MaskNode } from './mask.js';
export { BytesJsonOut, isPlainObject, NotPlainJson, TextJsonOut } from './json-out.js';
export type { JsonOut } from './json-out.js';
export { fieldsUtf8, jsonUtf8, Utf8Batches } from './utf8-batch.js';
export type { Utf8Batch } from './utf8-batch.js';
export type { AuditSink } from './audit-sink.js';
export { createAuditWriter, MAX_QUEUE } from './audit-writer.js';
export { createThreadedAuditWriter, serveAuditWriter, MAX_POSTED, RING_BYTES, STATS_INTERVAL_MS } from './audit-thread.js';
export type { AuditThread, AuditThreadPort, ServedAuditWriter, ThreadedAuditWriterOptions } from './audit-thread.js';
export type { AuditMode, AuditWriter, AuditWriterOptions, AuditWriterStats } from './audit-writer.js';
export { createNdjsonSink } from './sinks/ndjson/ndjson.sink.js';
export type { NdjsonSinkOptions } from './sinks/ndjson/ndjson.sink.js';
export { createNatsAuditSink } from './sinks/nats/nats.sink.js';
export type { NatsAuditSinkOptions } from './sinks/nats/nats.sink.js';
