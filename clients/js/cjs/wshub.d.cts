// Generated from wshub.d.ts by scripts/build-cjs.mjs: edit that file, then run npm run build.
// Types of wshub.js, the client (`@wshub/client`). Hand-written beside the
// code; `tsc --strict` checks them against typed usage files (test/types/)
// in tests/npm_package.rs.

import type {
  AgentCancelled,
  AgentStarted,
  ChannelEvents,
  Heartbeat,
  PresenceStatus,
  SeedEvents,
  StreamComplete,
  UserPresence,
} from './events.cjs';

export * from './events.cjs';

/**
 * What the client does after a connection closed: `reconnect` soon (after a
 * random delay of up to 1 s, or `minDelay` if longer), `backoff` after a
 * full-jitter delay, `refresh` the token and reconnect at once, or `stop`.
 */
export type CloseAction = 'reconnect' | 'backoff' | 'refresh' | 'stop';

/** A token, or a function asked before every connection attempt. */
export type TokenSource = string | (() => string | null | undefined | Promise<string | null | undefined>);

/** A WebSocket constructor: the browser's, Node 22's, or the `ws` package's. */
export type WebSocketConstructor = new (url: string) => any;

export interface WshubOptions {
  /** Sent as `?token=`; a function is asked before every connection attempt. */
  token?: TokenSource;
  /** `?userId=`, for a hub in development mode. */
  userId?: string;
  /**
   * A session to join: `subscribeSession(sessionId)` made at once, so it is
   * subscribed after every welcome, with `since` after a reconnect (not sent
   * as `?sessionId=`; the welcome's `sessionId` is then null).
   */
  sessionId?: string;
  /** Reconnect by the close-code table (default true). */
  reconnect?: boolean;
  /** Backoff base in ms (500). */
  minDelay?: number;
  /** Backoff ceiling in ms (20000). */
  maxDelay?: number;
  /** Reconnect attempts in a row without a welcome, then stop (Infinity). */
  maxAttempts?: number;
  /** Default `request()` timeout in ms (10000). */
  requestTimeout?: number;
  /** From opening a socket to the welcome, in ms (10000). */
  connectTimeout?: number;
  /** Application pings and the silence watchdog (default on, at the welcome's `heartbeatMs`). */
  heartbeat?: boolean | { interval?: number; grace?: number };
  /** Connect from the constructor (default true). */
  autoConnect?: boolean;
  /** The hub's `--batch-type` (`batch_update`). */
  batchType?: string;
  /** Deliver each message of a batch on its own (default true). */
  unbatch?: boolean;
  /** `?envelope=` (default `standard`, what this client reads); null: the hub's default. */
  envelope?: 'standard' | null;
  /** Overrides the close-code table for some codes; undefined keeps the default. */
  closeAction?: (code: number, reason: string) => CloseAction | undefined;
  /** Default `globalThis.WebSocket`; in Node 18 and 20 pass the `ws` package's. */
  WebSocket?: WebSocketConstructor;
  /** More query parameters for the hub; a function is called before every connection attempt. */
  query?: Record<string, string> | (() => Record<string, string | undefined>);
}

/** What a user's connection looks like from outside (`subscribers`, `stats`). */
export interface ClientInfo {
  id: string;
  userId: string | null;
  sessionId: string | null;
  isAlive: boolean;
  /** Always 1 (OPEN), as the AI Canvas stats expect. */
  state: number;
  authenticated: boolean;
  service: boolean;
  channels: string[];
  sessions: string[];
  meta: Record<string, unknown>;
}

/** The fields any message from the hub may carry besides `type` and `data`. */
export interface MessageFields {
  /** ISO-8601, set by the hub. */
  timestamp?: string;
  /** The channel it was published to (`user:<id>` for a user's own). */
  channel?: string;
  /** The session it was published to. */
  sessionId?: string;
  /** The request it answers. */
  correlationId?: string | number;
  /** Position in its stream (from 1). */
  seq?: number;
  /** The stream's epoch: a new one means its history was lost. */
  epoch?: string;
  /** On a client's publication: who published. */
  from?: { clientId: string; userId: string | null };
  /** Set by the client on a message that came inside a batch. */
  batched?: boolean;
}

