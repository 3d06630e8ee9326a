//! The harness: [`Bench`] runs a scenario against each server, `--runs`
//! times in turn, each on a freshly started server, and gathers what each
//! run found ([`Outcome`]) into a [`Summary`](crate::report::Summary).

use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::peers::{Kind, Launch, Server};
use crate::report::{Summary, table};
use crate::{WS_PATH, header};

/// The servers to compare and how often.
pub(crate) struct Bench {
    pub(crate) runs: usize,
    pub(crate) servers: Vec<Launch>,
    pub(crate) server_cpus: Option<String>,
    /// `--wshub-arg`s, passed after the scenario's own.
    pub(crate) wshub_args: Vec<String>,
}

/// What one run of a scenario found: rows to print now, figures for the
/// summary, and warnings for both.
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) rows: Vec<(String, String)>,
    pub(crate) figures: Vec<Figure>,
    pub(crate) notes: Vec<String>,
}

pub(crate) struct Figure {
    pub(crate) name: &'static str,
    pub(crate) value: f64,
    pub(crate) show: fn(f64) -> String,
}

impl Outcome {
    pub(crate) fn row(&mut self, label: &str, value: impl Into<String>) {
        self.rows.push((label.to_owned(), value.into()));
    }

    pub(crate) fn figure(&mut self, name: &'static str, value: f64, show: fn(f64) -> String) {
        if value.is_finite() {
            self.figures.push(Figure { name, value, show });
        }
    }

    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
}

impl Bench {
    /// Runs `body` against each server, `runs` times in turn, each time on a
    /// freshly started server.
    pub(crate) fn compare(
        &self,
        title: &str,
        wshub_args: &[String],
        mut body: impl FnMut(&mut Server) -> Outcome,
    ) -> Summary {
        let contestants: Vec<(&str, &Launch, &[&str])> = self
            .servers
            .iter()
            .map(|l| (l.kind.name(), l, &[WS_PATH][..]))
            .collect();
        self.compare_among(title, &contestants, wshub_args, |server, _, _| body(server))
    }

    /// Runs `body` for each contestant (a label, a server, the paths its
    /// clients connect on), `runs` times in turn, each time on a freshly
    /// started server. The first wshub contestant is the one the others are
    /// compared with.
    pub(crate) fn compare_among(
        &self,
        title: &str,
        contestants: &[(&str, &Launch, &[&str])],
        wshub_args: &[String],
        mut body: impl FnMut(&mut Server, &str, &[&str]) -> Outcome,
    ) -> Summary {
        header(title);
        let mut outcomes: Vec<(String, Vec<Outcome>)> = contestants
            .iter()
            .map(|(label, _, _)| ((*label).to_owned(), Vec::new()))
            .collect();
        let mut failures = Vec::new();
        for run in 1..=self.runs {
            for (&(label, launch, paths), (_, done)) in contestants.iter().zip(outcomes.iter_mut())
            {
                println!("\n  -- {label} (run {run} of {})", self.runs);
                let extra: Vec<String> = if launch.kind == Kind::Wshub {
                    wshub_args.iter().chain(&self.wshub_args).cloned().collect()
                } else {
                    Vec::new()
                };
                let mut server = match Server::start(launch, &extra, self.server_cpus.as_deref()) {
                    Ok(server) => server,
                    Err(why) => {
                        println!("  !! {why}");
                        failures.push(format!("{label}: run {run} did not start: {why}"));
                        continue;
                    }
                };
                println!(
                    "  {} pid {} on {} {}",
                    launch.kind,
                    server.child.id(),
                    server.addr,
                    extra.join(" ")
                );
                let outcome = body(&mut server, label, paths);
                table(&outcome.rows);
                for note in &outcome.notes {
                    println!("  !! {note}");
                }
                server.stop();
                done.push(outcome);
            }
        }
        let summary = Summary::new(title, self.runs, outcomes, failures);
        summary.print();
        summary
    }

    /// The wshub launch, or a note that it is not among `--servers`.
    pub(crate) fn wshub_only(&self, scenario: &str) -> Option<&Launch> {
        let launch = self.servers.iter().find(|l| l.kind == Kind::Wshub);
        if launch.is_none() {
            println!("  !! {scenario} measures wshub only, which is not among --servers");
        }
        launch
    }
}

/// Nanoseconds since the benchmark started (one clock for the whole process).
pub(crate) fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Polls `done` every millisecond until it holds (true) or `limit` passes.
pub(crate) fn wait_for(limit: Duration, done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
    true
}
