//! Typed server-to-client events: one struct per payload that the clients of the systems
//! wshub replaces expect, each tied to its wire `type` by [`Event`] (and to its
//! channel by [`ChannelEvent`]), so nobody builds event JSON by hand and a
//! misspelt type name does not compile.
//!
//! Pure data, no threads: each struct serialises to exactly the `data` its
//! clients read. [`Handle::emit`](crate::Handle::emit) and
//! [`Handle::emit_on_channel`](crate::Handle::emit_on_channel) publish them.
//!
//! Payloads that clients read as one nested object (`message.progress`,
//! `message.result`, `message.task`, `message.error` in the AI Canvas clients) are
//! wrapped in a struct of one field, so that the `flat` envelope, which lifts
//! an object payload's fields next to `type`, gives those clients the shape
//! they read.
//!
//! | `type` | struct | usual target | clients that read it |
//! | --- | --- | --- | --- |
//! | `agent_status` | [`AgentStatus`] | broadcast | Code Cloud Agents |
//! | `chat_message` | [`ChatMessage`] | broadcast | Code Cloud Agents |
//! | `notification` | [`Notification`] | broadcast, or one user | Code Cloud Agents |
//! | `user_presence` | [`UserPresence`] | the hub's own (not publishable) | Code Cloud Agents |
//! | `ai_start` | [`AiStart`] | a session | AI Canvas |
//! | `ai_progress` | [`AiProgress`] | a session | AI Canvas |
//! | `ai_complete` | [`AiComplete`] | a session | AI Canvas |
//! | `ai_error` | [`AiError`] | a session | AI Canvas |
//! | `stream:chunk` | [`StreamChunk`] | a session, or one client | agent service |
//! | `stream:complete` | [`StreamComplete`] | a session, or one client | agent service |
//! | `stream:error` | [`StreamError`] | a session, or one client | agent service |
//! | `status:update` | [`StatusUpdate`] | a session, or one client | agent service |
//! | `agent:started` | [`AgentStarted`] | a session, or one client | agent service |
//! | `agent:cancelled` | [`AgentCancelled`] | a session, or one client | agent service |
//! | `messageReceived` | [`MessageReceived`] | broadcast | Cursor Chat Agent |
//! | `ideStatusChanged` | [`IdeStatusChanged`] | broadcast | Cursor Chat Agent |
//! | `connectionStatus` | [`ConnectionStatus`] | broadcast | Cursor Chat Agent |
//! | `userAppDetected` | [`UserAppDetected`] | broadcast | Cursor Chat Agent |
//! | `workspaceChanged` | [`WorkspaceChanged`] | broadcast | Cursor Chat Agent |
//! | `heartbeat` | [`Heartbeat`] | the hub's own, `--json-heartbeat` (not publishable) | Cursor Chat Agent |
//! | `event` | [`FileChanged`] | channel `files` | Cluso |
//! | `event` | [`DiagnosticsUpdated`] | channel `diagnostics` | Cluso |
//! | `event` | [`AiChunk`] | channel `ai-response` | Cluso |
//! | `event` | [`SearchProgress`] | channel `search` | Cluso |
//! | `event` | [`ValidationComplete`] | channel `validation` | Cluso |
//! | `event` | [`GitEvent`] | channel `git` | Cluso |
//!
//! Timestamps inside payloads are ISO-8601 strings, as those systems send them;
//! the constructors that stamp one use [`Timestamp::now`].
//!
//! # Example
//!
//! ```
//! use wshub::{Hub, Target};
//! use wshub::events::{AiProgress, FileChanged, Notification};
//!
//! let server = Hub::bind("127.0.0.1:0")?.spawn()?;
//! let handle = server.handle();
//! // {"type":"ai_progress","sessionId":"session_123","data":{"progress":{"chunksReceived":25,"contentLength":1250}},...}
//! handle.emit(Target::session("session_123"), &AiProgress::new(25, 1250))?;
//! // {"type":"notification","data":{"level":"success","message":"All tests passed!"},...}
//! handle.emit(Target::user("user_abc123"), &Notification::success("All tests passed!"))?;
//! // {"type":"event","channel":"files","data":{"file":"src/main.rs","event":"change","timestamp":"..."},...}
//! let delivered = handle.emit_on_channel(&FileChanged::new("src/main.rs", "change"))?;
//! assert_eq!(delivered, 0); // nobody is subscribed yet
//! server.shutdown()?;
//! # Ok::<(), wshub::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::protocol::{Status, Timestamp};

/// A payload with its wire `type`: what [`Handle::emit`](crate::Handle::emit)
/// publishes.
///
/// Every event the clients of the systems wshub replaces expect has a struct here (see
/// the implementors); an application may implement it for its own.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct BuildFinished { ok: bool }
/// impl wshub::events::Event for BuildFinished {
///     const TYPE: &'static str = "build_finished";
/// }
/// ```
pub trait Event: Serialize {
    /// The message's `type` on the wire.
    const TYPE: &'static str;
}