/** One message of `type` T whose payload is D. */
export type Message<T extends string = string, D = unknown> = MessageFields & { type: T; data: D };

/** The welcome's data (`connection`). */
export interface Welcome {
  clientId: string;
  userId: string | null;
  sessionId: string | null;
  authenticated: boolean;
  heartbeatMs: number;
  /** `true` on a service connection (the admin token, or a token with the `service` grant); absent otherwise. */
  service?: true;
}

/** The hub's answer to a subscription: where the stream stands. */
export interface Subscribed {
  /** The stream's latest seq (absent where the stream keeps no history). */
  seq?: number;
  epoch?: string;
  /** After a `since` only: true when what was missed is being replayed; false when it is gone. */
  recovered?: boolean;
}

/** The hub's error codes (README, Errors). */
export type HubErrorCode =
  | 'invalid_json'
  | 'invalid_message'
  | 'unknown_type'
  | 'unsupported_frame'
  | 'forbidden'
  | 'invalid_channel'
  | 'rate_limited'
  | 'too_many_subscriptions'
  | 'payload_too_large'
  | 'unauthorized'
  | 'token_expired'
  | 'busy'
  /** A subscribe under way was ended by an unsubscribe (this client's, the backend's, or a refreshed token's) before it completed. */
  | 'unsubscribed';

/** The client's own error codes. */
export type ClientErrorCode =
  /** No reply within the request's timeout. */
  | 'timeout'
  /** The connection ended after the request was sent. */
  | 'disconnected'
  /** `close()` was called, or the client stopped. */
  | 'closed'
  /** The socket failed: `url`, `closeCode` and `closeReason` say how. */
  | 'socket'
  /** The token provider threw. */
  | 'token'
  /** The URL could not be opened. */
  | 'url'
  /** A subscription was left before it was confirmed. */
  | 'unsubscribed'
  /** `@wshub/client/server`: the hub took the connection for an ordinary client (a wrong or missing admin token on a hub without auth). */
  | 'not_a_service';

/** Every `code` a WshubError may have; an application's own codes too. */
export type ErrorCode = HubErrorCode | ClientErrorCode | (string & {});

export interface HubErrorData {
  code: ErrorCode;
  error: string;
}

export interface PresenceEntry {
  userId: string;
  status: PresenceStatus;
}

/** The `data` of the `ack` the hub answers a service's command with. */
export interface AckData {
  /** `send`: 1 if the client was there. */
  delivered?: number;
  /** `subscribe`, `unsubscribe`, `set_meta`: false when there is no such client. */
  done?: boolean;
  /** `disconnect`: the connections closed. */
  count?: number;
}

/** The hub's own messages, by `type`. */
export interface HubMessages {
  connection: Welcome;
  auth: { success: boolean; userId: string | null; error?: string };
  pong: undefined;
  subscribed: Subscribed;
  unsubscribed: Record<string, never> | undefined;
  published: { delivered: number };
  ack: AckData | undefined;
  error: HubErrorData;
  presence: { users: PresenceEntry[] };
  user_presence: UserPresence;
  heartbeat: Heartbeat;
  batch_update: { messages: Array<Message<string, unknown>> };
  subscribers: { clients: ClientInfo[] };
}

/** One of the hub's own messages. */
export type HubMessage<K extends keyof HubMessages = keyof HubMessages> = {
  [T in K]: Message<T, HubMessages[T]>;
}[K];

/** An `event` on one of the seeds' channels: `message.channel` tells which, and narrows `message.data`. */
export type ChannelEventMessage = {
  [C in keyof ChannelEvents]: Message<'event', ChannelEvents[C]> & { channel: C };
}[keyof ChannelEvents];

/** The message of an event of type K in the event map E. */
export type EventMessage<E, K extends keyof E> = K extends 'event'
  ? E extends SeedEvents
    ? ChannelEventMessage
    : Message<K & string, E[K]>
  : Message<K & string, E[K]>;

/** Any message the client may see: the hub's own, or an event of E. Discriminated by `type`. */
export type AnyMessage<E = SeedEvents> =
  | { [K in keyof E & string]: EventMessage<E, K> }[keyof E & string]
  | HubMessage;

