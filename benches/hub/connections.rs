//! What connections cost: many idle clients (`idle`: memory, threads,
//! descriptors and CPU per connection) and handshakes one after another
//! (`connect`).

use std::fs;
use std::thread;
use std::time::Duration;

use crate::client::{metric, metrics, open_many};
use crate::harness::{Bench, Outcome};
use crate::peers::{CpuClock, Kind, Server, cpu_of, own_fd_limit, wshub_capacity};
use crate::report::{Summary, count, group, kib, mib, percent, show_us, two_places};
use crate::{CONNECT_AT_ONCE, IDLE_WINDOW, WS_PATH};

/// `n` silent clients: what each costs the server, and what it does idle.
pub(crate) fn idle(server: &mut Server, n: usize) -> Outcome {
    let mut out = Outcome::default();
    thread::sleep(Duration::from_millis(500));
    let before = server.snapshot();
    let mut opened = open_many(server.addr, n, CONNECT_AT_ONCE, None, &[WS_PATH]);
    thread::sleep(Duration::from_secs(1)); // let the last threads settle
    let connected = opened.clients.len();
    out.row("clients connected", format!("{connected} / {n}"));
    out.row("connect errors", opened.errors.summary());
    out.row(
        "connect phase",
        format!(
            "{:.1} s ({:.0} handshakes/s, {CONNECT_AT_ONCE} at a time)",
            opened.took.as_secs_f64(),
            connected as f64 / opened.took.as_secs_f64()
        ),
    );
    if let Some(status) = server.exited() {
        out.note(format!(
            "{} exited with {connected} clients connected ({status})",
            server.kind
        ));
        return out;
    }
    let after = server.snapshot();
    let cpu_start = server.snapshot().cpu;
    thread::sleep(IDLE_WINDOW);
    let idle_cpu = server.snapshot().cpu.saturating_sub(cpu_start);
    let mut held = 0;
    for client in &mut opened.clients {
        held += usize::from(client.still_open());
    }

    let per = |a: u64, b: u64| (a as f64 - b as f64) / connected.max(1) as f64;
    out.row("clients still open after idling", held.to_string());
    out.row(
        "RSS before / after",
        format!("{} / {}", mib(before.rss_kib), mib(after.rss_kib)),
    );
    out.row(
        "RSS per connection",
        format!("{:.1} KiB", per(after.rss_kib, before.rss_kib)),
    );
    out.row(
        "fds before / after",
        format!("{} / {}", before.fds, after.fds),
    );
    out.row(
        "fds per connection",
        format!("{:.2}", per(after.fds, before.fds)),
    );
    out.row(
        "threads before / after",
        format!("{} / {}", before.threads, after.threads),
    );
    out.row(
        "threads per connection",
        format!("{:.2}", per(after.threads, before.threads)),
    );
    out.row(
        "memory maps before / after",
        format!("{} / {}", before.maps, after.maps),
    );
    out.row(
        "maps per connection",
        map_ceiling(per(after.maps, before.maps), before.maps),
    );
    out.row(
        "server CPU while idle",
        format!(
            "{} ms over {} s ({:.2}% of one core; wshub's 30 s heartbeats may fall inside)",
            idle_cpu.as_millis(),
            IDLE_WINDOW.as_secs(),
            100.0 * idle_cpu.as_secs_f64() / IDLE_WINDOW.as_secs_f64()
        ),
    );
    if server.kind == Kind::Wshub {
        let metrics = metrics(server.addr);
        out.row(
            "wshub active / rejected",
            format!(
                "{} / {}",
                metric(&metrics, "wshub_connections_active"),
                metric(&metrics, "wshub_connections_rejected_total")
            ),
        );
    }
    if held < n {
        let mut why = format!("failed attempts: {}", opened.errors.summary());
        if let Some((line, count)) = server
            .complaints_about("refus")
            .or_else(|| server.complaints_about("WARN"))
        {
            why = format!("{why}; its log ({count} such lines): {line}");
        }
        out.note(format!(
            "{} could not hold {n} clients: it held {held} ({connected} connected); {why}",
            server.kind
        ));
    }
    out.figure("clients held", held as f64, count);
    out.figure(
        "RSS per connection",
        per(after.rss_kib, before.rss_kib),
        kib,
    );
    out.figure(
        "threads per connection",
        per(after.threads, before.threads),
        two_places,
    );
    out.figure("fds per connection", per(after.fds, before.fds), two_places);
    out.figure("CPU idle, ms per 10 s", idle_cpu.as_millis() as f64, count);
    out
}

