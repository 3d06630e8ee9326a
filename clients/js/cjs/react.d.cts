// Generated from react.d.ts by scripts/build-cjs.mjs: edit that file, then run npm run build.
// Types of react.js, the React hooks (`@wshub/client/react`).

import type { ReactNode } from 'react';

import type {
  AgentStatus,
  AiErrorInfo,
  AiProgressInfo,
  AiResult,
  AiTask,
  AnyMessage,
  CloseEvent,
  EventMessage,
  HubMessage,
  HubMessages,
  LifecycleEvents,
  Message,
  MessageFields,
  Notification,
  OpenEvent,
  OtherType,
  PresenceEntry,
  PresenceStatus,
  ReplyOf,
  RequestData,
  SeedEvents,
  SeedRequests,
  Subscribed,
  WebSocketConstructor,
  Welcome,
  WshubClient,
  WshubError,
  WshubOptions,
} from './wshub.cjs';

/** How a hook that owns its client connects (and the seeds' `useWebSocket` options). */
export interface HookOptions<E = SeedEvents> {
  /** The hub (default: `ws(s)://<page host>/ws`). */
  url?: string;
  sessionId?: string;
  userId?: string;
  /** A token, or a function asked at every connect. */
  token?: string | (() => string | Promise<string>);
  /** Every message from the hub. */
  onMessage?: (message: AnyMessage<E>) => void;
  onOpen?: (welcome: OpenEvent) => void;
  onClose?: (event: CloseEvent) => void;
  onError?: (error: WshubError) => void;
  reconnect?: boolean;
  /** The backoff's base delay in ms (WshubClient's `minDelay`, 500). */
  reconnectInterval?: number;
  maxReconnectAttempts?: number;
  /** A WebSocket constructor (outside browsers). */
  WebSocket?: WebSocketConstructor;
  /** Any other WshubClient option. */
  client?: WshubOptions;
}

/** A hook that works on a client: its own `client`, else the provider's. */
export interface ClientOption<E = SeedEvents> {
  client?: WshubClient<E, any>;
}

export interface WshubProviderProps<E = SeedEvents> {
  /** A client of yours (you close it). */
  client?: WshubClient<E, any>;
  /** Or: the hub to connect to for the provider's life. */
  url?: string;
  /** WshubClient options for that connection. */
  options?: WshubOptions;
  children?: ReactNode;
}

/** Gives the components below one client. */
export function WshubProvider<E = SeedEvents>(props: WshubProviderProps<E>): ReactNode;

/** The provider's client (null before it exists, or without a provider). */
export function useWshubClient<E = SeedEvents>(): WshubClient<E> | null;

/** A connection as a component sees it. */
export interface Connection<E = SeedEvents> {
  client: WshubClient<E> | null;
  state: 'connecting' | 'open' | 'closed';
  isConnected: boolean;
  welcome: Welcome | null;
  /** The last error the client reported, until it is connected again. */
  error: WshubError | null;
}

/** The provider's connection (`useWshub()`), or one the component owns (`useWshub({url, ...})`). */
export function useWshub<E = SeedEvents>(options?: HookOptions<E> | ClientOption<E>): Connection<E>;

/**
 * While mounted, what `client.on(type, handler)` would get: the client's own
 * events (`open`, `close`, `reconnecting`, `error`, `gap`, `recovery`) as
 * `handler(event)`; messages as `handler(data, message)`, typed for the
 * event map's and the hub's types, `unknown` data for any other.
 */
export function useEvent<K extends keyof LifecycleEvents>(
  type: K,
  handler: (event: LifecycleEvents[K]) => void,
  options?: ClientOption<any>,
): void;
export function useEvent<K extends Exclude<keyof E & string, keyof LifecycleEvents>, E = SeedEvents>(
  type: K,
  handler: (data: E[K], message: EventMessage<E, K>) => void,
  options?: ClientOption<E>,
): void;
export function useEvent<K extends Exclude<keyof HubMessages, keyof SeedEvents | keyof LifecycleEvents>>(
  type: K,
  handler: (data: HubMessages[K], message: HubMessage<K>) => void,
  options?: ClientOption<any>,
): void;
export function useEvent<T extends string>(
  type: OtherType<T, SeedEvents>,
  handler: (data: unknown, message: Message<T, unknown>) => void,
  options?: ClientOption<any>,
): void;

