// Generated from events.d.ts by scripts/build-cjs.mjs: edit that file, then run npm run build.
// The payloads (`data`) of the events the replaced systems' clients read:
// the same structs the hub has in src/events.rs (wshub::events), field for
// field. tests/npm_package.rs checks that they agree: src/events.rs writes
// test/types/rust-events.ts from its own structs' JSON (cargo test checks it
// is current), and `tsc --strict` checks these types against it.

/** `agent_status`: an agent's state and progress (Code Cloud Agents). */
export interface AgentStatus {
  /** Which agent, e.g. `CLOUD_ASSISTANT`. */
  agentName: string;
  state: AgentState;
  currentTask?: string;
  /** Percent, 0 to 100. */
  progress?: number;
}
export type AgentState = 'idle' | 'working' | 'stopped';

/** `chat_message`: a message of a conversation (Code Cloud Agents). */
export interface ChatMessage {
  conversationId: string;
  messageId: string;
  content: string;
  sender: string;
  /** ISO-8601. */
  timestamp: string;
}

/** `notification` (Code Cloud Agents). */
export interface Notification {
  level: NotificationLevel;
  message: string;
}
export type NotificationLevel = 'info' | 'success' | 'warning' | 'error';

/** A user's presence status. */
export type PresenceStatus = 'online' | 'away' | 'busy' | 'offline';

/** `user_presence`: the hub's own announcement of a user's status. */
export interface UserPresence {
  userId: string;
  status: PresenceStatus;
}

/** `ai_start` to a session (AI Canvas): `data.task`. */
export interface AiStart {
  task: AiTask;
}
export interface AiTask {
  prompt: string;
  mode: string;
  targetFile?: string;
}

/** `ai_progress` to a session (AI Canvas): `data.progress`. */
export interface AiProgress {
  progress: AiProgressInfo;
}
export interface AiProgressInfo {
  chunksReceived: number;
  contentLength: number;
}

/** `ai_complete` to a session (AI Canvas): `data.result`. */
export interface AiComplete {
  result: AiResult;
}
export interface AiResult {
  mode: string;
  contentLength: number;
  chunks: number;
  targetFile?: string;
}

/** `ai_error` to a session (AI Canvas): `data.error`. */
export interface AiError {
  error: AiErrorInfo;
}
export interface AiErrorInfo {
  message: string;
  /** e.g. `rate_limit_error`. */
  type: string;
}

/** `stream:chunk` (agent service): a piece of the agent's answer. */
export interface StreamChunk {
  sessionId: string;
  content: string;
}
/** `stream:complete` (agent service). */
export interface StreamComplete {
  sessionId: string;
}
/** `stream:error` (agent service). */
export interface StreamError {
  sessionId: string;
  message: string;
}
/** `status:update` (agent service). */
export interface StatusUpdate {
  sessionId: string;
  status: SessionStatus;
}
export type SessionStatus = 'idle' | 'thinking' | 'streaming' | 'error';
/** `agent:started`, the answer to `agent:start` (agent service). */
export interface AgentStarted {
  sessionId: string;
}
/** `agent:cancelled`, the answer to `agent:cancel` (agent service). */
export interface AgentCancelled {
  sessionId: string;
}

/** `messageReceived` (Cursor Chat Agent). */
export interface MessageReceived {
  id: string;
  content: string;
  timestamp: string;
  /** Who wrote it, e.g. `user`. */
  type?: string;
}
/** `ideStatusChanged` (Cursor Chat Agent). */
export interface IdeStatusChanged {
  port: number;
  status: string;
  workspacePath: string;
}
/** `connectionStatus` (Cursor Chat Agent). */
export interface ConnectionStatus {
  connected: boolean;
  activePort: number;
  lastActivity?: string;
  availablePorts?: number[];
}
/** `userAppDetected` (Cursor Chat Agent). */
export interface UserAppDetected {
  url: string;
  workspacePath: string;
}
/** `workspaceChanged` (Cursor Chat Agent). */
export interface WorkspaceChanged {
  workspacePath: string;
  port: number;
}
/** `heartbeat` (Cursor Chat Agent; the hub's `--json-heartbeat`). */
export interface Heartbeat {
  timestamp: string;
}

/** `event` on channel `files` (Cluso). */
export interface FileChanged {
  file: string;
  /** e.g. `add`, `change`, `unlink`. */
  event: string;
  timestamp: string;
}
/** `event` on channel `diagnostics` (Cluso). */
export interface DiagnosticsUpdated {
  diagnostics: Diagnostic[];
}
export interface Diagnostic {
  file: string;
  line: number;
  column: number;
  severity: Severity;
  message: string;
}
export type Severity = 'error' | 'warning' | 'info' | 'hint';
/** `event` on channel `ai-response` (Cluso). */
export interface AiChunk {
  id: string;
  chunk: string;
  index: number;
  finished: boolean;
}
/** `event` on channel `search` (Cluso). */
export interface SearchProgress {
  query: string;
  count: number;
  total: number;
  results: unknown[];
}
/** `event` on channel `validation` (Cluso). */
export interface ValidationComplete {
  result: unknown;
}
/** `event` on channel `git` (Cluso). */
export interface GitEvent {
  /** e.g. `commit`. */
  type: string;
  message: string;
}

/** The seeds' events by `type`: the default event map of `WshubClient`. */
export interface SeedEvents {
  agent_status: AgentStatus;
  chat_message: ChatMessage;
  notification: Notification;
  user_presence: UserPresence;
  ai_start: AiStart;
  ai_progress: AiProgress;
  ai_complete: AiComplete;
  ai_error: AiError;
  'stream:chunk': StreamChunk;
  'stream:complete': StreamComplete;
  'stream:error': StreamError;
  'status:update': StatusUpdate;
  'agent:started': AgentStarted;
  'agent:cancelled': AgentCancelled;
  messageReceived: MessageReceived;
  ideStatusChanged: IdeStatusChanged;
  connectionStatus: ConnectionStatus;
  userAppDetected: UserAppDetected;
  workspaceChanged: WorkspaceChanged;
  heartbeat: Heartbeat;
  /** Cluso's channel events: `message.channel` tells which (see `ChannelEvents`). */
  event: ChannelEvents[keyof ChannelEvents];
}

/** Cluso's channels and the payload of the `event`s on each. */
export interface ChannelEvents {
  files: FileChanged;
  diagnostics: DiagnosticsUpdated;
  'ai-response': AiChunk;
  search: SearchProgress;
  validation: ValidationComplete;
  git: GitEvent;
}