/** `open`: the welcome, and whether an earlier connection of this client was open before. */
export interface OpenEvent extends Welcome {
  reconnected: boolean;
}

/** `close`: how a connection ended and what the client does now. */
export interface CloseEvent {
  code: number;
  reason: string;
  wasClean: boolean;
  action: CloseAction;
  willReconnect: boolean;
  /** For a reconnect: in how many ms. */
  delay?: number;
}

/** `reconnecting`: the next attempt is scheduled. */
export interface ReconnectingEvent {
  attempt: number;
  delay: number;
  action: CloseAction;
}

/** `gap`: publications `from`..`to` on a stream never arrived. */
export interface GapEvent {
  /** `channel:<name>` or `session:<id>`. */
  stream: string;
  channel?: string;
  sessionId?: string;
  epoch?: string;
  previousEpoch?: string;
  from: number;
  to: number;
}

/** `recovery`: the answer to a re-subscription with `since`. */
export interface RecoveryEvent {
  stream: string;
  channel?: string;
  sessionId?: string;
  /** false: publications were missed and are gone; reload that stream's state. */
  recovered: boolean;
  since: Position;
  seq?: number;
  epoch?: string;
}

/** The client's own events. */
export interface LifecycleEvents {
  open: OpenEvent;
  close: CloseEvent;
  reconnecting: ReconnectingEvent;
  /**
   * Socket errors, a failing token provider, a handler that threw (code
   * `handler`), and the hub's errors that answer no request: always a WshubError.
   */
  error: WshubError;
  gap: GapEvent;
  recovery: RecoveryEvent;
}

/** A position in a stream. */
export interface Position {
  seq: number;
  epoch?: string;
}

/** A string that names none of the known types: for messages outside the event map. */
export type OtherType<T extends string, E> = T extends keyof E | keyof HubMessages | keyof LifecycleEvents ? never : T;

/**
 * The `type`s the hub gives its own messages: nobody may publish under them
 * (the hub refuses it, `invalid_message`), though they are received. The
 * same list as the hub's (src/protocol/codes.rs, `Kind`; a test compares them).
 */
export type HubReservedType =
  | 'connection'
  | 'pong'
  | 'subscribed'
  | 'unsubscribed'
  | 'published'
  | 'ack'
  | 'error'
  | 'user_presence'
  | 'presence'
  | 'client_message'
  | 'batch_update'
  | 'subscribers'
  | 'stats'
  | 'auth'
  | 'heartbeat'
  | 'connection:established'
  | 'client_info'
  | 'admin_stats'
  | 'admin_history';

/** The types of the event map E one may publish (or send): not the hub's own, nor the client's lifecycle events. */
export type PublishableType<E> = Exclude<keyof E & string, HubReservedType | keyof LifecycleEvents>;

/** A type outside the event map E one may publish: its data is `unknown`. */
export type OtherPublishType<T extends string, E> = T extends keyof E | HubReservedType | keyof LifecycleEvents ? never : T;

/** Where a client publishes: a channel (a string) or a session, one of them. */
export type PublishTarget = string | { channel: string; sessionId?: never } | { sessionId: string; channel?: never };

/**
 * One request type of a request map: the `data` it carries and the reply it
 * gets (`{type, data}`), e.g.
 * `{ data: { projectId: string }; reply: { type: 'agent:started'; data: { sessionId: string } } }`.
 * The same map types the client's `request()` and a service's handlers.
 */
export interface RequestSpec {
  data: unknown;
  reply?: { type: string; data?: unknown };
}

/** The `data` of a request of spec S (`unknown` for a type outside the map). */
export type RequestData<S> = S extends { data: infer D } ? D : unknown;

/** The reply to a request of spec S: its message, with the fields every message may have. */
export type ReplyOf<S, E = SeedEvents> = S extends { reply: infer R } ? MessageFields & R : AnyMessage<E>;

/** `request()`'s arguments after the type: the data (optional when it may be undefined), then the options. */
export type RequestArgs<S> = undefined extends RequestData<S>
  ? [data?: RequestData<S>, options?: RequestOptions]
  : [data: RequestData<S>, options?: RequestOptions];

