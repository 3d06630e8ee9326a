//! Load benchmarks for wshub: memory and CPU of idle clients, fan-out
//! throughput and latency, and client request/response round trips.
//!
//! Everything runs on loopback (127.0.0.1), every loop is bounded, and every
//! scenario stops by itself.
//!
//! # Scenarios
//!
//! - **idle `[N]`** (default 10 000): starts the release `wshub` binary as a
//!   separate process, opens N WebSocket clients that then stay silent, and
//!   reads the hub's `/proc/<pid>` before and after: resident memory, file
//!   descriptors and threads per connection, and the CPU time the hub spends
//!   over 10 s with all N connected (which should be about zero).
//! - **fanout `[S] [M] [RATE]`** (defaults 1000, 10 000 and 0): runs the hub *in this
//!   process* through the library (`Hub::with_config`, `Handle::publish`),
//!   with S subscribers of one channel read by two client threads that poll
//!   non-blocking sockets in turn. M messages of about 100 bytes, each
//!   carrying a sequence number and its send time, are published in a tight
//!   loop, or RATE per second when RATE is not 0 (latency at a steady load). Reports deliveries per second (S × M / elapsed), publish-to-receive
//!   latency, and whether every subscriber saw every message in order. Then
//!   100 more messages go through `POST /api/publish` (one connection per
//!   request), for the HTTP response time and its delivery latency.
//! - **rtt `[C] [K]`** (alias `throughput`; defaults 100 and 1000): starts
//!   the `wshub` binary; C clients, one thread each, send K `ping`s each and
//!   wait for every `pong`. Reports round trips per second, latency, and the hub's CPU. If
//!   the binary has a `--rate-limit` flag (checked with `--help`), the limit
//!   is raised so it does not throttle the benchmark.
//!
//! # Running
//!
//! ```text
//! cargo bench --bench hub                      # all three, default sizes
//! cargo bench --bench hub -- idle 5000
//! cargo bench --bench hub -- fanout 1000 10000
//! cargo bench --bench hub -- fanout 1000 2000 100   # paced: 100 messages/s
//! cargo bench --bench hub -- rtt 100 1000
//! ```
//!
//! N idle clients need about N file descriptors in this process and in the
//! hub (`ulimit -n`) and two hub threads each (`kernel.pid_max`,
//! `kernel.threads-max`). Each hub thread also costs 4 memory maps, so the
//! default `vm.max_map_count` of 65 530 caps the hub near 8 180 clients; the
//! idle table prints the ceiling it measured.

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};
use wshub::{Config, Hub, Target};

/// How long to wait for any one step (a handshake, a reply) before giving up.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a scenario's main phase may run before it is cut short.
const PHASE_LIMIT: Duration = Duration::from_secs(180);
/// Threads that open connections in parallel.
const CONNECT_THREADS: usize = 4;
/// Threads that read the fan-out subscribers.
const READER_THREADS: usize = 2;
/// How long the idle scenario watches the hub with everyone connected.
const IDLE_WINDOW: Duration = Duration::from_secs(10);
/// Messages published over HTTP after the fan-out run.
const HTTP_PUBLISHES: u64 = 100;
/// Linux reports process CPU times in ticks of 1/100 s (USER_HZ).
const TICKS_PER_SEC: u64 = 100;

type Ws = WebSocket<TcpStream>;

fn main() {
    // `cargo bench` adds `--bench`; everything else is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let number = |i: usize, default: u64| -> u64 {
        args.get(i).map_or(default, |a| {
            a.parse()
                .unwrap_or_else(|_| usage(&format!("not a number: {a}")))
        })
    };
    match args.first().map(String::as_str) {
        None | Some("all") => {
            idle(10_000);
            fanout(1_000, 10_000, 0);
            fanout(1_000, 2_000, 100);
            rtt(100, 1_000);
        }
        Some("idle") => idle(number(1, 10_000) as usize),
        Some("fanout") => fanout(number(1, 1_000) as usize, number(2, 10_000), number(3, 0)),
        Some("rtt" | "throughput") => rtt(number(1, 100) as usize, number(2, 1_000)),
        Some(other) => usage(&format!("unknown scenario {other}")),
    }
}