/// An event that belongs on one channel: what
/// [`Handle::emit_on_channel`](crate::Handle::emit_on_channel) publishes.
pub trait ChannelEvent: Event {
    /// The channel its subscribers listen on.
    const CHANNEL: &'static str;
}

/// Ties each struct to its wire `type`, every name in one list.
macro_rules! events {
    ( $( $ty:ident => $wire:literal, )* ) => {
        $( impl Event for $ty { const TYPE: &'static str = $wire; } )*

        /// Every `type` above, for the tests.
        #[cfg(test)]
        const TYPES: &[&str] = &[$($wire),*];
    };
}

/// Ties each channel event to its channel; their `type` is `event`.
macro_rules! channel_events {
    ( $( $ty:ident => $channel:literal, )* ) => {
        $(
            impl Event for $ty { const TYPE: &'static str = "event"; }
            impl ChannelEvent for $ty { const CHANNEL: &'static str = $channel; }
        )*

        /// Every channel above, for the tests.
        #[cfg(test)]
        const CHANNELS: &[&str] = &[$($channel),*];
    };
}

events! {
    AgentStatus => "agent_status",
    ChatMessage => "chat_message",
    Notification => "notification",
    UserPresence => "user_presence",
    AiStart => "ai_start",
    AiProgress => "ai_progress",
    AiComplete => "ai_complete",
    AiError => "ai_error",
    StreamChunk => "stream:chunk",
    StreamComplete => "stream:complete",
    StreamError => "stream:error",
    StatusUpdate => "status:update",
    AgentStarted => "agent:started",
    AgentCancelled => "agent:cancelled",
    MessageReceived => "messageReceived",
    IdeStatusChanged => "ideStatusChanged",
    ConnectionStatus => "connectionStatus",
    UserAppDetected => "userAppDetected",
    WorkspaceChanged => "workspaceChanged",
    Heartbeat => "heartbeat",
}

channel_events! {
    FileChanged => "files",
    DiagnosticsUpdated => "diagnostics",
    AiChunk => "ai-response",
    SearchProgress => "search",
    ValidationComplete => "validation",
    GitEvent => "git",
}

/// ISO-8601 UTC with milliseconds, now.
fn now() -> String {
    Timestamp::now().to_string()
}

// --- 001: Code Cloud Agents -------------------------------------------------

/// `agent_status`: an agent's state and progress (the Code Cloud Agents clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// Which agent, e.g. `CLOUD_ASSISTANT`.
    pub agent_name: String,
    /// What it is doing.
    pub state: AgentState,
    /// The task it works on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_task: Option<String>,
    /// How far along, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
}

impl AgentStatus {
    /// An agent in `state`, with no task or progress.
    pub fn new(agent_name: impl Into<String>, state: AgentState) -> AgentStatus {
        AgentStatus {
            agent_name: agent_name.into(),
            state,
            current_task: None,
            progress: None,
        }
    }

    /// Sets `currentTask`.
    pub fn task(mut self, task: impl Into<String>) -> AgentStatus {
        self.current_task = Some(task.into());
        self
    }

    /// Sets `progress` (percent).
    pub fn progress(mut self, percent: u8) -> AgentStatus {
        self.progress = Some(percent);
        self
    }
}

/// An agent's `state` in [`AgentStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Ready for work.
    Idle,
    /// Processing a task.
    Working,
    /// Stopped (e.g. a STOP decision).
    Stopped,
}

/// `chat_message`: a message in a conversation (the Code Cloud Agents clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// The conversation, e.g. `conv-123`.
    pub conversation_id: String,
    /// The message, e.g. `msg-456`.
    pub message_id: String,
    /// Its text.
    pub content: String,
    /// Who wrote it, e.g. `ENGINEERING_LEAD_SUPERVISOR`.
    pub sender: String,
    /// When it was written (ISO-8601).
    pub timestamp: String,
}

impl ChatMessage {
    /// A message stamped now.
    pub fn new(
        conversation_id: impl Into<String>,
        message_id: impl Into<String>,
        content: impl Into<String>,
        sender: impl Into<String>,
    ) -> ChatMessage {
        ChatMessage {
            conversation_id: conversation_id.into(),
            message_id: message_id.into(),
            content: content.into(),
            sender: sender.into(),
            timestamp: now(),
        }
    }
}

/// `notification`: a message for people to see (the Code Cloud Agents clients), to everyone
/// or to one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// How it should be shown.
    pub level: NotificationLevel,
    /// The text.
    pub message: String,
}

impl Notification {
    /// A notification of `level`.
    pub fn new(level: NotificationLevel, message: impl Into<String>) -> Notification {
        Notification {
            level,
            message: message.into(),
        }
    }

    /// Level `info`.
    pub fn info(message: impl Into<String>) -> Notification {
        Notification::new(NotificationLevel::Info, message)
    }

