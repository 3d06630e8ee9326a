//! Embedding wshub in a plain, non-async program.
//!
//! A worker thread plays an AI job that reports to a session, the way the
//! AI Canvas backend does; browsers that connect with
//! `?sessionId=demo` watch it. The program runs for a few seconds and stops
//! by itself.
//!
//! ```text
//! cargo run --example embed            # any free port
//! cargo run --example embed -- 3001    # a given port
//! ```

use std::thread;
use std::time::Duration;

use serde_json::json;
use wshub::{Config, Hub, Target};

fn main() -> Result<(), wshub::Error> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .init()
        .ok();
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let hub = Hub::with_config(Config::default().port(port))?;
    println!(
        "watch with: websocat 'ws://{}/ws?sessionId=demo'",
        hub.local_addr()
    );
    let server = hub.spawn()?;

    // Any thread can publish through a clone of the handle.
    let handle = server.handle().clone();
    let job = thread::spawn(move || -> wshub::Result<()> {
        let session = Target::session("demo");
        handle.publish(
            session.clone(),
            "ai_start",
            json!({"prompt": "Create a React component", "mode": "generate"}),
        )?;
        for chunk in 1..=5 {
            thread::sleep(Duration::from_millis(500));
            let progress = json!({"chunksReceived": chunk * 20, "contentLength": chunk * 1000});
            let watchers = handle.publish(session.clone(), "ai_progress", progress)?;
            println!("progress {chunk}/5 sent to {watchers} watcher(s)");
        }
        handle.publish(
            session,
            "ai_complete",
            json!({"mode": "generate", "chunks": 100}),
        )?;
        Ok(())
    });
    job.join().expect("the job thread panicked")?;

    let stats = server.handle().stats()?;
    println!(
        "{} message(s) sent, {} client(s) connected; shutting down",
        stats.messages_sent, stats.active_connections
    );
    server.shutdown()
}
