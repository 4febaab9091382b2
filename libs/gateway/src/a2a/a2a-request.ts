/**
 * A2A JSON-RPC requests (as `@a2a-js/sdk` sends them, protocol 1.0 and the 0.3 generation) as
 * checks: the called agent is the resource (kind `agent`, id given by the caller, who knows which
 * agent the route leads to), and the action is the task type, so policies can say which agents
 * may call which, for which tasks, for which users.
 *
 * The task type of a message is the first of `params.metadata.taskType`,
 * `params.message.metadata.taskType`, `params.metadata.skill`, `params.message.metadata.skill`,
 * else `options.defaultTaskType` (default `message`). Other methods map to fixed actions:
 * `get_task`, `list_tasks`, `cancel_task`, `subscribe_task`, `configure_push`, `read_card`. Attributes
 * of the resource describe the call (method, streaming, context and task ids, part kinds), never
 * its text.
 */
import { WardenError, type JsonValue } from '@warden/core';

/** What an A2A request asks, as a check. */
export interface A2aCheck {
  readonly resource: { readonly kind: 'agent'; readonly id: string; readonly attr: Record<string, JsonValue> };
  readonly action: string;
  readonly rpc: { readonly id: string | number | null; readonly method: string; readonly protocol: '1.0' | '0.3' };
}

/** Options of {@link parseA2aRequest}. */
export interface A2aParseOptions {
  /** The id of the agent the request is addressed to. */
  readonly target: string;
  /** Action of a message that names no task type (default `message`). */
  readonly defaultTaskType?: string;
}

type Obj = Record<string, unknown>;

const SEND = new Map<string, { protocol: '1.0' | '0.3'; streaming: boolean }>([
  ['SendMessage', { protocol: '1.0', streaming: false }],
  ['SendStreamingMessage', { protocol: '1.0', streaming: true }],
  ['message/send', { protocol: '0.3', streaming: false }],
  ['message/stream', { protocol: '0.3', streaming: true }],
]);

const FIXED = new Map<string, { action: string; protocol: '1.0' | '0.3' }>([
  ['GetTask', { action: 'get_task', protocol: '1.0' }],
  ['ListTasks', { action: 'list_tasks', protocol: '1.0' }],
  ['CancelTask', { action: 'cancel_task', protocol: '1.0' }],
  ['SubscribeToTask', { action: 'subscribe_task', protocol: '1.0' }],
  ['CreateTaskPushNotificationConfig', { action: 'configure_push', protocol: '1.0' }],
  ['GetTaskPushNotificationConfig', { action: 'configure_push', protocol: '1.0' }],
  ['ListTaskPushNotificationConfig', { action: 'configure_push', protocol: '1.0' }],
  ['ListTaskPushNotificationConfigs', { action: 'configure_push', protocol: '1.0' }],
  ['DeleteTaskPushNotificationConfig', { action: 'configure_push', protocol: '1.0' }],
  ['GetExtendedAgentCard', { action: 'read_card', protocol: '1.0' }],
  ['tasks/get', { action: 'get_task', protocol: '0.3' }],
  ['tasks/cancel', { action: 'cancel_task', protocol: '0.3' }],
  ['tasks/resubscribe', { action: 'subscribe_task', protocol: '0.3' }],
  ['tasks/pushNotificationConfig/set', { action: 'configure_push', protocol: '0.3' }],
  ['tasks/pushNotificationConfig/get', { action: 'configure_push', protocol: '0.3' }],
  ['tasks/pushNotificationConfig/list', { action: 'configure_push', protocol: '0.3' }],
  ['tasks/pushNotificationConfig/delete', { action: 'configure_push', protocol: '0.3' }],
  ['agent/getAuthenticatedExtendedCard', { action: 'read_card', protocol: '0.3' }],
]);

const NAME = /^[A-Za-z0-9_.:/-]{1,128}$/;

function bad(message: string): WardenError {
  return new WardenError('ERR_REQUEST_INVALID', `A2A request: ${message}`);
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function taskType(params: Obj, message: Obj, fallback: string): string {
  const meta = isObj(params['metadata']) ? params['metadata'] : {};
  const mmeta = isObj(message['metadata']) ? message['metadata'] : {};
  const t = str(meta['taskType']) ?? str(mmeta['taskType']) ?? str(meta['skill']) ?? str(mmeta['skill']) ?? fallback;
  if (!NAME.test(t)) throw bad(`task type \`${t.slice(0, 64)}\` is not a valid action name`);
  return t;
}

/** The kinds of a message's parts: 0.3 names them (`kind`), 1.0 has one member per kind. */
function partKinds(parts: unknown): string[] {
  if (!Array.isArray(parts)) return [];
  const kinds = new Set<string>();
  for (const p of parts) {
    if (!isObj(p)) continue;
    const kind = str(p['kind']) ?? ['text', 'raw', 'url', 'data', 'file'].find((k) => k in p);
    if (kind !== undefined) kinds.add(kind);
  }
  return [...kinds].sort();
}

/**
 * The check an A2A JSON-RPC request asks for. Throws `ERR_REQUEST_INVALID` for anything that is
 * not a JSON-RPC 2.0 request of a known A2A method (a batch included: one call, one check).
 * @example parseA2aRequest(JSON.parse(body), { target: 'refund-agent' }).action // 'refund'
 */
export function parseA2aRequest(body: unknown, options: A2aParseOptions): A2aCheck {
  if (!NAME.test(options.target)) throw bad('the target agent id is not a valid name');
  if (!isObj(body)) throw bad('expected a JSON-RPC 2.0 request object');
  if (body['jsonrpc'] !== '2.0') throw bad('`jsonrpc` must be "2.0"');
  const method = body['method'];
  if (typeof method !== 'string') throw bad('`method` is required');
  const rawId = body['id'];
  const id = typeof rawId === 'string' || typeof rawId === 'number' ? rawId : null;
  const params = body['params'] === undefined ? {} : body['params'];
  if (!isObj(params)) throw bad('`params` must be an object');
  const send = SEND.get(method);
  if (send !== undefined) {
    const message = params['message'];
    if (!isObj(message)) throw bad(`\`${method}\` needs \`params.message\``);
    const attr: Record<string, JsonValue> = { method, streaming: send.streaming, parts: partKinds(message['parts']) };
    const contextId = str(message['contextId']);
    const taskId = str(message['taskId']);
    const messageId = str(message['messageId']);
    if (contextId !== undefined) attr['contextId'] = contextId;
    if (taskId !== undefined) attr['taskId'] = taskId;
    if (messageId !== undefined) attr['messageId'] = messageId;
    return { resource: { kind: 'agent', id: options.target, attr }, action: taskType(params, message, options.defaultTaskType ?? 'message'), rpc: { id, method, protocol: send.protocol } };
  }
  const fixed = FIXED.get(method);
  if (fixed === undefined) throw bad(`unknown method \`${method.slice(0, 64)}\``);
  const attr: Record<string, JsonValue> = { method, streaming: fixed.action === 'subscribe_task' };
  const taskId = str(params['id']) ?? str(params['taskId']);
  if (taskId !== undefined) attr['taskId'] = taskId;
  return { resource: { kind: 'agent', id: options.target, attr }, action: fixed.action, rpc: { id, method, protocol: fixed.protocol } };
}
