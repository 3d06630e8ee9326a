// Generated from server.d.ts by scripts/build-cjs.mjs: edit that file, then run npm run build.
// Types of server.js, the Node backend SDK (`@wshub/client/server`).

import type {
  ClientInfo,
  CloseEvent,
  ErrorCode,
  HubReservedType,
  LifecycleEvents,
  OpenEvent,
  PresenceEntry,
  PublishableType,
  ReconnectingEvent,
  RequestData,
  SeedEvents,
  SeedRequests,
  TokenSource,
  WebSocketConstructor,
  Welcome,
  WshubClient,
  WshubError,
} from './wshub.cjs';

/** A type outside the map M (its data is then `unknown`). */
export type Other<T extends string, M> = T extends keyof M ? never : T;

/** A type outside the event map E one may send or publish: not the hub's own, nor a lifecycle event's name. */
export type OtherOutgoing<T extends string, E> = T extends keyof E | HubReservedType | keyof LifecycleEvents ? never : T;

/** Every kind of target, for `Target`'s exclusive shapes. */
interface TargetFields {
  channel: string;
  sessionId: string;
  userId: string;
  clientId: string;
  broadcast: true;
  authenticated: true;
}

/** An object with the one field K of F, and none of the others. */
type Only<F, K extends keyof F> = Pick<F, K> & { [O in Exclude<keyof F, K>]?: never };

/**
 * Where a publication goes: exactly one target (`{channel, userId}` does not
 * compile). A string is a channel; `'broadcast'` and `'authenticated'` are
 * the two everyone-targets.
 */
export type Target = string | 'broadcast' | 'authenticated' | { [K in keyof TargetFields]: Only<TargetFields, K> }[keyof TargetFields];

/** A channel (a string, or `{channel}`) or a session: one of them. */
export type Topic = string | Only<{ channel: string; sessionId: string }, 'channel'> | Only<{ channel: string; sessionId: string }, 'sessionId'>;

export interface PublishOptions {
  /** Held for the hub's batch window and delivered in one `batch_update`. */
  batched?: boolean;
}

/** The hub's counters and clients, as `GET /api/ws/stats` has them. */
export interface HubStats {
  totalConnections: number;
  activeConnections: number;
  authenticatedConnections: number;
  serviceConnections: number;
  messagesReceived: number;
  messagesSent: number;
  requests: number;
  busy: number;
  channels: number;
  sessions: number;
  users: number;
  uptime: number;
  clients: ClientInfo[];
  /** Every other counter (`slowConsumers`, `historyEntries`, ...). */
  [counter: string]: unknown;
}

/** The hub's HTTP API with the admin token: one-shot publishes, presence, stats. */
export class WshubHttp<E = SeedEvents> {
  /**
   * @param url `http(s)://host:port`, or the hub's `ws(s)://` URL.
   * @param options `token`: the admin token, or a function asked for it at every call.
   */
  constructor(url: string | URL, options?: { token?: TokenSource; fetch?: typeof fetch });
  publish<K extends PublishableType<E>>(target: Target, type: K, data: E[K], options?: PublishOptions): Promise<number>;
  publish<T extends string>(target: Target, type: OtherOutgoing<T, E>, data?: unknown, options?: PublishOptions): Promise<number>;
  presence(): Promise<PresenceEntry[]>;
  stats(): Promise<HubStats>;
}

/** A client's request, as a handler gets it. */
export class ServiceRequest<D = unknown, E = SeedEvents> {
  /** The request's `type`. */
  readonly type: string;
  /** Its `data` (or `payload`, or a flat message's own fields). */
  readonly data: D;
  readonly clientId: string;
  readonly userId: string | null;
  /**
   * The client's first session: null when it has none (then `stream` sends
   * to the client itself). Check it, or fall back (`req.sessionId ?? req.clientId`).
   */
  readonly sessionId: string | null;
  readonly meta: Record<string, unknown>;
  readonly correlationId: string | number | undefined;
  /** The whole message as the client sent it. */
  readonly message: { type: string; [field: string]: unknown };
  /** Whether a reply went out. */
  readonly replied: boolean;
  /** Aborted when the connection the request came on ends (the client was told `busy`). */
  readonly signal: AbortSignal;

  /** The reply, with the request's `correlationId`: once. False if the connection it came on is gone. */
  reply<K extends PublishableType<E>>(type: K, data: E[K]): boolean;
  reply<T extends string>(type: OtherOutgoing<T, E>, data?: unknown): boolean;
  /** An error reply (`{code, error}`): the client's `request()` rejects with a WshubError of this code. */
  error(code: ErrorCode, message: string, data?: Record<string, unknown>): boolean;
  /** Another message to the client, without the `correlationId`. */
  send<K extends PublishableType<E>>(type: K, data: E[K]): boolean;
  send<T extends string>(type: OtherOutgoing<T, E>, data?: unknown): boolean;
  /** A streamed message: to the client's session (with a `seq`, recoverable), else to the client. */
  stream<K extends PublishableType<E>>(type: K, data: E[K]): boolean;
  stream<T extends string>(type: OtherOutgoing<T, E>, data?: unknown): boolean;
}

