//! The `wshub` binary: settings from the command line and environment, a
//! logger, a signal thread, then the hub on the main thread.

use std::process::ExitCode;
use std::thread;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use wshub::Hub;

mod cli;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1), |name| std::env::var_os(name)) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("wshub: {err}");
            return ExitCode::from(2);
        }
    };
    match command {
        cli::Command::Help => {
            print!("{}", cli::help());
            ExitCode::SUCCESS
        }
        cli::Command::Version => {
            println!("wshub {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        cli::Command::Run(options) => run(*options),
    }
}

fn run(options: cli::Options) -> ExitCode {
    let logger = simple_logger::SimpleLogger::new()
        .with_level(options.log_level)
        .with_utc_timestamps();
    if let Err(err) = logger.init() {
        eprintln!("wshub: cannot start logging: {err}");
    }
    let hub = match Hub::with_config(options.config) {
        Ok(hub) => hub,
        Err(err) => {
            log::error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = watch_signals(hub.handle()) {
        log::error!("cannot watch for SIGTERM and SIGINT: {err}");
        return ExitCode::FAILURE;
    }
    match hub.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            log::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM or SIGINT: shut down gracefully. A second one: leave at once.
fn watch_signals(handle: wshub::Handle) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    thread::Builder::new()
        .name("wshub-signals".into())
        .spawn(move || {
            let mut received = 0;
            for signal in signals.forever() {
                received += 1;
                let name = if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                if received == 1 {
                    log::info!("{name} received: shutting down (again to exit at once)");
                    handle.shutdown();
                } else {
                    log::warn!("{name} received again: exiting now");
                    std::process::exit(130);
                }
            }
        })?;
    Ok(())
}
