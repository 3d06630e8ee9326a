//! The `wshub` binary: settings from the command line and environment, a
//! logger, a signal thread (SIGTERM and SIGINT stop the hub, SIGHUP reloads
//! its TLS certificate), then the hub on the main thread.

use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use wshub::{Error, Hub, TlsError};

mod cli;
mod config_file;

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
        cli::Command::Check(options) => {
            print!("{}", cli::describe(&options));
            println!("wshub: the settings are good");
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
    // rustls (when a dependency turns its logging on) logs a warning for
    // every alert it sends, which any client can cause at will: only its
    // errors, unless the operator asks for debug lines.
    let rustls_level = match options.log_level >= log::LevelFilter::Debug {
        true => options.log_level,
        false => options.log_level.min(log::LevelFilter::Error),
    };
    let logger = simple_logger::SimpleLogger::new()
        .with_level(options.log_level)
        .with_module_level("rustls", rustls_level)
        .with_utc_timestamps();
    log::set_max_level(logger.max_level());
    if let Err(err) = log::set_boxed_logger(Box::new(Unfailing(logger))) {
        eprintln!("wshub: cannot start logging: {err}");
    }
    let hub = match Hub::with_config(options.config) {
        Ok(hub) => hub,
        // A certificate or key file that cannot be used is a bad value, like
        // a malformed tokens file.
        Err(err @ Error::Tls(_)) => {
            log::error!("{err}");
            return ExitCode::from(2);
        }
        Err(err) => {
            log::error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = watch_signals(hub.handle(), options.drain_delay) {
        log::error!("cannot watch for SIGTERM, SIGINT and SIGHUP: {err}");
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

/// SIGTERM or SIGINT: shut down gracefully, after `drain` of answering
/// `GET /ready` with 503 if it is not zero. A second one: shut down at
/// once; one more, leave at once. SIGHUP: read the TLS certificate and key
/// again (a bad one is logged and the current one stays); connections stay
/// open.
fn watch_signals(handle: wshub::Handle, drain: Duration) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    thread::Builder::new()
        .name("wshub-signals".into())
        .spawn(move || {
            let mut received = 0;
            for signal in signals.forever() {
                if signal == SIGHUP {
                    // The hub logs how the reload went.
                    if let Err(Error::Tls(TlsError::NotConfigured)) = handle.reload_tls() {
                        log::info!("SIGHUP received: no TLS certificate to reload");
                    }
                    continue;
                }
                received += 1;
                let name = if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                let draining = !drain.is_zero();
                if received == 1 && draining {
                    // Draining first: what the log says is true once said.
                    handle.drain();
                    log::info!(
                        "{name} received: draining for {drain:?} (GET /ready answers 503), \
                         then shutting down (again to shut down at once)"
                    );
                    let drained = handle.clone();
                    let later =
                        thread::Builder::new()
                            .name("wshub-drain".into())
                            .spawn(move || {
                                // The drain delay itself: a timer, nothing to wait on.
                                thread::sleep(drain);
                                log::info!("drained for {drain:?}: shutting down");
                                drained.shutdown();
                            });
                    if let Err(err) = later {
                        log::error!("cannot time the drain ({err}): shutting down now");
                        handle.shutdown();
                    }
                } else if received == 1 || (received == 2 && draining) {
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

/// The logger, never failing its caller. simple_logger writes each line
/// with `eprintln!`, which panics when stderr is a pipe whose reader is gone
/// (`wshub 2>&1 | head`): the first line after that would end whichever
/// thread wrote it (a connection's, the router, the signal thread), and the
/// hub would stop answering. Here such a line is dropped instead.
struct Unfailing(simple_logger::SimpleLogger);

impl log::Log for Unfailing {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.0.enabled(record.metadata()) {
            let _ = panic::catch_unwind(AssertUnwindSafe(|| self.0.log(record)));
        }
    }

    fn flush(&self) {
        let _ = panic::catch_unwind(AssertUnwindSafe(|| self.0.flush()));
    }
}