    /// Level `success`.
    pub fn success(message: impl Into<String>) -> Notification {
        Notification::new(NotificationLevel::Success, message)
    }

    /// Level `warning`.
    pub fn warning(message: impl Into<String>) -> Notification {
        Notification::new(NotificationLevel::Warning, message)
    }

    /// Level `error`.
    pub fn error(message: impl Into<String>) -> Notification {
        Notification::new(NotificationLevel::Error, message)
    }
}

/// A [`Notification`]'s `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationLevel {
    /// Informational.
    Info,
    /// Something went well.
    Success,
    /// Something needs attention.
    Warning,
    /// Something failed.
    Error,
}

/// `user_presence`: a user's status (the Code Cloud Agents clients). The hub broadcasts these
/// itself when clients set their presence; as one of its own types it is
/// not published by the application
/// ([`Error::ReservedType`](crate::Error::ReservedType)): this struct reads
/// them (in a Rust client, say).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPresence {
    /// The user.
    pub user_id: String,
    /// Online, away, busy or offline.
    pub status: Status,
}

impl UserPresence {
    /// `user_id` is `status`.
    pub fn new(user_id: impl Into<String>, status: Status) -> UserPresence {
        UserPresence {
            user_id: user_id.into(),
            status,
        }
    }
}

// --- 004: AI Canvas, to a session -------------------------------------------

/// `ai_start`: an AI task began (the AI Canvas clients); clients read `message.task`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AiStart {
    /// What was asked.
    pub task: AiTask,
}

impl AiStart {
    /// A task of `mode` (e.g. `generate`) for `prompt`.
    pub fn new(prompt: impl Into<String>, mode: impl Into<String>) -> AiStart {
        AiStart {
            task: AiTask {
                prompt: prompt.into(),
                mode: mode.into(),
                target_file: None,
            },
        }
    }

    /// Sets `task.targetFile`.
    pub fn target_file(mut self, file: impl Into<String>) -> AiStart {
        self.task.target_file = Some(file.into());
        self
    }
}

/// The `task` of [`AiStart`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AiTask {
    /// The prompt, e.g. `Create a React component`.
    pub prompt: String,
    /// The kind of task, e.g. `generate`.
    pub mode: String,
    /// The file the result is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_file: Option<String>,
}

/// `ai_progress`: how far an AI task is (the AI Canvas clients); clients read
/// `message.progress.chunksReceived`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AiProgress {
    /// The counts so far.
    pub progress: AiProgressInfo,
}

impl AiProgress {
    /// `chunks_received` chunks, `content_length` characters so far.
    pub fn new(chunks_received: u64, content_length: u64) -> AiProgress {
        AiProgress {
            progress: AiProgressInfo {
                chunks_received,
                content_length,
            },
        }
    }
}

/// The `progress` of [`AiProgress`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AiProgressInfo {
    /// Chunks received from the model so far.
    pub chunks_received: u64,
    /// Length of the content so far.
    pub content_length: u64,
}

/// `ai_complete`: an AI task finished (the AI Canvas clients); clients read
/// `message.result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AiComplete {
    /// What came of it.
    pub result: AiResult,
}

impl AiComplete {
    /// A task of `mode` done: `content_length` characters in `chunks` chunks.
    pub fn new(mode: impl Into<String>, content_length: u64, chunks: u64) -> AiComplete {
        AiComplete {
            result: AiResult {
                mode: mode.into(),
                content_length,
                chunks,
                target_file: None,
            },
        }
    }

    /// Sets `result.targetFile`.
    pub fn target_file(mut self, file: impl Into<String>) -> AiComplete {
        self.result.target_file = Some(file.into());
        self
    }
}

/// The `result` of [`AiComplete`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AiResult {
    /// The kind of task, e.g. `generate`.
    pub mode: String,
    /// Length of the content.
    pub content_length: u64,
    /// Chunks it came in.
    pub chunks: u64,
    /// The file it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_file: Option<String>,
}

/// `ai_error`: an AI task failed (the AI Canvas clients); clients read
/// `message.error.message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AiError {
    /// What went wrong.
    pub error: AiErrorInfo,
}

impl AiError {
    /// An error of `kind` (e.g. `rate_limit_error`).
    pub fn new(message: impl Into<String>, kind: impl Into<String>) -> AiError {
        AiError {
            error: AiErrorInfo {
                message: message.into(),
                kind: kind.into(),
            },
        }
    }
}

/// The `error` of [`AiError`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AiErrorInfo {
    /// For people, e.g. `API rate limit exceeded`.
    pub message: String,
    /// For programs, e.g. `rate_limit_error` (`type` on the wire).
    #[serde(rename = "type")]
    pub kind: String,
}

// --- 003: agent sessions ----------------------------------------------------

/// `stream:chunk`: a piece of an agent's answer (the agent service clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamChunk {
    /// The session it belongs to.
    pub session_id: String,
    /// The text of this piece.
    pub content: String,
}

