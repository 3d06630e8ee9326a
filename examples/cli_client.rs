//! A tiny command-line client on `wshub::client`: connects, subscribes to the
//! channel given on the command line, and prints every message that arrives
//! as one line of JSON on stdout. What happens to the connection (a drop, a
//! reconnect, data that could not be recovered) goes to stderr.
//!
//! ```sh
//! cargo run --example cli_client -- ws://127.0.0.1:3000/ws files
//! WSHUB_TOKEN=alice-static cargo run --example cli_client -- ws://127.0.0.1:3000/ws files
//! ```
//!
//! The token comes from `WSHUB_TOKEN` rather than the command line, which
//! other users of the machine can read. It runs until the hub closes it for
//! good (exit 0 for 1000, 1 otherwise) or it is interrupted.

use std::process::ExitCode;
use std::time::Duration;

use wshub::Topic;
use wshub::client::{Client, Error, Next, Options, Update};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(channel)) = (args.next(), args.next()) else {
        eprintln!("usage: cli_client <ws://host:port/ws> <channel>   (token in WSHUB_TOKEN)");
        return ExitCode::from(2);
    };
    match run(&url, &channel) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("cli_client: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(url: &str, channel: &str) -> Result<ExitCode, Error> {
    let mut options = Options::new();
    if let Ok(token) = std::env::var("WSHUB_TOKEN") {
        options = options.token(token);
    }
    let mut client = Client::connect(url, options)?;
    client.subscribe(Topic::channel(channel))?;
    let welcome = client.welcome();
    eprintln!(
        "connected as {} (user {:?}), listening on {channel}",
        welcome.client_id, welcome.user_id
    );
    loop {
        let update = match client.next_update(Duration::from_secs(60)) {
            Ok(Some(update)) => update,
            Ok(None) => continue, // quiet for a minute
            // Stopped for good; the `Closed` update said why.
            Err(Error::Closed { code, .. }) => {
                return Ok(if code == 1000 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            Err(err) => return Err(err),
        };
        match update {
            Update::Message(message) => println!("{}", message.raw),
            Update::Closed { code, reason, next } => match next {
                Next::Reconnect { delay } => {
                    eprintln!("closed {code} {reason:?}; reconnecting in {delay:?}")
                }
                _ => eprintln!("closed {code} {reason:?}; stopping"),
            },
            Update::Reconnected(welcome) => eprintln!("reconnected as {}", welcome.client_id),
            Update::Lost { stream, loss } => eprintln!("missed data on {stream:?}: {loss:?}"),
            Update::HubError(error) => eprintln!("hub error: {error}"),
            Update::Presence(presence) => {
                eprintln!("{} is {}", presence.user_id, presence.status)
            }
            other => eprintln!("{other:?}"),
        }
    }
}
