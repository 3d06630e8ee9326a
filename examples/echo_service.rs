//! The smallest backend embedded in the hub: every application request is
//! answered through the library receiver, by a few worker threads sharing
//! it. `{"type":"echo","data":X,"correlationId":N}` gets
//! `{"type":"echoed","data":X,"correlationId":N}`.
//!
//! The benchmark runs it to time a request -> reply round trip through the
//! library (`cargo bench --bench hub -- request`); it is also the shortest
//! example of `Hub::requests`.
//!
//! ```text
//! cargo run --release --example echo_service -- 3000 2   # port 3000, 2 workers
//! ```
//!
//! It prints the address it listens on and runs until SIGTERM or SIGINT
//! (or, without a terminal to stop it, for an hour).

use std::thread;
use std::time::Duration;

use serde_json::value::RawValue;
use wshub::{Config, Hub};

fn main() -> Result<(), wshub::Error> {
    let mut args = std::env::args().skip(1);
    let port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let workers = args
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2usize)
        .max(1);
    let mut hub = Hub::with_config(
        Config::default()
            .port(port)
            // A benchmark's clients send far more than a browser would.
            .rate_limit(0)
            .max_connections_per_ip(0)
            .max_connections(20_000),
    )?;
    let requests = hub.requests();
    let server = hub.spawn()?;
    println!("listening on ws://{}/ws", server.local_addr());

    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let requests = requests.clone();
            thread::spawn(move || {
                // Ends when the hub drops its side of the queue.
                for request in requests.iter() {
                    let data = request.data::<Box<RawValue>>().ok();
                    // A client gone before its answer is no error here.
                    let _ = request.reply("echoed", data);
                }
            })
        })
        .collect();
    drop(requests);
    // Stopped by a signal (the default action ends the process), or after
    // an hour at most.
    thread::sleep(Duration::from_secs(3600));
    server.shutdown()?;
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}