impl StreamChunk {
    /// `content` for `session_id`.
    pub fn new(session_id: impl Into<String>, content: impl Into<String>) -> StreamChunk {
        StreamChunk {
            session_id: session_id.into(),
            content: content.into(),
        }
    }
}

/// `stream:complete`: the answer is whole (the agent service clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamComplete {
    /// The session.
    pub session_id: String,
}

impl StreamComplete {
    /// For `session_id`.
    pub fn new(session_id: impl Into<String>) -> StreamComplete {
        StreamComplete {
            session_id: session_id.into(),
        }
    }
}

/// `stream:error`: the answer failed (the agent service clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamError {
    /// The session.
    pub session_id: String,
    /// What went wrong.
    pub message: String,
}

impl StreamError {
    /// `message` for `session_id`.
    pub fn new(session_id: impl Into<String>, message: impl Into<String>) -> StreamError {
        StreamError {
            session_id: session_id.into(),
            message: message.into(),
        }
    }
}

/// `status:update`: what a session's agent is doing (the agent service clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusUpdate {
    /// The session.
    pub session_id: String,
    /// Its state.
    pub status: SessionStatus,
}

impl StatusUpdate {
    /// `session_id` is now `status`.
    pub fn new(session_id: impl Into<String>, status: SessionStatus) -> StatusUpdate {
        StatusUpdate {
            session_id: session_id.into(),
            status,
        }
    }
}

/// A [`StatusUpdate`]'s `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// Waiting for a message.
    Idle,
    /// Working on an answer.
    Thinking,
    /// Sending an answer.
    Streaming,
    /// Failed.
    Error,
}

/// `agent:started`: a session's agent is running (the agent service clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStarted {
    /// The session.
    pub session_id: String,
}

impl AgentStarted {
    /// For `session_id`.
    pub fn new(session_id: impl Into<String>) -> AgentStarted {
        AgentStarted {
            session_id: session_id.into(),
        }
    }
}

/// `agent:cancelled`: a session's agent was stopped (the agent service clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCancelled {
    /// The session.
    pub session_id: String,
}

impl AgentCancelled {
    /// For `session_id`.
    pub fn new(session_id: impl Into<String>) -> AgentCancelled {
        AgentCancelled {
            session_id: session_id.into(),
        }
    }
}

// --- 000: Cursor Chat Agent -------------------------------------------------

/// `messageReceived`: a chat message to show (the Cursor Chat Agent clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageReceived {
    /// The message, e.g. `msg-123`.
    pub id: String,
    /// Its text.
    pub content: String,
    /// When (ISO-8601).
    pub timestamp: String,
    /// Whose, e.g. `user` (`type` on the wire). The Cursor Chat Agent's own broadcasts
    /// sometimes leave it out.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl MessageReceived {
    /// A message stamped now, with no `type`.
    pub fn new(id: impl Into<String>, content: impl Into<String>) -> MessageReceived {
        MessageReceived {
            id: id.into(),
            content: content.into(),
            timestamp: now(),
            kind: None,
        }
    }

    /// Sets `type` (e.g. `user`).
    pub fn kind(mut self, kind: impl Into<String>) -> MessageReceived {
        self.kind = Some(kind.into());
        self
    }
}

/// `ideStatusChanged`: an IDE's state (the Cursor Chat Agent clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdeStatusChanged {
    /// The IDE's debugging port, e.g. 9222.
    pub port: u16,
    /// Its state, e.g. `active`.
    pub status: String,
    /// The workspace it has open.
    pub workspace_path: String,
}

impl IdeStatusChanged {
    /// The IDE on `port` is `status`.
    pub fn new(
        port: u16,
        status: impl Into<String>,
        workspace_path: impl Into<String>,
    ) -> IdeStatusChanged {
        IdeStatusChanged {
            port,
            status: status.into(),
            workspace_path: workspace_path.into(),
        }
    }
}

/// `connectionStatus`: the connection to the IDE (the Cursor Chat Agent clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    /// Whether it is connected.
    pub connected: bool,
    /// The port in use.
    pub active_port: u16,
    /// When something last happened (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<String>,
    /// Every port an IDE answers on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_ports: Option<Vec<u16>>,
}

impl ConnectionStatus {
    /// `connected` on `active_port`, nothing else.
    pub fn new(connected: bool, active_port: u16) -> ConnectionStatus {
        ConnectionStatus {
            connected,
            active_port,
            last_activity: None,
            available_ports: None,
        }
    }

    /// Sets `lastActivity` to now.
    pub fn active_now(mut self) -> ConnectionStatus {
        self.last_activity = Some(now());
        self
    }

    /// Sets `availablePorts`.
    pub fn available_ports(mut self, ports: impl Into<Vec<u16>>) -> ConnectionStatus {
        self.available_ports = Some(ports.into());
        self
    }
}

