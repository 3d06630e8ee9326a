//! Mints an HS256 JWT that a hub started with `--jwt-secret` accepts.
//!
//! ```text
//! cargo run --example mint_jwt -- <secret> <user-id> [ttl-seconds] [channel-pattern ...]
//! cargo run --example mint_jwt -- "$WSHUB_JWT_SECRET" alice 3600 'private-team-*' files
//! ```
//!
//! The token carries `sub` (the user), `exp` (now + ttl, default one hour)
//! and, if patterns are given, `channels`.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(secret), Some(user)) = (args.first(), args.get(1)) else {
        eprintln!("usage: mint_jwt <secret> <user-id> [ttl-seconds] [channel-pattern ...]");
        return ExitCode::from(2);
    };
    let ttl: u64 = match args.get(2).map(|t| t.parse()) {
        None => 3600,
        Some(Ok(ttl)) => ttl,
        Some(Err(_)) => {
            eprintln!("ttl-seconds must be a whole number");
            return ExitCode::from(2);
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut claims = json!({"sub": user, "iat": now, "exp": now + ttl});
    if args.len() > 3 {
        claims["channels"] = json!(args[3..]);
    }
    match wshub::sign_jwt(secret.as_bytes(), &claims) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}
