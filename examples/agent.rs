//! An agent service embedded in the hub's own process: the program reads
//! the clients' application requests from `Hub::requests()` and plays the
//! agent service the agent-service clients talk to:
//!
//! - `agent:start` is answered `agent:started` (its `correlationId` echoed);
//! - `agent:message` gets `status:update` (thinking, then streaming), one
//!   `stream:chunk` per word of the answer to the caller's session (or to
//!   the caller, without one), `stream:complete`, then `status:update` idle;
//! - `agent:cancel` stops a stream under way and is answered `agent:cancelled`;
//! - anything else is answered with an error.
//!
//! ```text
//! cargo run --example agent                 # any free port, for 30 s
//! cargo run --example agent -- 3001 600     # port 3001, for 10 minutes
//! websocat 'ws://127.0.0.1:3001/ws?sessionId=s1'
//! {"type":"agent:message","payload":{"content":"hello there"},"correlationId":"m1"}
//! ```
//!
//! It prints the address it listens on, and stops by itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use wshub::events::{
    AgentCancelled, AgentStarted, SessionStatus, StatusUpdate, StreamChunk, StreamComplete,
};
use wshub::{ClientRequest, Config, Handle, Hub, Target};

/// The payload of `agent:message`.
#[derive(Deserialize)]
struct AgentMessage {
    content: String,
}

/// Streams under way, by client, so `agent:cancel` can stop one.
type Streams = Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>;

fn main() -> Result<(), wshub::Error> {
    let mut args = std::env::args().skip(1);
    let port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(30);
    let mut hub = Hub::with_config(Config::default().port(port))?;
    let requests = hub.requests();
    let server = hub.spawn()?;
    println!("listening on ws://{}/ws", server.local_addr());

    let streams: Streams = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match requests.recv_timeout(left) {
            Ok(Some(request)) => answer(request, &streams),
            // Out of time, or the hub stopped.
            Ok(None) | Err(_) => break,
        }
    }
    server.shutdown()
}

/// Answers one request; a failure to answer only means the client is gone.
fn answer(request: ClientRequest, streams: &Streams) {
    let session = request
        .session_id()
        .unwrap_or(request.client_id())
        .to_owned();
    let answered = match request.kind() {
        "agent:start" => request.reply_event(&AgentStarted::new(&session)),
        "agent:message" => match request.data::<AgentMessage>() {
            Ok(message) => {
                let cancel = Arc::new(AtomicBool::new(false));
                if let Ok(mut streams) = streams.lock() {
                    streams.insert(request.client_id().to_owned(), Arc::clone(&cancel));
                }
                // The caller's session sees the stream (every tab of it),
                // or the caller alone when it has no session.
                let target = match request.session_id() {
                    Some(id) => Target::session(id),
                    None => Target::client(request.client_id()),
                };
                let handle = request.handle().clone();
                thread::spawn(move || {
                    stream(&handle, &target, &session, &message.content, &cancel)
                });
                Ok(true)
            }
            Err(_) => request.reply_error("invalid_payload", "agent:message needs {content}"),
        },
        "agent:cancel" => {
            if let Ok(streams) = streams.lock()
                && let Some(cancel) = streams.get(request.client_id())
            {
                cancel.store(true, Ordering::Relaxed);
            }
            request.reply_event(&AgentCancelled::new(&session))
        }
        other => request.reply_error("unknown_type", &format!("Unknown message type: {other}")),
    };
    if let Err(err) = answered {
        eprintln!("could not answer {}: {err}", request.client_id());
    }
}

/// The agent's answer, a word at a time, as a model streams tokens.
fn stream(handle: &Handle, target: &Target, session: &str, prompt: &str, cancel: &AtomicBool) {
    let status = |status| handle.emit(target.clone(), &StatusUpdate::new(session, status));
    let _ = status(SessionStatus::Thinking);
    let answer = format!("You said: {prompt}");
    let _ = status(SessionStatus::Streaming);
    for word in answer.split_whitespace() {
        if cancel.load(Ordering::Relaxed) {
            let _ = status(SessionStatus::Idle);
            return;
        }
        let chunk = StreamChunk::new(session, format!("{word} "));
        if handle.emit(target.clone(), &chunk).is_err() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = handle.emit(target.clone(), &StreamComplete::new(session));
    let _ = status(SessionStatus::Idle);
}