/// `userAppDetected`: the user's own app is running (the Cursor Chat Agent clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserAppDetected {
    /// Where, e.g. `http://localhost:3000`.
    pub url: String,
    /// The workspace it belongs to.
    pub workspace_path: String,
}

impl UserAppDetected {
    /// The app at `url` of `workspace_path`.
    pub fn new(url: impl Into<String>, workspace_path: impl Into<String>) -> UserAppDetected {
        UserAppDetected {
            url: url.into(),
            workspace_path: workspace_path.into(),
        }
    }
}

/// `workspaceChanged`: the IDE opened another workspace (the Cursor Chat Agent clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceChanged {
    /// The workspace now open.
    pub workspace_path: String,
    /// The IDE's port.
    pub port: u16,
}

impl WorkspaceChanged {
    /// `workspace_path` is open in the IDE on `port`.
    pub fn new(workspace_path: impl Into<String>, port: u16) -> WorkspaceChanged {
        WorkspaceChanged {
            workspace_path: workspace_path.into(),
            port,
        }
    }
}

/// `heartbeat`: the server is alive (the Cursor Chat Agent clients). The
/// hub sends it itself (`--json-heartbeat`); as one of its own types it is
/// not published ([`Error::ReservedType`](crate::Error::ReservedType)), so
/// a client can trust it comes from the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// When it was sent (ISO-8601).
    pub timestamp: String,
}

impl Heartbeat {
    /// Stamped now.
    pub fn now() -> Heartbeat {
        Heartbeat { timestamp: now() }
    }
}

// --- 002: Cluso, channel events ---------------------------------------------

/// `event` on `files`: a file changed on disk (the Cluso clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChanged {
    /// The file, e.g. `src/main.ts`.
    pub file: String,
    /// What happened, as the file watcher names it: `add`, `change`,
    /// `unlink`, `addDir`, `unlinkDir`.
    pub event: String,
    /// When (ISO-8601).
    pub timestamp: String,
}

impl FileChanged {
    /// `event` happened to `file`, stamped now.
    pub fn new(file: impl Into<String>, event: impl Into<String>) -> FileChanged {
        FileChanged {
            file: file.into(),
            event: event.into(),
            timestamp: now(),
        }
    }
}

/// `event` on `diagnostics`: the current lint and type errors
/// (the Cluso clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticsUpdated {
    /// Every diagnostic.
    pub diagnostics: Vec<Diagnostic>,
}

impl DiagnosticsUpdated {
    /// The given diagnostics.
    pub fn new(diagnostics: impl Into<Vec<Diagnostic>>) -> DiagnosticsUpdated {
        DiagnosticsUpdated {
            diagnostics: diagnostics.into(),
        }
    }
}

/// One entry of [`DiagnosticsUpdated`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    /// The file.
    pub file: String,
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
    /// How bad.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at `file:line:column`.
    pub fn new(
        file: impl Into<String>,
        line: u32,
        column: u32,
        severity: Severity,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: file.into(),
            line,
            column,
            severity,
            message: message.into(),
        }
    }
}

/// A [`Diagnostic`]'s `severity`, as language servers name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// An error.
    Error,
    /// A warning.
    Warning,
    /// Information.
    Info,
    /// A hint.
    Hint,
}

/// `event` on `ai-response`: a piece of a streamed AI answer (the Cluso clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AiChunk {
    /// The answer it belongs to.
    pub id: String,
    /// The text of this piece.
    pub chunk: String,
    /// Its position, from 0.
    pub index: u64,
    /// Whether it is the last.
    pub finished: bool,
}

impl AiChunk {
    /// Piece `index` of answer `id`.
    pub fn new(
        id: impl Into<String>,
        chunk: impl Into<String>,
        index: u64,
        finished: bool,
    ) -> AiChunk {
        AiChunk {
            id: id.into(),
            chunk: chunk.into(),
            index,
            finished,
        }
    }
}

/// `event` on `search`: results so far (the Cluso clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchProgress {
    /// What is searched for.
    pub query: String,
    /// Results found so far.
    pub count: u64,
    /// Results expected in all.
    pub total: u64,
    /// The results (the search tool's own shape).
    pub results: Vec<serde_json::Value>,
}

impl SearchProgress {
    /// `count` of `total` results for `query`.
    pub fn new(
        query: impl Into<String>,
        count: u64,
        total: u64,
        results: Vec<serde_json::Value>,
    ) -> SearchProgress {
        SearchProgress {
            query: query.into(),
            count,
            total,
            results,
        }
    }
}

/// `event` on `validation`: a validation run finished (the Cluso clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationComplete {
    /// Its result (the validating tool's own shape).
    pub result: serde_json::Value,
}

impl ValidationComplete {
    /// The given result.
    pub fn new(result: serde_json::Value) -> ValidationComplete {
        ValidationComplete { result }
    }
}

/// `event` on `git`: a git operation happened (the Cluso clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitEvent {
    /// What happened, e.g. `commit` (`type` on the wire, inside `data`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Details for people.
    pub message: String,
}