/// The scenario's title, with what else the machine is doing: the load
/// generator shares the cores with the hub, and so may other programs.
fn header(title: &str) {
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!("\n== {title}");
    println!("  ({cores} cores, load average {})", load.join(" "));
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "{problem}\nusage: cargo bench --bench hub -- [all | idle [N] | fanout [S] [M] | rtt [C] [K]]"
    );
    std::process::exit(2);
}

// ---------------------------------------------------------------- scenarios

/// N silent clients: what each costs the hub, and what the hub does idle.
fn idle(n: usize) {
    header(&format!(
        "idle: {n} silent WebSocket clients (hub = release binary, separate process)"
    ));
    let mut args = vec![];
    if n > 10_000 {
        args = vec!["--max-connections".to_owned(), n.to_string()];
    }
    let mut hub = HubProcess::start(&args);
    thread::sleep(Duration::from_millis(500));
    let before = hub.snapshot();

    let (clients, errors, took) = open_clients(hub.addr, n, None);
    let connected = clients.len();
    thread::sleep(Duration::from_secs(1)); // let the last threads settle
    if let Some(status) = hub.exited() {
        table(&[
            ("clients connected", format!("{connected} / {n}")),
            ("connect errors", errors.summary()),
            ("HUB EXITED", status),
        ]);
        drop(clients);
        return hub.stop();
    }
    let after = hub.snapshot();

    let cpu_start = hub.snapshot().cpu;
    thread::sleep(IDLE_WINDOW);
    let idle_cpu = hub.snapshot().cpu.saturating_sub(cpu_start);
    let metrics = metrics(hub.addr);

    let per = |a: u64, b: u64| (a as f64 - b as f64) / connected.max(1) as f64;
    table(&[
        ("clients connected", format!("{connected} / {n}")),
        ("connect errors", errors.summary()),
        (
            "connect phase",
            format!(
                "{:.1} s ({:.0} handshakes/s from {CONNECT_THREADS} threads)",
                took.as_secs_f64(),
                connected as f64 / took.as_secs_f64()
            ),
        ),
        ("hub RSS before", mib(before.rss_kib)),
        ("hub RSS after", mib(after.rss_kib)),
        (
            "RSS per connection",
            format!("{:.1} KiB", per(after.rss_kib, before.rss_kib)),
        ),
        (
            "hub fds before / after",
            format!("{} / {}", before.fds, after.fds),
        ),
        (
            "fds per connection",
            format!("{:.2}", per(after.fds, before.fds)),
        ),
        (
            "hub threads before / after",
            format!("{} / {}", before.threads, after.threads),
        ),
        (
            "threads per connection",
            format!("{:.2}", per(after.threads, before.threads)),
        ),
        (
            "hub memory maps before / after",
            format!("{} / {}", before.maps, after.maps),
        ),
        (
            "maps per connection",
            map_ceiling(per(after.maps, before.maps), before.maps),
        ),
        (
            "hub CPU while idle",
            format!(
                "{} ms over {} s ({:.2}% of one core; 30 s heartbeats may fall inside)",
                idle_cpu.as_millis(),
                IDLE_WINDOW.as_secs(),
                100.0 * idle_cpu.as_secs_f64() / IDLE_WINDOW.as_secs_f64()
            ),
        ),
        (
            "hub active connections",
            metric(&metrics, "wshub_connections_active"),
        ),
        (
            "hub rejected connections",
            metric(&metrics, "wshub_connections_rejected_total"),
        ),
    ]);
    drop(clients);
    hub.stop();
}

/// Memory maps per connection, and how many connections the kernel's
/// `vm.max_map_count` leaves room for at that rate.
fn map_ceiling(per_connection: f64, base: u64) -> String {
    let cap: f64 = fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or(f64::NAN);
    format!(
        "{per_connection:.2} (vm.max_map_count {cap} leaves room for ~{:.0} connections)",
        (cap - base as f64) / per_connection
    )
}