/// Memory maps per connection, and how many connections the kernel's
/// `vm.max_map_count` leaves room for at that rate.
pub(crate) fn map_ceiling(per_connection: f64, base: u64) -> String {
    let cap: f64 = fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or(f64::NAN);
    if per_connection < 0.5 {
        return format!("{per_connection:.2}");
    }
    format!(
        "{per_connection:.2} (vm.max_map_count {cap} leaves room for ~{:.0} connections)",
        (cap - base as f64) / per_connection
    )
}

/// `n` handshakes, `at_once` at a time; everyone stays connected till the end.
pub(crate) fn connect(server: &mut Server, n: usize, at_once: usize) -> Outcome {
    let mut out = Outcome::default();
    let clock = CpuClock::start(server);
    let opened = open_many(server.addr, n, at_once, None, &[WS_PATH]);
    let cpu = clock.stop(server);
    let connected = opened.clients.len();
    let per_sec = connected as f64 / opened.took.as_secs_f64();
    out.row("connected", format!("{connected} / {n}"));
    out.row("connect errors", opened.errors.summary());
    out.row("took", format!("{:.2} s", opened.took.as_secs_f64()));
    out.row("connections/s", group(per_sec));
    out.row("handshake + welcome", opened.latency.summary());
    let server_cpu = cpu.report(server.kind, &mut out);
    if connected < n {
        out.note(format!(
            "{} accepted only {connected} of {n}: {}",
            server.kind,
            opened.errors.summary()
        ));
    }
    out.figure("connections/s", per_sec, group);
    out.figure("connected", connected as f64, count);
    out.figure("handshake p50", opened.latency.quantile(0.50), show_us);
    out.figure("handshake p99", opened.latency.quantile(0.99), show_us);
    out.figure("server CPU", server_cpu, percent);
    if connected > 0 {
        out.figure(
            "server CPU per connection",
            cpu.server * 1e6 / connected as f64,
            show_us,
        );
    }
    out
}

/// What starting a thread costs this machine, in µs of CPU: `n` threads
/// with a client reader's stack (64 KiB), each parked until all are
/// started, as a thread-per-connection server starts one per client. The
/// floor under such a server's handshakes, measured in this process.
pub(crate) fn thread_start_cost(n: usize) -> f64 {
    let me = [std::process::id()];
    let (release, parked) = crossbeam_channel::bounded::<()>(0);
    let before = cpu_of(&me);
    let threads: Vec<_> = (0..n)
        .filter_map(|i| {
            let parked = parked.clone();
            thread::Builder::new()
                .name(format!("bench-start-{i}"))
                .stack_size(64 * 1024)
                .spawn(move || {
                    let _ = parked.recv();
                })
                .ok()
        })
        .collect();
    let started = threads.len();
    let spent = cpu_of(&me).saturating_sub(before);
    drop(release);
    for thread in threads {
        let _ = thread.join();
    }
    spent.as_secs_f64() * 1e6 / started.max(1) as f64
}

impl Bench {
    pub(crate) fn idle(&self, n: usize) -> Summary {
        let title = format!("idle: {n} silent WebSocket clients");
        if let Some(limit) = own_fd_limit().filter(|&l| l < n as u64 + 200) {
            println!(
                "  !! this process may open only {limit} files (ulimit -n): \
                 fewer than {n} clients will connect"
            );
        }
        self.compare(&title, &wshub_capacity(n), |server| idle(server, n))
    }

    pub(crate) fn connect(&self, n: usize, at_once: usize) -> Summary {
        let title = format!(
            "connect: {n} connections, {at_once} at a time, each done once it has the welcome"
        );
        println!(
            "  for scale: starting a thread (64 KiB stack, parked) costs {:.1} µs of CPU here, \
             once per connection for a server with a reader thread per client",
            thread_start_cost(4_000)
        );
        self.compare(&title, &wshub_capacity(n), |server| {
            connect(server, n, at_once)
        })
    }
}