impl GitEvent {
    /// A git event of `kind`.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> GitEvent {
        GitEvent {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod typescript;

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashSet;
    use std::fmt::Debug;
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};
    use tungstenite::{Message, WebSocket};

    use super::*;
    use crate::{Hub, Target};

    /// Serialises to exactly `expected` and reads back as itself.
    fn wire<E: Event + DeserializeOwned + PartialEq + Debug>(event: &E, expected: Value) {
        let value = serde_json::to_value(event).unwrap();
        assert_eq!(value, expected, "{}", E::TYPE);
        let back: E = serde_json::from_value(value).unwrap();
        assert_eq!(&back, event, "{} round trip", E::TYPE);
    }

    const SEED_TIME: &str = "2024-01-01T12:00:00.000Z";

    #[test]
    fn cloud_agents_events_match_001() {
        wire(
            &AgentStatus::new("CLOUD_ASSISTANT", AgentState::Working)
                .task("Processing webhook event")
                .progress(45),
            json!({
                "agentName": "CLOUD_ASSISTANT",
                "state": "working",
                "currentTask": "Processing webhook event",
                "progress": 45
            }),
        );
        wire(
            &AgentStatus::new("CLOUD_ASSISTANT", AgentState::Idle),
            json!({"agentName": "CLOUD_ASSISTANT", "state": "idle"}),
        );
        wire(
            &AgentStatus::new("A", AgentState::Stopped),
            json!({"agentName": "A", "state": "stopped"}),
        );
        wire(
            &ChatMessage {
                timestamp: "2025-12-26T13:00:00.000Z".into(),
                ..ChatMessage::new(
                    "conv-123",
                    "msg-456",
                    "Task completed successfully!",
                    "ENGINEERING_LEAD_SUPERVISOR",
                )
            },
            json!({
                "conversationId": "conv-123",
                "messageId": "msg-456",
                "content": "Task completed successfully!",
                "sender": "ENGINEERING_LEAD_SUPERVISOR",
                "timestamp": "2025-12-26T13:00:00.000Z"
            }),
        );
        wire(
            &Notification::success("All tests passed!"),
            json!({"level": "success", "message": "All tests passed!"}),
        );
        for (n, level) in [
            (Notification::info("m"), "info"),
            (Notification::warning("m"), "warning"),
            (Notification::error("m"), "error"),
        ] {
            wire(&n, json!({"level": level, "message": "m"}));
        }
        wire(
            &UserPresence::new("user_abc123", Status::Online),
            json!({"userId": "user_abc123", "status": "online"}),
        );
        wire(
            &UserPresence::new("u", Status::Busy),
            json!({"userId": "u", "status": "busy"}),
        );
    }

    #[test]
    fn ai_canvas_events_match_004() {
        wire(
            &AiStart::new("Create a React component", "generate").target_file("src/Component.tsx"),
            json!({"task": {
                "prompt": "Create a React component",
                "mode": "generate",
                "targetFile": "src/Component.tsx"
            }}),
        );
        wire(
            &AiStart::new("Create component", "generate"),
            json!({"task": {"prompt": "Create component", "mode": "generate"}}),
        );
        wire(
            &AiProgress::new(25, 1250),
            json!({"progress": {"chunksReceived": 25, "contentLength": 1250}}),
        );
        wire(
            &AiComplete::new("generate", 5000, 100).target_file("src/Component.tsx"),
            json!({"result": {
                "mode": "generate",
                "contentLength": 5000,
                "chunks": 100,
                "targetFile": "src/Component.tsx"
            }}),
        );
        wire(
            &AiComplete::new("generate", 5000, 100),
            json!({"result": {"mode": "generate", "contentLength": 5000, "chunks": 100}}),
        );
        wire(
            &AiError::new("API rate limit exceeded", "rate_limit_error"),
            json!({"error": {"message": "API rate limit exceeded", "type": "rate_limit_error"}}),
        );
    }

    #[test]
    fn agent_session_events_match_003() {
        wire(
            &StreamChunk::new("client_1", "Hel"),
            json!({"sessionId": "client_1", "content": "Hel"}),
        );
        wire(
            &StreamComplete::new("client_1"),
            json!({"sessionId": "client_1"}),
        );
        wire(
            &StreamError::new("client_1", "Unknown error"),
            json!({"sessionId": "client_1", "message": "Unknown error"}),
        );
        for (status, name) in [
            (SessionStatus::Idle, "idle"),
            (SessionStatus::Thinking, "thinking"),
            (SessionStatus::Streaming, "streaming"),
            (SessionStatus::Error, "error"),
        ] {
            wire(
                &StatusUpdate::new("client_1", status),
                json!({"sessionId": "client_1", "status": name}),
            );
        }
        wire(
            &AgentStarted::new("client_1"),
            json!({"sessionId": "client_1"}),
        );
        wire(
            &AgentCancelled::new("client_1"),
            json!({"sessionId": "client_1"}),
        );
    }

