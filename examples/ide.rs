//! An IDE-side program that tells its clients what happens in the
//! workspace, through typed events and the event bus.
//!
//! Its parts publish domain events on an [`EventBus`] (`FileSaved`,
//! `GitCommitted`, `MessageSent`), as the Cursor Chat Agent's do; bridges
//! turn them into what the clients read: `event` on the `files` and `git`
//! channels (the Cluso clients), and a `messageReceived` broadcast (the
//! Cursor Chat Agent clients). The domain events here come from a loop
//! that plays a developer at work.
//!
//! ```text
//! cargo run --example ide                  # any free port, for 30 s
//! cargo run --example ide -- 3002 600      # port 3002, for 10 minutes
//! websocat ws://127.0.0.1:3002/ws
//! {"type":"subscribe","channel":"files"}
//! ```
//!
//! It prints the address it listens on, and stops by itself.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use wshub::bus::EventBus;
use wshub::events::{FileChanged, GitEvent, MessageReceived};
use wshub::{Config, Hub, Target};

fn main() -> Result<(), wshub::Error> {
    let mut args = std::env::args().skip(1);
    let port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(30);
    let server = Hub::with_config(Config::default().port(port))?.spawn()?;
    println!("listening on ws://{}/ws", server.local_addr());
    let handle = server.handle().clone();

    let bus = EventBus::new();
    // A saved file is a `files` channel event, typed.
    bus.bridge_with("FileSaved", handle.clone(), |event| {
        let file: String = event.parse::<serde_json::Value>().ok()?["file"]
            .as_str()?
            .to_owned();
        let data = serde_json::to_value(FileChanged::new(file, "change")).ok()?;
        Some((Target::channel("files"), "event".to_owned(), data))
    })?;
    // A commit is a `git` channel event.
    bus.bridge_with("GitCommitted", handle.clone(), |event| {
        let message = event.data["message"].as_str()?.to_owned();
        let data = serde_json::to_value(GitEvent::new("commit", message)).ok()?;
        Some((Target::channel("git"), "event".to_owned(), data))
    })?;
    // A chat message reaches everyone, as messageReceived.
    bus.bridge(
        "MessageSent",
        handle.clone(),
        Target::Broadcast,
        "messageReceived",
    )?;

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        bus.publish(
            "FileSaved",
            json!({"file": format!("src/file{}.rs", n % 5)}),
        )?;
        if n.is_multiple_of(5) {
            bus.publish("GitCommitted", json!({"message": format!("commit {n}")}))?;
        }
        if n.is_multiple_of(10) {
            bus.publish(
                "MessageSent",
                MessageReceived::new(format!("msg-{n}"), "Build is green"),
            )?;
        }
        thread::sleep(Duration::from_millis(200));
    }
    drop(bus);
    server.shutdown()
}