/// S subscribers of one channel, M messages published through the library.
fn fanout(subscribers: usize, messages: u64, rate: u64) {
    let pace = match rate {
        0 => "as fast as the router answers".to_owned(),
        rate => format!("paced at {rate} messages/s"),
    };
    header(&format!(
        "fanout: {subscribers} subscribers x {messages} messages, {pace} \
         (hub IN-PROCESS via the library; clients in the same process)"
    ));
    let hub = Hub::with_config(Config {
        host: "127.0.0.1".into(),
        port: 0,
        ..Config::default()
    })
    .expect("hub binds");
    let addr = hub.local_addr();
    let server = hub.spawn().expect("hub starts");
    let handle = server.handle().clone();

    let (clients, errors, _) = open_clients(addr, subscribers, Some("bench"));
    let subscribed = clients.len();
    let total = messages + HTTP_PUBLISHES;
    let progress = Arc::new(Progress::default());
    let readers = spawn_readers(clients, messages, total, &progress);

    // Phase 1: the library, as fast as the router answers or at `rate`.
    let cpu_start = (thread_cpu("wshub"), thread_cpu("bench-reader"));
    let start = now_ns();
    let started = Instant::now();
    let mut queued_for = usize::MAX;
    for seq in 0..messages {
        if rate > 0 {
            let due = started + Duration::from_secs_f64(seq as f64 / rate as f64);
            thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let n = handle
            .publish(Target::channel("bench"), "event", payload(seq))
            .expect("publish");
        queued_for = queued_for.min(n);
    }
    let publish_took = Duration::from_nanos(now_ns() - start);
    wait_until("every subscriber has the library messages", || {
        progress.settled_lib.load(Ordering::Acquire) >= subscribed
    });
    let delivered_in = Duration::from_nanos(progress.last_lib_ns.load(Ordering::Acquire) - start);
    let hub_cpu = thread_cpu("wshub").saturating_sub(cpu_start.0);
    let reader_cpu = thread_cpu("bench-reader").saturating_sub(cpu_start.1);

    // Phase 2: the same channel through POST /api/publish, one at a time.
    let mut http_times = Vec::new();
    let mut http_failures = 0;
    for seq in messages..total {
        let body = json!({"channel": "bench", "type": "event", "data": payload(seq)}).to_string();
        let sent = Instant::now();
        let (status, _) = http(addr, "POST", "/api/publish", &body);
        http_times.push(sent.elapsed().as_micros() as u64);
        if status != 200 {
            http_failures += 1;
        }
    }
    wait_until("every subscriber has the HTTP messages", || {
        progress.settled_all.load(Ordering::Acquire) >= subscribed
    });
    progress.stop.store(true, Ordering::Release);
    let report = readers
        .into_iter()
        .map(|r| r.join().expect("reader thread"))
        .fold(ReaderReport::default(), ReaderReport::merge);
    let metrics = metrics(addr);

    let deliveries = subscribed as u64 * messages;
    table(&[
        ("subscribers", format!("{subscribed} / {subscribers}")),
        ("connect errors", errors.summary()),
        ("publish() recipients (min)", queued_for.to_string()),
        (
            "publish() calls/s",
            format!("{:.0}", messages as f64 / publish_took.as_secs_f64()),
        ),
        (
            "first publish -> last delivery",
            format!("{:.3} s", delivered_in.as_secs_f64()),
        ),
        (
            "deliveries/s",
            format!("{:.0}", deliveries as f64 / delivered_in.as_secs_f64()),
        ),
        ("latency (library)", percentiles(report.lat_lib)),
        (
            "hub threads CPU (library phase)",
            format!(
                "{:.2} s ({:.0}% of one core)",
                hub_cpu.as_secs_f64(),
                100.0 * hub_cpu.as_secs_f64() / delivered_in.as_secs_f64()
            ),
        ),
        (
            "reader threads CPU (same phase)",
            format!(
                "{:.2} s ({:.0}% of one core)",
                reader_cpu.as_secs_f64(),
                100.0 * reader_cpu.as_secs_f64() / delivered_in.as_secs_f64()
            ),
        ),
        (
            "HTTP POST /api/publish time",
            format!("{} ({http_failures} failed)", percentiles(http_times)),
        ),
        ("latency (HTTP publish)", percentiles(report.lat_http)),
        (
            "complete & in order",
            format!("{} / {subscribed} subscribers", report.complete),
        ),
        ("sequence gaps/reorders", report.out_of_order.to_string()),
        ("subscribers closed", report.closes.summary()),
        (
            "hub slow consumers",
            metric(&metrics, "wshub_slow_consumers_total"),
        ),
    ]);
    server.shutdown().expect("hub shuts down");
}

/// C clients, K pings each, one at a time: request/response round trips.
fn rtt(clients: usize, pings: u64) {
    header(&format!(
        "rtt: {clients} clients x {pings} ping/pong round trips \
         (hub = release binary, separate process)"
    ));
    let hub = HubProcess::start(&rate_limit_args(clients as u64 * pings));
    let before = hub.snapshot();
    let barrier = Arc::new(Barrier::new(clients + 1));
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let addr = hub.addr;
            thread::spawn(move || {
                let ws = connect(addr, None);
                barrier.wait();
                let mut ws = ws?;
                let mut latencies = Vec::with_capacity(pings as usize);
                for n in 0..pings {
                    let sent = Instant::now();
                    let request = format!(r#"{{"type":"ping","correlationId":{n}}}"#);
                    ws.send(Message::text(request)).map_err(|e| e.to_string())?;
                    let reply = read_text(&mut ws)?;
                    if !reply.contains(r#""type":"pong""#)
                        || field(&reply, "correlationId") != Some(n)
                    {
                        return Err(format!("expected pong {n}, got {reply}"));
                    }
                    latencies.push(sent.elapsed().as_micros() as u64);
                }
                Ok(latencies)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut latencies = Vec::new();
    let mut errors = Tally::default();
    for worker in workers {
        match worker.join().expect("client thread") {
            Ok(l) => latencies.extend(l),
            Err(e) => errors.add(e),
        }
    }
    let took = start.elapsed();
    let cpu = hub.snapshot().cpu.saturating_sub(before.cpu);
    let metrics = metrics(hub.addr);
    table(&[
        (
            "clients finished",
            format!("{} / {clients}", clients - errors.count),
        ),
        ("client errors", errors.summary()),
        ("round trips", latencies.len().to_string()),
        ("elapsed", format!("{:.3} s", took.as_secs_f64())),
        (
            "round trips/s",
            format!("{:.0}", latencies.len() as f64 / took.as_secs_f64()),
        ),
        ("latency", percentiles(latencies)),
        (
            "hub CPU",
            format!(
                "{:.2} s ({:.0}% of one core)",
                cpu.as_secs_f64(),
                100.0 * cpu.as_secs_f64() / took.as_secs_f64()
            ),
        ),
        (
            "hub messages received",
            metric(&metrics, "wshub_messages_received_total"),
        ),
    ]);
    hub.stop();
}

/// `--rate-limit` if the binary knows it, set high enough never to trigger.
fn rate_limit_args(messages: u64) -> Vec<String> {
    let help = Command::new(env!("CARGO_BIN_EXE_wshub"))
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    match help.lines().find(|l| l.contains("--rate-limit ")) {
        Some(line) => {
            println!("  (binary has {}; raising it)", line.trim());
            vec!["--rate-limit".to_owned(), (messages * 10).to_string()]
        }
        None => Vec::new(),
    }
}

// ------------------------------------------------------- fan-out readers

/// Counters the publisher watches while readers work.
#[derive(Default)]
struct Progress {
    /// Subscribers that got the last library message, or closed before.
    settled_lib: AtomicUsize,
    /// Subscribers that got the last message of all, or closed before.
    settled_all: AtomicUsize,
    /// When the last library message arrived anywhere (ns since start).
    last_lib_ns: AtomicU64,
    /// Set by the publisher when it is done waiting.
    stop: AtomicBool,
}

/// One subscriber as a reader sees it.
struct Subscriber {
    ws: Ws,
    next: u64,
    in_order: bool,
    open: bool,
}

#[derive(Default)]
struct ReaderReport {
    lat_lib: Vec<u64>,
    lat_http: Vec<u64>,
    complete: usize,
    out_of_order: u64,
    closes: Tally,
}

impl ReaderReport {
    fn merge(mut self, other: ReaderReport) -> ReaderReport {
        self.lat_lib.extend(other.lat_lib);
        self.lat_http.extend(other.lat_http);
        self.complete += other.complete;
        self.out_of_order += other.out_of_order;
        self.closes.merge(other.closes);
        self
    }
}

/// Splits the subscribers among [`READER_THREADS`] threads that poll their
/// non-blocking sockets in turn, sleeping briefly when nothing came.
fn spawn_readers(
    clients: Vec<Ws>,
    lib_messages: u64,
    total: u64,
    progress: &Arc<Progress>,
) -> Vec<thread::JoinHandle<ReaderReport>> {
    let mut groups: Vec<Vec<Subscriber>> = (0..READER_THREADS).map(|_| Vec::new()).collect();
    for (i, ws) in clients.into_iter().enumerate() {
        ws.get_ref().set_nonblocking(true).expect("nonblocking");
        groups[i % READER_THREADS].push(Subscriber {
            ws,
            next: 0,
            in_order: true,
            open: true,
        });
    }
    groups
        .into_iter()
        .map(|mut subs| {
            let progress = Arc::clone(progress);
            thread::Builder::new()
                .name("bench-reader".into())
                .spawn(move || read_all(&mut subs, lib_messages, total, &progress))
                .expect("reader thread")
        })
        .collect()
}

fn read_all(subs: &mut [Subscriber], lib: u64, total: u64, progress: &Progress) -> ReaderReport {
    let mut report = ReaderReport::default();
    let deadline = Instant::now() + PHASE_LIMIT;
    let mut active = subs.len();
    while active > 0 && Instant::now() < deadline && !progress.stop.load(Ordering::Acquire) {
        let mut got = 0;
        for sub in subs.iter_mut().filter(|s| s.open && s.next < total) {
            loop {
                match sub.ws.read() {
                    Ok(Message::Text(text)) => {
                        let now = now_ns();
                        let (Some(seq), Some(sent)) = (field(&text, "seq"), field(&text, "sentNs"))
                        else {
                            continue;
                        };
                        got += 1;
                        if seq != sub.next {
                            sub.in_order = false;
                            report.out_of_order += 1;
                        }
                        sub.next = seq + 1;
                        let latency = now.saturating_sub(sent) / 1000;
                        if seq < lib {
                            report.lat_lib.push(latency);
                        } else {
                            report.lat_http.push(latency);
                        }
                        if seq + 1 == lib {
                            progress.last_lib_ns.fetch_max(now, Ordering::AcqRel);
                            progress.settled_lib.fetch_add(1, Ordering::AcqRel);
                        }
                        if seq + 1 == total {
                            progress.settled_all.fetch_add(1, Ordering::AcqRel);
                            report.complete += usize::from(sub.in_order);
                            active -= 1;
                            break;
                        }
                    }
                    Ok(Message::Close(frame)) => {
                        let why =
                            frame.map_or("no code".into(), |f| format!("{} {}", f.code, f.reason));
                        close_subscriber(sub, lib, progress, &mut report, format!("Close {why}"));
                        active -= 1;
                        break;
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        close_subscriber(sub, lib, progress, &mut report, e.to_string());
                        active -= 1;
                        break;
                    }
                }
            }
        }
        if got == 0 {
            thread::sleep(Duration::from_micros(100));
        }
    }
    report
}

/// A subscriber that ended early still counts as settled, so nobody waits.
fn close_subscriber(
    sub: &mut Subscriber,
    lib: u64,
    progress: &Progress,
    report: &mut ReaderReport,
    why: String,
) {
    sub.open = false;
    if sub.next < lib {
        progress.settled_lib.fetch_add(1, Ordering::AcqRel);
    }
    progress.settled_all.fetch_add(1, Ordering::AcqRel);
    report.closes.add(why);
}

/// About 100 bytes of JSON: a sequence number, the send time, padding.
fn payload(seq: u64) -> serde_json::Value {
    json!({"seq": seq, "sentNs": now_ns(), "pad": "x".repeat(48)})
}

// ------------------------------------------------------- the hub process

/// The release `wshub` binary, started on a free loopback port.
struct HubProcess {
    child: Child,
    addr: SocketAddr,
    /// Everything on stderr but `INFO` lines: warnings, errors, and whatever
    /// a crash prints (kept while stderr is drained).
    complaints: Arc<Mutex<Tally>>,
}

/// What `/proc/<pid>` says about the hub.
struct Snapshot {
    rss_kib: u64,
    threads: u64,
    fds: u64,
    /// Memory mappings (VMAs); each thread costs a few, and the kernel caps
    /// them at `vm.max_map_count`.
    maps: u64,
    cpu: Duration,
}

impl HubProcess {
    fn start(extra: &[String]) -> HubProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wshub"))
            .args(["--host", "127.0.0.1", "--port", "0", "--log-level", "info"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the wshub binary");
        let stderr = child.stderr.take().expect("stderr");
        let complaints = Arc::new(Mutex::new(Tally::default()));
        let (addr_tx, addr_rx) = crossbeam_channel::bounded(1);
        let seen = Arc::clone(&complaints);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ws://").nth(1) {
                    let addr = rest.split('/').next().unwrap_or_default().to_owned();
                    let _ = addr_tx.send(addr);
                } else if !line.contains(" INFO ") {
                    seen.lock().unwrap().add(line);
                }
            }
        });
        let addr = match addr_rx.recv_timeout(STEP_TIMEOUT) {
            Ok(addr) => addr.parse().expect("hub address"),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("wshub {extra:?} did not start listening ({status:?})");
            }
        };
        println!("  hub pid {} on {addr} {}", child.id(), extra.join(" "));
        HubProcess {
            child,
            addr,
            complaints,
        }
    }

    fn snapshot(&self) -> Snapshot {
        let pid = self.child.id();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let status_field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        Snapshot {
            rss_kib: status_field("VmRSS:"),
            threads: status_field("Threads:"),
            fds: fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64),
            maps: fs::read_to_string(format!("/proc/{pid}/maps"))
                .map_or(0, |m| m.lines().count() as u64),
            cpu: stat_cpu(&stat),
        }
    }

    /// How the hub ended, if it has.
    fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|s| s.to_string())
    }

    /// SIGTERM (a graceful shutdown), then SIGKILL if it takes too long.
    fn stop(mut self) {
        if let Some(status) = self.exited() {
            let complaints = self.complaints.lock().unwrap();
            println!(
                "  !! the hub had already exited ({status}); stderr besides INFO: {}",
                complaints.summary()
            );
            return;
        }
        let started = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.to_string(),
                _ if started.elapsed() > Duration::from_secs(15) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break "killed after 15 s".to_owned();
                }
                _ => thread::sleep(Duration::from_millis(20)),
            }
        };
        let complaints = self.complaints.lock().unwrap();
        println!(
            "  hub stopped in {:.2} s ({status}); stderr besides INFO: {}",
            started.elapsed().as_secs_f64(),
            complaints.summary()
        );
    }
}