/** A publication on a channel whose payload is D. */
export type ChannelMessage<D = unknown> = MessageFields & { type: string; channel: string; data: D };

export interface ChannelOptions<D = unknown, E = SeedEvents> extends ClientOption<E> {
  /** How many publications to keep (100). */
  keep?: number;
  /** Only these types. */
  types?: string[];
  onMessage?: (message: ChannelMessage<D>) => void;
}

export interface ChannelState<D = unknown> {
  /** The last `keep` publications on the channel, oldest first. */
  messages: Array<ChannelMessage<D>>;
  lastMessage: ChannelMessage<D> | null;
  /** The hub's latest answer to the subscription: where the stream stands, `recovered` after a reconnect. */
  subscribed: Subscribed | null;
  /** Why the subscription was refused (`forbidden`, `invalid_channel`, ...). */
  error: WshubError | null;
  /** Publishes on the channel (the hub must allow client publishing); resolves with the clients reached. */
  publish(event: string, data?: unknown): Promise<number>;
}

/**
 * Subscribes to a channel while mounted and keeps its publications; `D` is
 * their payload (`useChannel<FileChanged>('files')`), `unknown` unless given.
 */
export function useChannel<D = unknown, E = SeedEvents>(channel: string | null | undefined, options?: ChannelOptions<D, E>): ChannelState<D>;

export interface PresenceState {
  /** Everyone online, by user id. */
  users: PresenceEntry[];
  /** A user's status (`offline` when not listed). */
  statusOf(userId: string): PresenceStatus;
  /** Sets this user's status; resolves on the hub's `ack`. */
  setStatus(status: PresenceStatus): Promise<void>;
  error: WshubError | null;
}

/** Who is online, kept current. */
export function usePresence<E = SeedEvents>(options?: ClientOption<E>): PresenceState;

export interface RequestState<R, D = unknown> {
  /** Sends the request; resolves with the reply, rejects with a WshubError. */
  send(...args: undefined extends D ? [data?: D, fields?: Record<string, unknown>] : [data: D, fields?: Record<string, unknown>]): Promise<R>;
  /** The latest call's reply. */
  reply: R | null;
  /** Its `data`. */
  data: R extends { data: infer P } ? P | null : unknown;
  error: WshubError | null;
  loading: boolean;
}

/**
 * A request of `type` to the application. A type of the request map Q (the
 * seeds' by default: `SeedRequests`) checks what `send` takes and types the
 * reply; for any other, `R` is the reply you expect.
 */
export function useRequest<K extends keyof Q & string, Q = SeedRequests>(
  type: K,
  options?: ClientOption<any> & { timeout?: number },
): RequestState<ReplyOf<Q[K]>, RequestData<Q[K]>>;
export function useRequest<R = AnyMessage<SeedEvents>, T extends string = string>(
  type: T extends keyof SeedRequests ? never : T,
  options?: ClientOption<any> & { timeout?: number },
): RequestState<R>;

/** `useWebSocket(token)`: the Code Cloud Agents dashboard's hook. */
export interface AgentDashboardState {
  isConnected: boolean;
  agentStatus: AgentStatus | null;
  notifications: Notification[];
  sendPresence(status: PresenceStatus): Promise<void>;
  client: WshubClient | null;
}

/** `useWebSocket(options)`: the AI Canvas hook. */
export interface SocketState<E = SeedEvents> {
  isConnected: boolean;
  /** Sends `{type, ...}`; false when not connected. */
  send(message: { type: string; [field: string]: unknown }): boolean;
  lastMessage: AnyMessage<E> | null;
  client: WshubClient<E> | null;
}

export function useWebSocket(token: string, options?: HookOptions): AgentDashboardState;
export function useWebSocket<E = SeedEvents>(options: HookOptions<E>): SocketState<E>;

export interface AIState {
  isConnected: boolean;
  aiStatus: 'idle' | 'started' | 'progress' | 'complete' | 'error';
  aiTask: AiTask | null;
  aiProgress: AiProgressInfo | null;
  aiResult: AiResult | null;
  aiError: AiErrorInfo | null;
  /** Follows another session as well (default: this one). */
  subscribe(sessionId?: string): Promise<Subscribed | void>;
  client: WshubClient | null;
}

/** A session's AI progress (AI Canvas). */
export function useAIWebSocket(sessionId: string, options?: HookOptions): AIState;

export type { HubMessage, Message };