    #[test]
    fn cursor_chat_events_match_000() {
        wire(
            &MessageReceived {
                timestamp: SEED_TIME.into(),
                ..MessageReceived::new("msg-123", "Hello, Cursor!").kind("user")
            },
            json!({
                "id": "msg-123",
                "content": "Hello, Cursor!",
                "timestamp": SEED_TIME,
                "type": "user"
            }),
        );
        // What the Cursor Chat Agent's own broadcastToClients('messageReceived', ...) sends.
        wire(
            &MessageReceived {
                timestamp: SEED_TIME.into(),
                ..MessageReceived::new("msg-123", "Hello, everyone!")
            },
            json!({"id": "msg-123", "content": "Hello, everyone!", "timestamp": SEED_TIME}),
        );
        wire(
            &IdeStatusChanged::new(9222, "active", "/path/to/workspace"),
            json!({"port": 9222, "status": "active", "workspacePath": "/path/to/workspace"}),
        );
        wire(
            &ConnectionStatus {
                last_activity: Some(SEED_TIME.into()),
                ..ConnectionStatus::new(true, 9222)
            },
            json!({"connected": true, "activePort": 9222, "lastActivity": SEED_TIME}),
        );
        wire(
            &ConnectionStatus::new(true, 9222).available_ports([9222, 9223]),
            json!({"connected": true, "activePort": 9222, "availablePorts": [9222, 9223]}),
        );
        wire(
            &UserAppDetected::new("http://localhost:3000", "/path/to/workspace"),
            json!({"url": "http://localhost:3000", "workspacePath": "/path/to/workspace"}),
        );
        wire(
            &WorkspaceChanged::new("/path/to/workspace", 9222),
            json!({"workspacePath": "/path/to/workspace", "port": 9222}),
        );
        wire(
            &Heartbeat {
                timestamp: SEED_TIME.into(),
            },
            json!({"timestamp": SEED_TIME}),
        );
    }

    #[test]
    fn cluso_channel_events_match_002() {
        wire(
            &FileChanged {
                timestamp: "2024-12-09T15:30:45.123Z".into(),
                ..FileChanged::new("src/main.ts", "change")
            },
            json!({"file": "src/main.ts", "event": "change", "timestamp": "2024-12-09T15:30:45.123Z"}),
        );
        wire(
            &DiagnosticsUpdated::new(vec![
                Diagnostic::new("src/a.ts", 3, 7, Severity::Error, "Cannot find name 'x'"),
                Diagnostic::new("src/b.ts", 1, 1, Severity::Hint, "Unused import"),
            ]),
            json!({"diagnostics": [
                {"file": "src/a.ts", "line": 3, "column": 7, "severity": "error", "message": "Cannot find name 'x'"},
                {"file": "src/b.ts", "line": 1, "column": 1, "severity": "hint", "message": "Unused import"}
            ]}),
        );
        wire(
            &AiChunk::new("r1", "Hello", 0, false),
            json!({"id": "r1", "chunk": "Hello", "index": 0, "finished": false}),
        );
        wire(
            &SearchProgress::new("retry", 2, 10, vec![json!({"file": "a.rs", "line": 4})]),
            json!({"query": "retry", "count": 2, "total": 10, "results": [{"file": "a.rs", "line": 4}]}),
        );
        wire(
            &ValidationComplete::new(json!({"valid": true, "errors": []})),
            json!({"result": {"valid": true, "errors": []}}),
        );
        wire(
            &GitEvent::new("commit", "Fix the parser"),
            json!({"type": "commit", "message": "Fix the parser"}),
        );
    }

    #[test]
    fn types_and_channels_are_the_protocols() {
        let types: HashSet<&str> = TYPES.iter().copied().collect();
        assert_eq!(types.len(), TYPES.len(), "a type is listed twice");
        assert_eq!(TYPES.len(), 20);
        assert!(!types.contains("event"));
        assert_eq!(AiProgress::TYPE, "ai_progress");
        assert_eq!(StatusUpdate::TYPE, "status:update");
        assert_eq!(MessageReceived::TYPE, "messageReceived");

        assert_eq!(
            CHANNELS,
            [
                "files",
                "diagnostics",
                "ai-response",
                "search",
                "validation",
                "git"
            ]
        );
        assert_eq!(FileChanged::TYPE, "event");
        assert_eq!(FileChanged::CHANNEL, "files");
        assert_eq!(DiagnosticsUpdated::CHANNEL, "diagnostics");
        assert_eq!(AiChunk::CHANNEL, "ai-response");
        assert_eq!(SearchProgress::CHANNEL, "search");
        assert_eq!(ValidationComplete::CHANNEL, "validation");
        assert_eq!(GitEvent::TYPE, "event");
        assert_eq!(GitEvent::CHANNEL, "git");
        for name in TYPES.iter().chain(CHANNELS) {
            assert!(crate::protocol::check_name(name, "type").is_ok(), "{name}");
        }
    }