/** A type outside the request map Q. */
export type OtherRequestType<T extends string, Q> = T extends keyof Q ? never : T;

/** `agent:start`'s data (003's agent service: `IAgentStartPayload`). */
export interface AgentStartRequest {
  projectId: string;
  projectPath: string;
}
/** `agent:message`'s data (003: `IAgentMessagePayload`). */
export interface AgentMessageRequest {
  content: string;
}

/**
 * The seeds' requests (003's agent service, as `examples/agent-service.mjs`
 * answers them): the default request map of `WshubClient` and `WshubService`.
 */
export interface SeedRequests {
  'agent:start': { data: AgentStartRequest; reply: Message<'agent:started', AgentStarted> };
  /** Streams `stream:chunk`s to the session first. */
  'agent:message': { data: AgentMessageRequest; reply: Message<'stream:complete', StreamComplete> };
  'agent:cancel': { data: undefined; reply: Message<'agent:cancelled', AgentCancelled> };
}

export interface RequestOptions {
  /** ms (default: the client's `requestTimeout`). */
  timeout?: number;
  /** Other top-level fields of the request (`channel`, `sessionId`, ...). */
  [field: string]: unknown;
}

/**
 * An error from the hub (`code` is its error code, `reply` its message) or
 * from the client (`timeout`, `disconnected`, `closed`, `socket`, ...).
 */
export class WshubError extends Error {
  constructor(
    message: string,
    code: ErrorCode,
    reply?: Message<'error', HubErrorData>,
    details?: { url?: string; closeCode?: number; closeReason?: string; cause?: unknown },
  );
  name: 'WshubError';
  code: ErrorCode;
  /** The hub's `error` message, when it sent one. */
  reply?: Message<'error', HubErrorData>;
  /** Socket and HTTP errors: the URL (its token hidden). */
  url?: string;
  /** HTTP errors (`WshubHttp`, the service's fallback): the response's status. */
  status?: number;
  /** Socket errors: the close code the connection ended with. */
  closeCode?: number;
  closeReason?: string;
  /** A refused subscription: which stream. */
  stream?: string;
  channel?: string;
  sessionId?: string;
}

/**
 * A client of one hub. `E` maps each message `type` to its payload: the
 * seeds' events by default (`SeedEvents`), or an application's own:
 * `new WshubClient<MyEvents>(url)`. `Q` maps the request types it sends to
 * their data and replies (a `RequestSpec` each): the seeds' by default
 * (`SeedRequests`), or `new WshubClient<MyEvents, MyRequests>(url)`.
 */
export class WshubClient<E = SeedEvents, Q = SeedRequests> {
  /** @param url The hub, e.g. `ws://127.0.0.1:3000/ws` (default: the page's host, `/ws`). */
  constructor(url?: string | URL, options?: WshubOptions);
  constructor(options: WshubOptions);

  /** `connecting` (also while waiting to reconnect), `open` (welcomed) or `closed` (stopped). */
  readonly state: 'connecting' | 'open' | 'closed';
  readonly clientId: string | null;
  readonly userId: string | null;
  readonly welcome: Welcome | null;
  /** The streams re-sent on reconnect: `channel:<name>`, `session:<id>`. */
  readonly subscriptions: string[];
  /** The last position seen on each stream, by stream. */
  readonly positions: Record<string, Position>;

  connect(): void;
  /**
   * Resolves with the welcome once open (at once if it is); rejects with
   * `closed` if the client stops first or has stopped. Before the first
   * `connect()` (`autoConnect: false`) it waits for it.
   */
  ready(): Promise<Welcome>;
  /**
   * Closes with 1000 and stops for good; pending requests reject with
   * `closed`. The reason is cut to the 123 bytes of UTF-8 a Close frame holds.
   */
  close(reason?: string): void;

  /** Fire and forget; false (and nothing sent) when not connected. */
  send(message: { type: string; [field: string]: unknown }): boolean;
  send(type: string, data?: unknown, fields?: Record<string, unknown>): boolean;