/// utime + stime from a `/proc/.../stat` line.
fn stat_cpu(stat: &str) -> Duration {
    // Fields after the `(comm)`: state is the first, utime the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 1000 / TICKS_PER_SEC)
}

/// CPU time of this process's threads whose name starts with `prefix`.
fn thread_cpu(prefix: &str) -> Duration {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|t| fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix)))
        .map(|t| stat_cpu(&fs::read_to_string(t.path().join("stat")).unwrap_or_default()))
        .sum()
}

// ---------------------------------------------------------------- clients

/// A WebSocket client past the `connection` welcome, subscribed to
/// `channel` if one is given. Blocking, with [`STEP_TIMEOUT`] on reads.
fn connect(addr: SocketAddr, channel: Option<&str>) -> Result<Ws, String> {
    let stream =
        TcpStream::connect_timeout(&addr, STEP_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).ok();
    stream.set_read_timeout(Some(STEP_TIMEOUT)).ok();
    let url = format!("ws://{addr}/ws");
    // tungstenite zero-fills its read buffer on every read: at the default
    // 128 KiB, the load generator would spend the cores meant for the hub.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) = tungstenite::client::client_with_config(url.as_str(), stream, Some(config))
        .map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => format!("handshake: {e}"),
        tungstenite::HandshakeError::Interrupted(_) => "handshake interrupted".to_owned(),
    })?;
    let welcome = read_text(&mut ws)?;
    if !welcome.contains(r#""type":"connection""#) {
        return Err(format!("expected the welcome, got {welcome}"));
    }
    if let Some(channel) = channel {
        let subscribe = json!({"type": "subscribe", "channel": channel}).to_string();
        ws.send(Message::text(subscribe))
            .map_err(|e| e.to_string())?;
        let reply = read_text(&mut ws)?;
        if !reply.contains(r#""type":"subscribed""#) {
            return Err(format!("expected subscribed, got {reply}"));
        }
    }
    Ok(ws)
}

