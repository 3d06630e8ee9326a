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
  Message,
  Notification,
  OpenEvent,
  PresenceEntry,
  PresenceStatus,
  SeedEvents,
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
  onError?: (error: Error) => void;
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
  client?: WshubClient<E>;
}

export interface WshubProviderProps<E = SeedEvents> {
  /** A client of yours (you close it). */
  client?: WshubClient<E>;
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
  /** The last error the client reported. */
  error: WshubError | Error | null;
}

/** The provider's connection (`useWshub()`), or one the component owns (`useWshub({url, ...})`). */
export function useWshub<E = SeedEvents>(options?: HookOptions<E> | ClientOption<E>): Connection<E>;

/** `handler(data, message)` for every message of `type` while mounted. */
export function useEvent<E = SeedEvents, K extends keyof E & string = keyof E & string>(
  type: K,
  handler: (data: E[K], message: EventMessage<E, K>) => void,
  options?: ClientOption<E>,
): void;

export interface ChannelOptions<E = SeedEvents> extends ClientOption<E> {
  /** How many publications to keep (100). */
  keep?: number;
  /** Only these types. */
  types?: string[];
  onMessage?: (message: AnyMessage<E>) => void;
}

export interface ChannelState<E = SeedEvents> {
  /** The last `keep` publications on the channel, oldest first. */
  messages: Array<AnyMessage<E>>;
  lastMessage: AnyMessage<E> | null;
  /** The hub's latest answer to the subscription: where the stream stands, `recovered` after a reconnect. */
  subscribed: Subscribed | null;
  /** Why the subscription was refused (`forbidden`, `invalid_channel`, ...). */
  error: WshubError | null;
  /** Publishes on the channel (the hub must allow client publishing); resolves with the clients reached. */
  publish(event: string, data?: unknown): Promise<number>;
}

/** Subscribes to a channel while mounted and keeps its publications. */
export function useChannel<E = SeedEvents>(channel: string | null | undefined, options?: ChannelOptions<E>): ChannelState<E>;

export interface PresenceState {
  /** Everyone online, by user id. */
  users: PresenceEntry[];
  /** A user's status (`offline` when not listed). */
  statusOf(userId: string): PresenceStatus;
  /** Sets this user's status; resolves on the hub's `ack`. */
  setStatus(status: PresenceStatus): Promise<void>;
  error: WshubError | Error | null;
}

/** Who is online, kept current. */
export function usePresence<E = SeedEvents>(options?: ClientOption<E>): PresenceState;

export interface RequestState<R> {
  /** Sends the request; resolves with the reply, rejects with a WshubError. */
  send(data?: unknown, fields?: Record<string, unknown>): Promise<R>;
  /** The latest call's reply. */
  reply: R | null;
  /** Its `data`. */
  data: R extends { data: infer D } ? D | null : unknown;
  error: WshubError | Error | null;
  loading: boolean;
}

/** A request of `type` to the application; `R` is the reply you expect. */
export function useRequest<R = AnyMessage<SeedEvents>, E = SeedEvents>(
  type: string,
  options?: ClientOption<E> & { timeout?: number },
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