    #[test]
    fn constructors_stamp_iso_timestamps() {
        for stamp in [
            FileChanged::new("a", "add").timestamp,
            Heartbeat::now().timestamp,
            MessageReceived::new("i", "c").timestamp,
            ChatMessage::new("c", "m", "t", "s").timestamp,
            ConnectionStatus::new(false, 1)
                .active_now()
                .last_activity
                .unwrap(),
        ] {
            assert_eq!(stamp.len(), 24, "{stamp}");
            assert!(
                stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
                "{stamp}"
            );
        }
    }

    #[test]
    fn unknown_enum_names_are_refused() {
        let bad = json!({"agentName": "A", "state": "sleeping"});
        assert!(serde_json::from_value::<AgentStatus>(bad).is_err());
        let bad = json!({"level": "fatal", "message": "m"});
        assert!(serde_json::from_value::<Notification>(bad).is_err());
        let bad = json!({"sessionId": "s", "status": "done"});
        assert!(serde_json::from_value::<StatusUpdate>(bad).is_err());
        let bad = json!({"userId": "u", "status": "sleeping"});
        assert!(serde_json::from_value::<UserPresence>(bad).is_err());
        // From text too, escapes and all.
        let text = r#"{"userId": "u\u0031", "status": "\u006fffline"}"#;
        let presence: UserPresence = serde_json::from_str(text).unwrap();
        assert_eq!(presence, UserPresence::new("u1", Status::Offline));
    }

    /// How long a test waits for any one message.
    pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

    /// A real WebSocket client of a test hub.
    pub(crate) struct WireClient(WebSocket<TcpStream>);

    impl WireClient {
        /// Connects to `ws://{addr}{path}` and waits for the welcome.
        pub(crate) fn connect(addr: SocketAddr, path: &str) -> WireClient {
            let stream = TcpStream::connect(addr).unwrap();
            let url = format!("ws://{addr}{path}");
            let (ws, _) = tungstenite::client::client(url.as_str(), stream).unwrap();
            let mut client = WireClient(ws);
            client.expect("connection");
            client
        }

        /// Closes from the client side and waits for the hub's answer, so
        /// the hub has forgotten the client (and shuts down at once).
        pub(crate) fn close(mut self) {
            self.0.close(None).unwrap();
            self.0.get_mut().set_read_timeout(Some(DEADLINE)).unwrap();
            loop {
                match self.0.read() {
                    Ok(_) => {}
                    Err(tungstenite::Error::ConnectionClosed) => return,
                    Err(err) => panic!("waiting for the close answer: {err}"),
                }
            }
        }

        pub(crate) fn send(&mut self, message: Value) {
            self.0.send(Message::text(message.to_string())).unwrap();
        }

        /// The next message of type `kind`, skipping others, within
        /// [`DEADLINE`].
        pub(crate) fn expect(&mut self, kind: &str) -> Value {
            let start = Instant::now();
            loop {
                let left = DEADLINE.checked_sub(start.elapsed());
                let left = left.unwrap_or_else(|| panic!("no {kind} within {DEADLINE:?}"));
                self.0.get_mut().set_read_timeout(Some(left)).unwrap();
                match self.0.read() {
                    Ok(Message::Text(text)) => {
                        let value: Value = serde_json::from_str(&text).unwrap();
                        if value["type"] == kind {
                            return value;
                        }
                    }
                    Ok(_) => {}
                    Err(err) => panic!("waiting for {kind}: {err}"),
                }
            }
        }
    }

    #[test]
    fn emit_sends_the_type_and_emit_on_channel_the_channel() {
        let server = Hub::bind("127.0.0.1:0").unwrap().spawn().unwrap();
        let handle = server.handle().clone();
        let mut files = WireClient::connect(server.local_addr(), "/ws");
        files.send(json!({"type": "subscribe", "channel": "files"}));
        files.expect("subscribed");
        let mut session = WireClient::connect(server.local_addr(), "/ws?sessionId=session_123");

        let changed = FileChanged::new("src/main.rs", "change");
        assert_eq!(handle.emit_on_channel(&changed).unwrap(), 1);
        let message = files.expect("event");
        assert_eq!(message["channel"], "files");
        assert_eq!(message["data"], serde_json::to_value(&changed).unwrap());

        let progress = AiProgress::new(25, 1250);
        let target = Target::session("session_123");
        assert_eq!(handle.emit(target, &progress).unwrap(), 1);
        let message = session.expect("ai_progress");
        assert_eq!(message["sessionId"], "session_123");
        assert_eq!(message["data"]["progress"]["chunksReceived"], 25);

        files.close();
        session.close();
        server.shutdown().unwrap();
        assert!(matches!(
            handle.emit(Target::Broadcast, &MessageReceived::new("m1", "hi")),
            Err(crate::Error::Closed)
        ));
    }
}