/// The next text message (pings are answered by tungstenite while reading).
fn read_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.read() {
            Ok(Message::Text(text)) => return Ok(text.as_str().to_owned()),
            Ok(Message::Close(frame)) => return Err(format!("closed: {frame:?}")),
            Ok(_) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// Opens `n` clients from [`CONNECT_THREADS`] threads; returns those that
/// made it, the failures, and how long it took.
fn open_clients(addr: SocketAddr, n: usize, channel: Option<&str>) -> (Vec<Ws>, Tally, Duration) {
    let start = Instant::now();
    let workers: Vec<_> = (0..CONNECT_THREADS)
        .map(|t| {
            let channel = channel.map(str::to_owned);
            let share = n / CONNECT_THREADS + usize::from(t < n % CONNECT_THREADS);
            thread::spawn(move || {
                let mut clients = Vec::with_capacity(share);
                let mut errors = Tally::default();
                for _ in 0..share {
                    match connect(addr, channel.as_deref()) {
                        Ok(ws) => clients.push(ws),
                        Err(e) => errors.add(e),
                    }
                }
                (clients, errors)
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(n);
    let mut errors = Tally::default();
    for worker in workers {
        let (c, e) = worker.join().expect("connect thread");
        clients.extend(c);
        errors.merge(e);
    }
    (clients, errors, start.elapsed())
}

/// One HTTP/1.1 request on its own connection (the hub closes it after the
/// response); returns the status and body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let exchange = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&addr, STEP_TIMEOUT)?;
        stream.set_read_timeout(Some(STEP_TIMEOUT))?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    };
    let response = exchange().unwrap_or_default();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

/// The hub's Prometheus counters, as `name value` lines.
fn metrics(addr: SocketAddr) -> String {
    http(addr, "GET", "/metrics", "").1
}

fn metric(metrics: &str, name: &str) -> String {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or("?")
        .to_owned()
}

// ---------------------------------------------------------------- helpers

/// Nanoseconds since the benchmark started (one clock for the whole process).
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The unsigned number after `"name":` in a JSON text, without parsing it all.
fn field(text: &str, name: &str) -> Option<u64> {
    let key = format!("\"{name}\":");
    let at = text.find(&key)? + key.len();
    let digits: &str = &text[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Polls `done` until it holds or [`PHASE_LIMIT`] passes.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > PHASE_LIMIT {
            println!("  !! gave up waiting: {what}");
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// How often something happened, with the first few examples.
#[derive(Default)]
struct Tally {
    count: usize,
    examples: Vec<String>,
    last: Option<String>,
}

impl Tally {
    fn add(&mut self, example: String) {
        self.count += 1;
        if self.examples.len() < 3 {
            self.examples.push(example);
        } else {
            self.last = Some(example);
        }
    }

    fn merge(&mut self, other: Tally) {
        self.count += other.count;
        self.examples.extend(other.examples);
        self.examples.truncate(3);
        self.last = other.last.or(self.last.take());
    }

    fn summary(&self) -> String {
        match self.count {
            0 => "0".to_owned(),
            n => {
                let mut shown = self.examples[..self.examples.len().min(3)].join(" | ");
                if let Some(last) = &self.last {
                    shown = format!("{shown} ... last: {last}");
                }
                format!("{n} (e.g. {shown})")
            }
        }
    }
}

/// p50 / p99 / max of microsecond samples.
fn percentiles(mut samples: Vec<u64>) -> String {
    if samples.is_empty() {
        return "no samples".to_owned();
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let show = |us: u64| match us {
        0..1_000 => format!("{us} µs"),
        _ => format!("{:.2} ms", us as f64 / 1000.0),
    };
    format!(
        "p50 {}  p99 {}  max {}  (n={})",
        show(at(0.50)),
        show(at(0.99)),
        show(at(1.0)),
        samples.len()
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn table(rows: &[(&str, String)]) {
    for (label, value) in rows {
        println!("  {label:<32} {value}");
    }
}