/** A request handler: replies through `req`, or returns the reply's data. */
export type Handler<D = unknown, E = SeedEvents> = (req: ServiceRequest<D, E>) => unknown | Promise<unknown>;

export interface ServiceOptions {
  /** The admin token, or one with the `service` grant; a function is asked at every connect. */
  token?: TokenSource;
  /** Default `globalThis.WebSocket`; on Node 18 and 20 pass the `ws` package's. */
  WebSocket?: WebSocketConstructor;
  /** Backoff base in ms (500). */
  minDelay?: number;
  /** Backoff ceiling in ms (20000). */
  maxDelay?: number;
  /** Reconnect attempts in a row without a welcome, then stop (Infinity). */
  maxAttempts?: number;
  /** Time a command waits for the hub's answer, in ms (10000). */
  requestTimeout?: number;
  connectTimeout?: number;
  heartbeat?: boolean | { interval?: number; grace?: number };
  /** The HTTP API for publishes while the connection is down (default: from the URL; with `token`, a function asked at each call); false: none. */
  http?: string | URL | false;
  fetch?: typeof fetch;
  /** Connect from the constructor (default true). */
  autoConnect?: boolean;
  /** More query parameters for the hub, as WshubClient's. */
  query?: Record<string, string> | (() => Record<string, string | undefined>);
}

/**
 * A backend's service connection. `Q` is the request map (a `RequestSpec`
 * per type: its `data` and reply), the same one a client's `request()`
 * uses; the seeds' (`SeedRequests`) by default. `E` maps the events it
 * sends to their payloads (the seeds' by default).
 */
export class WshubService<Q = SeedRequests, E = SeedEvents> {
  constructor(url: string | URL, options?: ServiceOptions);
  readonly state: 'connecting' | 'open' | 'closed';
  readonly clientId: string | null;
  /** The WshubClient underneath. */
  readonly client: WshubClient<E>;
  connect(): void;
  /**
   * Resolves with the next service connection's welcome (at once if open).
   * Rejects with `closed` if the service stops first, or `not_a_service` if
   * the hub took the connection for an ordinary client (a wrong or missing
   * admin token on a hub without auth; the service then stops).
   */
  ready(): Promise<Welcome>;
  /** Closes for good: a later `publish` (or anything else) rejects with `closed`, it does not go over HTTP. */
  close(reason?: string): void;

  on(type: 'open', handler: (event: OpenEvent) => void): () => void;
  on(type: 'close', handler: (event: CloseEvent) => void): () => void;
  on(type: 'reconnecting', handler: (event: ReconnectingEvent) => void): () => void;
  on(type: 'error', handler: (error: WshubError) => void): () => void;

  /**
   * Handles the clients' requests of `type`: `req.data` is the map's data
   * for it. Each connection declares the types with a handler when it opens
   * (`?handles=`), and the hub sends it only those (every type with a
   * `fallback`, or while there is no handler): register handlers before the
   * connection opens; a type added later is declared at the next connection.
   */
  handle<K extends keyof Q & string>(type: K, handler: Handler<RequestData<Q[K]>, E>): () => void;
  handle<T extends string>(type: Other<T, Q>, handler: Handler<unknown, E>): () => void;
  /** The requests no handler takes (default: `unknown_type`). */
  fallback(handler: Handler<unknown, E>): void;

  /** One message to one client: 1 if it was there, else 0. */
  send<K extends PublishableType<E>>(clientId: string, type: K, data: E[K], options?: { correlationId?: string | number }): Promise<number>;
  send<T extends string>(clientId: string, type: OtherOutgoing<T, E>, data?: unknown, options?: { correlationId?: string | number }): Promise<number>;
  /** Publishes to one target; the clients reached. Over HTTP while the connection is down. */
  publish<K extends PublishableType<E>>(target: Target, type: K, data: E[K], options?: PublishOptions): Promise<number>;
  publish<T extends string>(target: Target, type: OtherOutgoing<T, E>, data?: unknown, options?: PublishOptions): Promise<number>;
  broadcast<K extends PublishableType<E>>(type: K, data: E[K], options?: PublishOptions): Promise<number>;
  broadcast<T extends string>(type: OtherOutgoing<T, E>, data?: unknown, options?: PublishOptions): Promise<number>;
  /** Subscribes a client; false: no such client. */
  subscribe(clientId: string, topic: Topic): Promise<boolean>;
  /** Unsubscribes a client from a topic, or from every session; false: no such client. */
  unsubscribe(clientId: string, topic?: Topic): Promise<boolean>;
  /** Closes a client's connection, or every one of a user; how many were closed. */
  disconnect(who: string | { clientId: string } | { userId: string }, options?: { code?: number; reason?: string }): Promise<number>;
  /** Merges keys into a client's metadata (`null` removes one); false: no such client. */
  setMeta(clientId: string, meta: Record<string, unknown>): Promise<boolean>;
  subscribers(topic: Topic): Promise<ClientInfo[]>;
  presence(): Promise<PresenceEntry[]>;
  stats(): Promise<HubStats>;
}

/** `http(s)://host:port` of a hub URL. */
export function httpBase(url: string | URL): string;

export default WshubService;