  /**
   * Sends a request with a fresh `correlationId` and resolves with the reply
   * carrying it; rejects with a WshubError (the hub's code, or `timeout`,
   * `disconnected`, `closed`). A type of the request map Q checks its data
   * and types its reply; for any other, `R` names the reply you expect.
   */
  request<K extends keyof Q & string>(type: K, ...args: RequestArgs<Q[K]>): Promise<ReplyOf<Q[K], E>>;
  request<R = AnyMessage<E>, T extends string = string>(type: OtherRequestType<T, Q>, data?: unknown, options?: RequestOptions): Promise<R>;

  /** Publishes an event of the map to a channel or session; resolves with the clients reached. */
  publish<K extends PublishableType<E>>(target: PublishTarget, event: K, data: E[K]): Promise<number>;
  publish<T extends string>(target: PublishTarget, event: OtherPublishType<T, E>, data?: unknown): Promise<number>;

  setPresence(status: PresenceStatus): Promise<void>;
  presence(): Promise<PresenceEntry[]>;
  /** Sends a fresh token before the current one expires. */
  refresh(token?: string): Promise<void>;

  /** Subscribes now and after every reconnect; resolves with where the stream stands. */
  subscribe(channel: string, options?: { since?: Position }): Promise<Subscribed>;
  subscribeSession(sessionId: string, options?: { since?: Position }): Promise<Subscribed>;
  unsubscribe(channel: string): Promise<void>;
  unsubscribeSession(sessionId: string): Promise<void>;

  /** The client's own events: `handler(event)`. */
  on<K extends keyof LifecycleEvents>(type: K, handler: (event: LifecycleEvents[K]) => void): () => void;
  /** Messages of a type of the event map: `handler(data, message)`. */
  on<K extends Exclude<keyof E & string, keyof LifecycleEvents>>(
    type: K,
    handler: (data: E[K], message: EventMessage<E, K>) => void,
  ): () => void;
  /** The hub's own messages. */
  on<K extends Exclude<keyof HubMessages, keyof E | keyof LifecycleEvents>>(
    type: K,
    handler: (data: HubMessages[K], message: HubMessage<K>) => void,
  ): () => void;
  /** Any other type: its data is `unknown`. */
  on<T extends string>(type: OtherType<T, E>, handler: (data: unknown, message: Message<T, unknown>) => void): () => void;

  once<K extends keyof LifecycleEvents>(type: K, handler: (event: LifecycleEvents[K]) => void): () => void;
  once<K extends Exclude<keyof E & string, keyof LifecycleEvents>>(
    type: K,
    handler: (data: E[K], message: EventMessage<E, K>) => void,
  ): () => void;
  once<K extends Exclude<keyof HubMessages, keyof E | keyof LifecycleEvents>>(
    type: K,
    handler: (data: HubMessages[K], message: HubMessage<K>) => void,
  ): () => void;
  once<T extends string>(type: OtherType<T, E>, handler: (data: unknown, message: Message<T, unknown>) => void): () => void;

  /** Removes a handler given to `on` or `once`. */
  off(type: string, handler: (...args: any[]) => void): void;

  /** Every message (replies and errors too), but the heartbeat's pongs. */
  onAny(handler: (message: AnyMessage<E>) => void): () => void;
  offAny(handler: (message: AnyMessage<E>) => void): void;
}

/** Whether `value` is a WshubClient, made by this copy of the package or another (its ESM or CommonJS twin). */
export function isWshubClient(value: unknown): value is WshubClient<any, any>;
/**
 * The close-code table. The application's codes: 4000 to 4499 back off and
 * reconnect, 4500 to 4999 stop (Centrifugo's convention).
 */
export function closeAction(code: number): CloseAction;
/** The delay before reconnecting to a hub that is going away (1001): random in [0, max(1000, minDelay)) ms. */
export function restartDelay(minDelay: number, random?: () => number): number;
/** Full jitter: a random delay in [0, min(maxDelay, minDelay * 2^attempt)). */
export function backoffDelay(attempt: number, minDelay: number, maxDelay: number, random?: () => number): number;
/** The page's own hub: `ws(s)://<host>/ws`. */
export function defaultUrl(): string;
/** A URL fit for a log: its token hidden. */
export function redactUrl(url: string | URL): string;

export default WshubClient;
