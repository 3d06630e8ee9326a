//! Load benchmarks: wshub side by side with two reference servers, in the
//! same run, on the same machine.
//!
//! The servers, each started fresh for every run as its own process:
//!
//! - **wshub**: the release binary (`CARGO_BIN_EXE_wshub`), with
//!   `--allow-client-publish --rate-limit 0 --max-connections-per-ip 0` and
//!   `--max-connections` raised to what the scenario needs (each only if
//!   `--help` lists it); everything else, `--writer-threads` too, at its
//!   defaults.
//! - **tokio**: `benches/peers/tokio`, tokio's multi-thread runtime and
//!   tokio-tungstenite, a reader and a writer task per connection (built here
//!   with `cargo build --release --manifest-path benches/peers/tokio/Cargo.toml
//!   --target-dir target/peers` when its binary is missing or older than its
//!   sources).
//! - **node**: `benches/peers/node/server.js` on the `ws` package (`npm install`
//!   is run there when `node_modules` is missing; without node or npm this
//!   server is skipped and the others still run).
//!
//! All three speak the same protocol subset: the `connection` welcome,
//! `subscribe`, `publish` (one encoding per publication, shared by every
//! subscriber; `published` with the count when asked), and `ping`.
//!
//! Everything runs on loopback (127.0.0.1), every loop is bounded, and every
//! scenario stops by itself. On a machine with two CPUs or more, each server
//! runs on CPU 0 (`taskset -c 0`) and this process, the load generator, on
//! CPU 1, so neither steals the other's core. Each server gets the hard
//! `ulimit -n` as its soft limit. Every scenario runs each server 3 times
//! (`--runs N`), in turn, and ends with a table of the medians and the ratios
//! wshub/tokio and wshub/node.
//!
//! # Scenarios
//!
//! - **fanout-max `[S] [SECS]`** (defaults 1000 and 5): one publisher, S
//!   subscribers of one channel, 64-byte payloads, as fast as the server
//!   goes for SECS seconds. The publisher asks for `published` acks and keeps
//!   at most 32 unanswered, and at most 512 messages per subscriber not yet
//!   read, so it runs at the server's pace without piling up queues. Reports
//!   deliveries per second and checks that every subscriber got every message
//!   exactly once and in order (each payload carries its sequence number and
//!   send time). Subscribers are read by one epoll thread per CPU of the load
//!   generator, from a large raw buffer; it pauses 1 ms between rounds so reads
//!   come in batches, so latency here is not the point (see fanout-paced).
//!   When the load generator's CPU is saturated, the table says so: it is the
//!   ceiling then, not the server.
//! - **fanout-paced `[S] [RATE] [SECS]`** (defaults 100, 2000 and 10): S
//!   subscribers, RATE publications per second for SECS seconds (200 000
//!   deliveries/s offered by default). Reports the share delivered within 1 s
//!   of the last publication and in all, and publish-to-receive latency; says
//!   when the publisher fell behind its schedule (then less was offered).
//! - **fanout-envelopes `[S] [SECS]`** (defaults 1000 and 5): wshub alone,
//!   fanout-max twice: every subscriber in the standard envelope, then a
//!   third each in standard, flat and payload (`?envelope=`). A fan-out is
//!   encoded once per envelope in use, so the mixed audience costs three
//!   encodings per publication instead of one; the table compares
//!   deliveries/s and the server's CPU time per delivery.
//! - **chaos `[S] [RATE] [SECS] [DROP%]`** and **history `[STREAMS] [PER]`**:
//!   recovery under churn, and what history costs; see `recovery.rs`.
//! - **cluster `[S] [SECS]`**: fanout-max on one hub, and on two hubs
//!   sharing one `redis-server`; see `cluster.rs`.
//! - **chaos-redis `[S] [RATE] [PCT]`**: two hubs on one `redis-server`
//!   that is stalled (SIGSTOP) for 2, 8 and 20 s and restarted empty,
//!   under a steady publisher and subscribers resuming on either hub: every
//!   `seq` of every epoch exactly once and in order, or a gap the
//!   subscriber was told of; see `cluster.rs`.
//! - **idle `[N ...]`** (defaults 5000 and 10000): N silent clients. The
//!   server's resident memory, threads and file descriptors per connection
//!   (after minus before, over N), and its CPU time over 10 s with all N
//!   connected. Says how many it held, and why not all when it could not
//!   (wshub refuses clients past the kernel's thread ceiling, for example).
//! - **ping `[C] [RATE] [SECS]`** (defaults 100, 5000 and 5): C clients send
//!   application `ping`s, RATE per second in all, each waiting for the
//!   `pong` with its `correlationId`: round-trip latency. RATE 0 sends the
//!   next ping as soon as the pong is in (throughput).
//! - **request `[C] [RATE] [SECS]`** (defaults 100, 0 and 5): wshub alone,
//!   the ping scenario three ways: C clients each sending a request and
//!   waiting for its answer by `correlationId`, answered by the hub itself
//!   (`ping`), by a program through the library receiver
//!   (`examples/echo_service.rs`, two worker threads, built here), and by a
//!   backend's service connection (a thread of the load generator).
//! - **connect `[N] [AT_ONCE]`** (defaults 5000 and 50): N connections opened
//!   AT_ONCE at a time, each complete once it has read the welcome:
//!   connections per second and handshake latency.
//!
//! The earlier wshub-only scenarios are folded in: `fanout S M [RATE]` is
//! now fanout-max or fanout-paced (by time, not message count), and
//! `rtt C K` is `ping C 0 SECS`; their old names are refused rather than
//! reread with new meanings (`fanout 1000 10000` would run for hours).
//!
//! # Running
//!
//! ```text
//! cargo bench --bench hub                              # everything, default sizes (10 to 15 min)
//! cargo bench --bench hub -- fanout-max 1000 5
//! cargo bench --bench hub -- fanout-paced 100 2000 10
//! cargo bench --bench hub -- fanout-envelopes 1000 5
//! cargo bench --bench hub -- request 100 0 5
//! cargo bench --bench hub -- chaos 1000 500 60 10
//! cargo bench --bench hub -- history 10000 10
//! cargo bench --bench hub -- cluster 1000 5
//! cargo bench --bench hub -- chaos-redis 200 200 10
//! cargo bench --bench hub -- idle 5000 10000
//! cargo bench --bench hub -- ping 100 5000 5
//! cargo bench --bench hub -- connect 5000 50
//! cargo bench --bench hub -- fanout-max 200 2 --runs 1   # a quick check
//! cargo bench --bench hub -- idle 1000 --servers wshub,tokio
//! ```
//!
//! Options: `--runs N` (default 3), `--servers LIST` (any of wshub, tokio and
//! node; default all three), `--server-cpus LIST` and `--client-cpus LIST`
//! (taskset CPU lists; defaults 0 and 1), `--no-pin` (no taskset at all),
//! `--wshub-arg ARG` (one more argument for wshub, after the harness's own;
//! repeat it for more).
//!
//! N idle clients need about N file descriptors in this process (`ulimit -n`)
//! and in each server. wshub also needs two threads per client, each with a
//! few memory maps, so Linux's default `vm.max_map_count` of 65 530 caps it
//! near 7 500 clients; the idle table says when a server held fewer than N.

#![forbid(unsafe_code)]

mod cluster;
mod recovery;

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use mio::{Events, Interest, Poll, Token};

/// How long to wait for any one step (a handshake, a reply) before giving up.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a scenario's main phase may run before it is cut short.
const PHASE_LIMIT: Duration = Duration::from_secs(180);
/// How long subscribers may take to get the last messages once the
/// publisher is done.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// How long the idle scenario watches each server with everyone connected.
const IDLE_WINDOW: Duration = Duration::from_secs(10);
/// fanout-paced: what counts as delivered in time after the last publication.
const PACED_GRACE: Duration = Duration::from_secs(1);
/// fanout-max: most publications not yet answered with `published`.
const ACK_WINDOW: u64 = 32;
/// fanout-max: most publications ahead of what the average subscriber read.
const DELIVERY_WINDOW: u64 = 512;
/// fanout-max: the pause between two rounds of reads, so each read takes many
/// messages at once instead of one (the load generator's cost per message).
const BATCH_PAUSE: Duration = Duration::from_millis(1);
/// The `data` of every publication: this many bytes of JSON.
const PAYLOAD_BYTES: usize = 64;
const CHANNEL: &str = "bench";
/// Where every client connects, unless a scenario says otherwise.
const WS_PATH: &str = "/ws";
/// wshub's three envelopes, one path each.
const ENVELOPE_PATHS: [&str; 3] = [
    "/ws?envelope=standard",
    "/ws?envelope=flat",
    "/ws?envelope=payload",
];
/// Connections opened at once when a scenario opens many.
const CONNECT_AT_ONCE: usize = 50;
/// Each subscriber reader thread's read buffer.
const READ_BUFFER: usize = 256 * 1024;
/// A load generator busier than this share of its CPUs may be the ceiling.
const SATURATED: f64 = 0.9;
/// Linux reports process CPU times in ticks of 1/100 s (USER_HZ).
const TICKS_PER_SEC: u64 = 100;
/// The key of every handshake: the servers do not care, and nor do we.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The mask of every client frame.
const MASK: [u8; 4] = [0x5a, 0x1c, 0xe3, 0x97];
/// Runs a server with the hard limit on file descriptors as its soft one.
const WITH_LIMITS: &str = r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@""#;

const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

fn main() {
    let (options, words) = parse_args();
    let number = |i: usize, default: u64| -> u64 {
        words.get(i).map_or(default, |a| {
            a.parse()
                .unwrap_or_else(|_| usage(&format!("not a number: {a}")))
        })
    };
    let scenario = words.first().map_or("all", String::as_str);
    match scenario {
        "fanout" => usage(
            "fanout is now fanout-max [S] [SECS] or fanout-paced [S] [RATE] [SECS] \
             (seconds, not messages)",
        ),
        "rtt" | "throughput" => usage("rtt is now ping [C] 0 [SECS] (seconds, not pings)"),
        _ => {}
    }
    if !matches!(
        scenario,
        "all"
            | "fanout-max"
            | "fanout-paced"
            | "fanout-envelopes"
            | "chaos"
            | "history"
            | "catch-up"
            | "request"
            | "cluster"
            | "chaos-redis"
            | "idle"
            | "ping"
            | "connect"
    ) {
        usage(&format!("unknown scenario {scenario}"));
    }

    // Build the peers before pinning, so the builds get every CPU.
    println!("== servers");
    let servers = prepare(&options.servers);
    if servers.is_empty() {
        eprintln!("no server to measure");
        std::process::exit(1);
    }
    let server_cpus = pin_load_generator(&options);
    let bench = Bench {
        runs: options.runs,
        servers,
        server_cpus,
        wshub_args: options.wshub_args,
    };

    let mut summaries = Vec::new();
    match scenario {
        "all" => {
            summaries.push(bench.fanout_max(1_000, 5));
            summaries.push(bench.fanout_paced(100, 2_000, 10));
            summaries.push(bench.fanout_envelopes(1_000, 5));
            summaries.push(bench.chaos(1_000, 500, 60, 10));
            summaries.push(bench.history(10_000, 10));
            summaries.push(bench.catch_up(100));
            summaries.push(bench.cluster(1_000, 5));
            summaries.push(bench.chaos_redis(200, 200, 10));
            for n in [5_000, 10_000] {
                summaries.push(bench.idle(n));
            }
            summaries.push(bench.ping(100, 5_000, 5));
            summaries.push(bench.request(100, 0, 5));
            summaries.push(bench.connect(5_000, CONNECT_AT_ONCE));
        }
        "fanout-max" => {
            summaries.push(bench.fanout_max(number(1, 1_000) as usize, number(2, 5)));
        }
        "fanout-paced" => summaries.push(bench.fanout_paced(
            number(1, 100) as usize,
            number(2, 2_000),
            number(3, 10),
        )),
        "idle" => {
            let sizes: Vec<u64> = match words.len() {
                1 => vec![5_000, 10_000],
                n => (1..n).map(|i| number(i, 0)).collect(),
            };
            for n in sizes {
                summaries.push(bench.idle(n as usize));
            }
        }
        "ping" => {
            summaries.push(bench.ping(number(1, 100) as usize, number(2, 5_000), number(3, 5)))
        }
        "cluster" => summaries.push(bench.cluster(number(1, 1_000) as usize, number(2, 5))),
        "chaos-redis" => summaries.push(bench.chaos_redis(
            number(1, 200) as usize,
            number(2, 200),
            number(3, 10),
        )),
        "request" => {
            summaries.push(bench.request(number(1, 100) as usize, number(2, 0), number(3, 5)))
        }
        "chaos" => summaries.push(bench.chaos(
            number(1, 1_000) as usize,
            number(2, 500),
            number(3, 60),
            number(4, 10),
        )),
        "history" => summaries.push(bench.history(number(1, 10_000) as usize, number(2, 10))),
        "catch-up" => summaries.push(bench.catch_up(number(1, 100))),
        "fanout-envelopes" => {
            summaries.push(bench.fanout_envelopes(number(1, 1_000) as usize, number(2, 5)))
        }
        _ => summaries.push(bench.connect(
            number(1, 5_000) as usize,
            number(2, CONNECT_AT_ONCE as u64) as usize,
        )),
    }
    if summaries.len() > 1 {
        println!("\n\n==== final table (medians; ratios are wshub's figure over the other's)");
        for summary in &summaries {
            summary.print();
        }
    }
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "{problem}\n\
         usage: cargo bench --bench hub -- [SCENARIO [ARGS]] [OPTIONS]\n\
         scenarios (default: all of them, at the default sizes):\n\
         \x20 fanout-max [S=1000] [SECS=5]           1 publisher -> S subscribers, flat out\n\
         \x20 fanout-paced [S=100] [RATE=2000] [SECS=10]  RATE publications/s to S subscribers\n\
         \x20 idle [N ...=5000 10000]                N silent clients: memory, threads, fds, CPU\n\
         \x20 ping [C=100] [RATE=5000] [SECS=5]      C clients, RATE pings/s in all (0: flat out)\n\
         \x20 connect [N=5000] [AT_ONCE=50]          N handshakes, AT_ONCE at a time\n\
         wshub only (with and without a feature, or with its parts):\n\
         \x20 fanout-envelopes [S=1000] [SECS=5]     fan-out to one envelope, and to three mixed\n\
         \x20 chaos [S=1000] [RATE=500] [SECS=60] [PCT=10]  PCT% of S dropped each second, back with since\n\
         \x20 history [STREAMS=10000] [EACH=10]      publications nobody follows, history on and off\n\
         \x20 catch-up [MIB=100]                    a client stops reading in the middle of a MIB catch-up\n\
         \x20 request [C=100] [RATE=0] [SECS=5]      round trips answered by the hub, the library, a service\n\
         \x20 cluster [S=1000] [SECS=5]             fan-out on one hub, and on two hubs sharing one Redis\n\
         \x20 chaos-redis [S=200] [RATE=200] [PCT=10]  two hubs, Redis stalled 2, 8, 20 s and restarted empty\n\
         options:\n\
         \x20 --runs N              runs per server; the tables show medians (default 3)\n\
         \x20 --servers LIST        some of wshub,tokio,node (default all three)\n\
         \x20 --server-cpus LIST    taskset CPU list for the servers (default 0)\n\
         \x20 --client-cpus LIST    taskset CPU list for this load generator (default 1)\n\
         \x20 --no-pin              run everything wherever the kernel likes\n\
         \x20 --wshub-arg ARG       one more argument for wshub (repeat for more), e.g.\n\
         \x20                       --wshub-arg=--max-connections=500 to see it refuse"
    );
    std::process::exit(2);
}

struct Options {
    runs: usize,
    servers: Vec<Kind>,
    pin: bool,
    server_cpus: String,
    client_cpus: String,
    /// Extra arguments for wshub, after the harness's own.
    wshub_args: Vec<String>,
}

/// The options, and the scenario with its numbers.
fn parse_args() -> (Options, Vec<String>) {
    let mut options = Options {
        runs: 3,
        servers: Kind::ALL.to_vec(),
        pin: true,
        server_cpus: "0".to_owned(),
        client_cpus: "1".to_owned(),
        wshub_args: Vec::new(),
    };
    let mut words = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            words.push(arg);
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (flag.to_owned(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .unwrap_or_else(|| usage(&format!("--{name} needs a value")))
        };
        match name.as_str() {
            // `cargo bench` adds it.
            "bench" => {}
            "runs" => {
                options.runs = value()
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage("--runs needs a number above 0"));
            }
            "servers" => {
                options.servers = value()
                    .split(',')
                    .map(|s| {
                        Kind::ALL
                            .into_iter()
                            .find(|k| k.name() == s.trim())
                            .unwrap_or_else(|| usage(&format!("unknown server {s}")))
                    })
                    .collect();
            }
            "server-cpus" => options.server_cpus = value(),
            "client-cpus" => options.client_cpus = value(),
            "no-pin" => options.pin = false,
            "wshub-arg" => options.wshub_args.push(value()),
            "help" => usage("wshub's load benchmarks, side by side with two reference servers"),
            _ => usage(&format!("unknown option --{name}")),
        }
    }
    (options, words)
}

/// The scenario's title, with what else the machine is doing.
fn header(title: &str) {
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!("\n\n== {title}");
    println!(
        "  (load generator on {} CPU(s); load average {})",
        generator_cpus(),
        load.join(" ")
    );
}

/// Pins this process (every thread it has, and every one it will start) to
/// `--client-cpus`; returns the CPUs the servers get, if pinning worked.
fn pin_load_generator(options: &Options) -> Option<String> {
    if !options.pin {
        println!("  nothing pinned (--no-pin): servers and load generator share the CPUs");
        return None;
    }
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        println!("  one CPU only: servers and load generator share it");
        return None;
    }
    let pid = std::process::id().to_string();
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", &options.client_cpus, &pid])
        .stdout(Stdio::null())
        .status();
    match pinned {
        Ok(status) if status.success() => {
            println!(
                "  servers on CPU {} (taskset), this load generator on CPU {}",
                options.server_cpus, options.client_cpus
            );
            let _ = PINNED.set((
                cpu_list(&options.server_cpus),
                cpu_list(&options.client_cpus),
            ));
            Some(options.server_cpus.clone())
        }
        Ok(status) => {
            println!("  !! taskset failed ({status}): nothing pinned");
            None
        }
        Err(err) => {
            println!("  !! no taskset ({err}): nothing pinned");
            None
        }
    }
}

/// The servers' CPUs and the load generator's, once both are pinned.
static PINNED: OnceLock<(Vec<usize>, Vec<usize>)> = OnceLock::new();

/// The CPUs of a taskset list such as `0`, `1-3` or `0,2`.
fn cpu_list(list: &str) -> Vec<usize> {
    list.split(',')
        .filter_map(|part| match part.split_once('-') {
            Some((a, b)) => Some((a.trim().parse().ok()?..=b.trim().parse().ok()?).collect()),
            None => Some(vec![part.trim().parse().ok()?]),
        })
        .flatten()
        .collect()
}

/// Time these CPUs spent busy (not idle, not waiting for I/O), from /proc/stat.
fn cpus_busy(cpus: &[usize]) -> Duration {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let cpu: usize = fields.next()?.strip_prefix("cpu")?.parse().ok()?;
            if !cpus.contains(&cpu) {
                return None;
            }
            let times: Vec<u64> = fields.take(8).filter_map(|f| f.parse().ok()).collect();
            // user nice system idle iowait irq softirq steal
            Some(times.iter().sum::<u64>() - times.get(3)? - times.get(4)?)
        })
        .sum();
    Duration::from_millis(ticks * 1000 / TICKS_PER_SEC)
}

/// CPUs this process may run on (after pinning, the load generator's).
fn generator_cpus() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

// ------------------------------------------------------------ the servers

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Wshub,
    Tokio,
    Node,
    /// `examples/echo_service.rs`: wshub embedded in a program that answers
    /// requests through the library receiver (the request scenario only).
    Library,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Wshub, Kind::Tokio, Kind::Node];

    fn name(self) -> &'static str {
        match self {
            Kind::Wshub => "wshub",
            Kind::Tokio => "tokio",
            Kind::Node => "node",
            Kind::Library => "library",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How to start one server.
struct Launch {
    kind: Kind,
    program: PathBuf,
    args: Vec<String>,
}

/// Every server asked for that can run here; the others are skipped with
/// the reason.
fn prepare(kinds: &[Kind]) -> Vec<Launch> {
    kinds
        .iter()
        .filter_map(|&kind| {
            let launch = match kind {
                Kind::Wshub => Ok(wshub_launch()),
                Kind::Tokio => tokio_launch(),
                Kind::Node => node_launch(),
                Kind::Library => library_launch(),
            };
            match launch {
                Ok(launch) => Some(launch),
                Err(why) => {
                    println!("  !! skipping {kind}: {why}");
                    None
                }
            }
        })
        .collect()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// wshub's `--help`, read once: flags are only passed if the binary has them.
fn wshub_help() -> &'static str {
    static HELP: OnceLock<String> = OnceLock::new();
    HELP.get_or_init(|| {
        Command::new(env!("CARGO_BIN_EXE_wshub"))
            .arg("--help")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    })
}

fn wshub_has(flag: &str) -> bool {
    wshub_help().contains(&format!("{flag} ")) || wshub_help().contains(&format!("{flag}\n"))
}

fn wshub_launch() -> Launch {
    let mut args: Vec<String> = ["--host", "127.0.0.1", "--port", "0", "--log-level", "info"]
        .map(String::from)
        .into();
    for (flag, value) in [
        ("--allow-client-publish", None),
        ("--rate-limit", Some("0")),
        // Loopback is exempt today; this keeps it so if that changes.
        ("--max-connections-per-ip", Some("0")),
    ] {
        if wshub_has(flag) {
            args.push(flag.to_owned());
            args.extend(value.map(String::from));
        } else {
            println!("  !! wshub has no {flag}: left out");
        }
    }
    if wshub_has("--writer-threads") {
        println!("  wshub: --writer-threads left at its default");
    }
    println!(
        "  wshub: {} {}",
        env!("CARGO_BIN_EXE_wshub"),
        args.join(" ")
    );
    Launch {
        kind: Kind::Wshub,
        program: PathBuf::from(env!("CARGO_BIN_EXE_wshub")),
        args,
    }
}

/// wshub's own arguments for a scenario that needs `clients` connections.
fn wshub_capacity(clients: usize) -> Vec<String> {
    if wshub_has("--max-connections") {
        vec![
            "--max-connections".to_owned(),
            (clients + 100).max(10_000).to_string(),
        ]
    } else {
        Vec::new()
    }
}

/// The tokio peer, built first if its binary is missing or out of date.
fn tokio_launch() -> Result<Launch, String> {
    let dir = root().join("benches/peers/tokio");
    let manifest = dir.join("Cargo.toml");
    let target = root().join("target/peers");
    let binary = target.join("release/wshub-peer-tokio");
    let built = fs::metadata(&binary).and_then(|m| m.modified()).ok();
    let sources = newest_change(&[manifest.clone(), dir.join("src")]);
    if built.is_none_or(|built| sources.is_some_and(|s| s > built)) {
        println!(
            "  building the tokio peer: cargo build --release --manifest-path \
             benches/peers/tokio/Cargo.toml --target-dir target/peers"
        );
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target)
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!(
                "cargo build of benches/peers/tokio failed ({status})"
            ));
        }
    }
    let lock = fs::read_to_string(dir.join("Cargo.lock")).unwrap_or_default();
    println!(
        "  tokio: {} (tokio {}, tokio-tungstenite {})",
        binary.display(),
        locked_version(&lock, "tokio"),
        locked_version(&lock, "tokio-tungstenite")
    );
    Ok(Launch {
        kind: Kind::Tokio,
        program: binary,
        args: vec!["--port".to_owned(), "0".to_owned()],
    })
}

/// `examples/echo_service.rs`, built first if missing or out of date.
fn library_launch() -> Result<Launch, String> {
    let binary = root().join("target/release/examples/echo_service");
    let built = fs::metadata(&binary).and_then(|m| m.modified()).ok();
    let sources = newest_change(&[root().join("src"), root().join("examples/echo_service.rs")]);
    if built.is_none_or(|built| sources.is_some_and(|s| s > built)) {
        println!("  building the library peer: cargo build --release --example echo_service");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "--quiet", "--example", "echo_service"])
            .current_dir(root())
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!(
                "cargo build of the echo_service example failed ({status})"
            ));
        }
    }
    println!("  library: {}", binary.display());
    Ok(Launch {
        kind: Kind::Library,
        program: binary,
        // Port 0, two worker threads on the receiver.
        args: vec!["0".to_owned(), "2".to_owned()],
    })
}

/// The version of `name` in a Cargo.lock, or `?`.
fn locked_version(lock: &str, name: &str) -> String {
    let entry = format!("name = \"{name}\"\nversion = \"");
    lock.split_once(&entry)
        .and_then(|(_, rest)| rest.split('"').next())
        .unwrap_or("?")
        .to_owned()
}

/// The latest modification time among these files and folders' files.
fn newest_change(paths: &[PathBuf]) -> Option<SystemTime> {
    let mut newest = None;
    let mut stack = paths.to_vec();
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = fs::read_dir(&path) {
                stack.extend(entries.filter_map(Result::ok).map(|e| e.path()));
            }
        } else if let Ok(modified) = meta.modified() {
            newest = newest.max(Some(modified));
        }
    }
    newest
}

/// The node peer, with `npm install` first if its packages are missing.
fn node_launch() -> Result<Launch, String> {
    let dir = root().join("benches/peers/node");
    let version = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node is not installed ({e})"))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    if !dir.join("node_modules").is_dir() {
        println!("  installing the node peer's packages: npm install (in benches/peers/node)");
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .map_err(|e| format!("npm is not installed ({e})"))?;
        if !status.success() {
            return Err(format!(
                "npm install in benches/peers/node failed ({status})"
            ));
        }
    }
    let ws: serde_json::Value = fs::read_to_string(dir.join("node_modules/ws/package.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .ok_or("benches/peers/node/node_modules has no ws package: remove it to reinstall")?;
    let script = dir.join("server.js");
    println!(
        "  node: node {} (node {version}, ws {}{})",
        script.display(),
        ws["version"].as_str().unwrap_or("?"),
        if dir.join("node_modules/bufferutil").is_dir() {
            ", bufferutil"
        } else {
            ""
        }
    );
    Ok(Launch {
        kind: Kind::Node,
        program: PathBuf::from("node"),
        args: vec![
            script.to_string_lossy().into_owned(),
            "--port".to_owned(),
            "0".to_owned(),
        ],
    })
}

/// One server process, started on a free loopback port.
struct Server {
    kind: Kind,
    child: Child,
    addr: SocketAddr,
    /// stderr lines that are not `INFO` (warnings, errors, a crash).
    complaints: Arc<Mutex<Lines>>,
}

/// What `/proc/<pid>` says about a server.
#[derive(Clone, Copy)]
struct Snapshot {
    rss_kib: u64,
    /// The most resident memory since the process started (`VmHWM`).
    peak_kib: u64,
    threads: u64,
    fds: u64,
    /// Memory mappings; each thread costs a few, and the kernel caps them
    /// at `vm.max_map_count`.
    maps: u64,
    cpu: Duration,
}

impl Server {
    fn start(launch: &Launch, extra: &[String], cpus: Option<&str>) -> Result<Server, String> {
        let mut command = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus, "sh", "-c", WITH_LIMITS]);
                c
            }
            None => {
                let mut c = Command::new("sh");
                c.args(["-c", WITH_LIMITS]);
                c
            }
        };
        // taskset and sh both exec: the child's pid is the server's.
        let mut child = command
            .arg(&launch.program)
            .args(&launch.args)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", launch.kind))?;
        let complaints = Arc::new(Mutex::new(Lines::default()));
        let (addr_tx, addr_rx) = mpsc::channel::<String>();
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        for (pipe, is_stderr) in [(stdout, false), (stderr, true)] {
            let Some(pipe) = pipe else { continue };
            let addr_tx = addr_tx.clone();
            let complaints = Arc::clone(&complaints);
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on ws://").nth(1) {
                        let addr = rest.split(['/', ' ']).next().unwrap_or_default();
                        let _ = addr_tx.send(addr.to_owned());
                    } else if is_stderr && !line.contains(" INFO ") {
                        complaints.lock().expect("complaints lock").add(line);
                    }
                }
            });
        }
        match addr_rx.recv_timeout(STEP_TIMEOUT) {
            Ok(addr) => match addr.parse() {
                Ok(addr) => Ok(Server {
                    kind: launch.kind,
                    child,
                    addr,
                    complaints,
                }),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    Err(format!("{} printed an odd address: {addr}", launch.kind))
                }
            },
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().map_or("?".to_owned(), |s| s.to_string());
                let complaints = complaints.lock().expect("complaints lock");
                Err(format!(
                    "{} did not say where it listens within {} s ({status}); stderr: {}",
                    launch.kind,
                    STEP_TIMEOUT.as_secs(),
                    complaints.summary()
                ))
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        proc_snapshot(&format!("/proc/{}", self.child.id()))
    }

    /// How the server ended, if it has.
    fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|s| s.to_string())
    }

    /// Its stderr lines (not INFO) that contain `word`: the first, and how many.
    fn complaints_about(&self, word: &str) -> Option<(String, usize)> {
        let complaints = self.complaints.lock().expect("complaints lock");
        let mut matching = complaints.lines.iter().filter(|l| l.contains(word));
        let first = matching.next()?.clone();
        Some((first, 1 + matching.count()))
    }

    /// SIGTERM, then SIGKILL if it takes more than 15 s.
    fn stop(mut self) {
        if let Some(status) = self.exited() {
            let complaints = self.complaints.lock().expect("complaints lock");
            println!(
                "  !! {} had already exited ({status}); stderr besides INFO: {}",
                self.kind,
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
        let complaints = self.complaints.lock().expect("complaints lock");
        println!(
            "  {} stopped in {:.2} s ({status}); stderr besides INFO: {}",
            self.kind,
            started.elapsed().as_secs_f64(),
            complaints.summary()
        );
    }
}

fn proc_snapshot(dir: &str) -> Snapshot {
    let status = fs::read_to_string(format!("{dir}/status")).unwrap_or_default();
    let status_field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Snapshot {
        rss_kib: status_field("VmRSS:"),
        peak_kib: status_field("VmHWM:"),
        threads: status_field("Threads:"),
        fds: fs::read_dir(format!("{dir}/fd")).map_or(0, |d| d.count() as u64),
        maps: fs::read_to_string(format!("{dir}/maps")).map_or(0, |m| m.lines().count() as u64),
        cpu: stat_cpu(&fs::read_to_string(format!("{dir}/stat")).unwrap_or_default()),
    }
}

/// utime + stime from a `/proc/.../stat` line.
fn stat_cpu(stat: &str) -> Duration {
    // Fields after the `(comm)`: state is the first, utime the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 1000 / TICKS_PER_SEC)
}

/// CPU time of this process, the load generator, so far.
fn own_cpu() -> Duration {
    stat_cpu(&fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// This process's soft limit on open files.
fn own_fd_limit() -> Option<u64> {
    fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// CPU time the server and this load generator spend over a phase. When
/// pinned, it also watches what else ran on those CPUs meanwhile.
struct CpuClock {
    server: Duration,
    generator: Duration,
    /// Busy time of the servers' CPUs and of the load generator's.
    busy: Option<(Duration, Duration)>,
    started: Instant,
}

/// What a [`CpuClock`] measured, in seconds.
struct CpuUse {
    wall: f64,
    server: f64,
    generator: f64,
    /// Busy time of the servers' CPUs and of the load generator's.
    busy: Option<(f64, f64)>,
}

/// CPU time of these processes together.
fn cpu_of(pids: &[u32]) -> Duration {
    pids.iter()
        .map(|pid| proc_snapshot(&format!("/proc/{pid}")).cpu)
        .sum()
}

impl CpuClock {
    fn start(server: &Server) -> CpuClock {
        CpuClock::start_pids(&[server.child.id()])
    }

    /// The server side is several processes (hubs, and Redis).
    fn start_pids(pids: &[u32]) -> CpuClock {
        CpuClock {
            server: cpu_of(pids),
            generator: own_cpu(),
            busy: PINNED.get().map(|(s, c)| (cpus_busy(s), cpus_busy(c))),
            started: Instant::now(),
        }
    }

    fn stop(&self, server: &Server) -> CpuUse {
        self.stop_pids(&[server.child.id()])
    }

    fn stop_pids(&self, pids: &[u32]) -> CpuUse {
        let since = |now: Duration, then: Duration| now.saturating_sub(then).as_secs_f64();
        CpuUse {
            wall: self.started.elapsed().as_secs_f64().max(1e-9),
            server: since(cpu_of(pids), self.server),
            generator: since(own_cpu(), self.generator),
            busy: self
                .busy
                .zip(PINNED.get())
                .map(|((s, c), (sc, cc))| (since(cpus_busy(sc), s), since(cpus_busy(cc), c))),
        }
    }
}

impl CpuUse {
    /// Adds the CPU rows and the warnings (a saturated load generator, other
    /// programs on the pinned CPUs); returns the server's share of one core
    /// in percent.
    fn report(&self, kind: Kind, out: &mut Outcome) -> f64 {
        let cpus = generator_cpus();
        let share = self.generator / self.wall / cpus as f64;
        out.row(
            "server CPU",
            format!(
                "{:.2} s over {:.2} s ({:.0}% of one core)",
                self.server,
                self.wall,
                100.0 * self.server / self.wall
            ),
        );
        out.row(
            "load generator CPU",
            format!(
                "{:.2} s ({:.0}% of its {cpus} CPU(s))",
                self.generator,
                100.0 * share
            ),
        );
        if share >= SATURATED {
            out.note(format!(
                "the load generator was saturated ({:.0}% of its {cpus} CPU(s)): \
                 it may be the ceiling here, not {kind}",
                100.0 * share
            ));
        }
        if let (Some((server_busy, generator_busy)), Some((server_cpus, generator_cpus))) =
            (self.busy, PINNED.get())
        {
            self.others(out, "the server's", server_cpus, server_busy, self.server);
            self.others(
                out,
                "the load generator's",
                generator_cpus,
                generator_busy,
                self.generator,
            );
        }
        100.0 * self.server / self.wall
    }

    /// A warning when other programs took more than a tenth of `cpus` over
    /// the phase: then this run's figures say more about the machine.
    fn others(&self, out: &mut Outcome, whose: &str, cpus: &[usize], busy: f64, ours: f64) {
        let theirs = (busy - ours).max(0.0);
        let others = theirs / (self.wall * cpus.len().max(1) as f64);
        out.row(
            &format!("other programs on {whose} CPU"),
            format!("{:.0}% of it", 100.0 * others),
        );
        // Both counts are in ticks of 10 ms: a few ticks say nothing.
        if others > 0.1 && theirs > 0.05 {
            out.note(format!(
                "other programs took {:.0}% of {whose} CPU meanwhile: \
                 this run's figures are not reliable",
                100.0 * others
            ));
        }
    }
}

// ------------------------------------------------------------ the harness

/// The servers to compare and how often.
struct Bench {
    runs: usize,
    servers: Vec<Launch>,
    server_cpus: Option<String>,
    /// `--wshub-arg`s, passed after the scenario's own.
    wshub_args: Vec<String>,
}

/// What one run of a scenario found: rows to print now, figures for the
/// summary, and warnings for both.
#[derive(Default)]
struct Outcome {
    rows: Vec<(String, String)>,
    figures: Vec<Figure>,
    notes: Vec<String>,
}

struct Figure {
    name: &'static str,
    value: f64,
    show: fn(f64) -> String,
}

impl Outcome {
    fn row(&mut self, label: &str, value: impl Into<String>) {
        self.rows.push((label.to_owned(), value.into()));
    }

    fn figure(&mut self, name: &'static str, value: f64, show: fn(f64) -> String) {
        if value.is_finite() {
            self.figures.push(Figure { name, value, show });
        }
    }

    fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
}

impl Bench {
    /// Runs `body` against each server, `runs` times in turn, each time on a
    /// freshly started server.
    fn compare(
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
    fn compare_among(
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

    fn fanout_max(&self, subscribers: usize, secs: u64) -> Summary {
        let title = format!(
            "fanout-max: 1 publisher -> {subscribers} subscribers of one channel, \
             {PAYLOAD_BYTES}-byte payloads, flat out for {secs} s \
             (at most {ACK_WINDOW} publications unacknowledged, \
             {DELIVERY_WINDOW} unread per subscriber)"
        );
        let pace = Pace::Max {
            run_for: Duration::from_secs(secs),
        };
        self.compare(&title, &wshub_capacity(subscribers + 1), |server| {
            fanout(server, subscribers, pace, &[WS_PATH])
        })
    }

    /// wshub alone: the same fan-out to subscribers of one envelope and to
    /// subscribers of all three in equal parts, each encoded once per
    /// envelope in use.
    fn fanout_envelopes(&self, subscribers: usize, secs: u64) -> Summary {
        let title = format!(
            "fanout-envelopes: wshub, 1 publisher -> {subscribers} subscribers, \
             all standard or a third each standard/flat/payload, flat out for {secs} s"
        );
        let Some(launch) = self.servers.iter().find(|l| l.kind == Kind::Wshub) else {
            println!("  !! fanout-envelopes measures wshub only, which is not among --servers");
            return Summary::new(&title, self.runs, Vec::new(), Vec::new());
        };
        let pace = Pace::Max {
            run_for: Duration::from_secs(secs),
        };
        let audiences: [(&str, &[&str]); 2] =
            [("3 envelopes", &ENVELOPE_PATHS), ("1 envelope", &[WS_PATH])];
        self.compare_among(
            &title,
            &audiences.map(|(label, paths)| (label, launch, paths)),
            &wshub_capacity(subscribers + 1),
            |server, _, paths| fanout(server, subscribers, pace, paths),
        )
    }

    /// The wshub launch, or a note that it is not among `--servers`.
    fn wshub_only(&self, scenario: &str) -> Option<&Launch> {
        let launch = self.servers.iter().find(|l| l.kind == Kind::Wshub);
        if launch.is_none() {
            println!("  !! {scenario} measures wshub only, which is not among --servers");
        }
        launch
    }

    fn chaos(&self, subscribers: usize, rate: u64, secs: u64, drop_percent: u64) -> Summary {
        let title = format!(
            "chaos: wshub, {subscribers} subscribers of one channel at {rate} publications/s \
             for {secs} s, {drop_percent}% of them dropped and back with `since` every second"
        );
        let Some(launch) = self.wshub_only("chaos") else {
            return Summary::new(&title, self.runs, Vec::new(), Vec::new());
        };
        self.compare_among(
            &title,
            &[("wshub", launch, &[WS_PATH])],
            &wshub_capacity(subscribers * 2),
            |server, _, _| recovery::chaos(server, subscribers, rate, secs, drop_percent),
        )
    }

    fn history(&self, streams: usize, per_stream: u64) -> Summary {
        let title = format!(
            "history: wshub, {} publications over {streams} channels nobody follows, \
             history on (defaults) and off (--history-size 0)",
            streams as u64 * per_stream
        );
        let Some(launch) = self.wshub_only("history") else {
            return Summary::new(&title, self.runs, Vec::new(), Vec::new());
        };
        let on = Launch {
            kind: Kind::Wshub,
            program: launch.program.clone(),
            args: launch.args.clone(),
        };
        let mut off_args = launch.args.clone();
        off_args.extend(["--history-size".to_owned(), "0".to_owned()]);
        let off = Launch {
            kind: Kind::Wshub,
            program: launch.program.clone(),
            args: off_args,
        };
        self.compare_among(
            &title,
            &[
                ("history on", &on, &[WS_PATH]),
                ("history off", &off, &[WS_PATH]),
            ],
            &[],
            |server, _, _| recovery::history(server, streams, per_stream),
        )
    }

    fn catch_up(&self, mib: u64) -> Summary {
        let title = format!(
            "catch-up: wshub, a client resumes a channel and stops reading in the middle of a \
             {mib} MiB catch-up (half, at most 32 MiB, in the history, of which it reads a \
             tenth; the rest published meanwhile), --history-size 1000000 (the 64 MiB \
             --history-bytes binds)"
        );
        let Some(launch) = self.wshub_only("catch-up") else {
            return Summary::new(&title, self.runs, Vec::new(), Vec::new());
        };
        let args = ["--history-size".to_owned(), "1000000".to_owned()];
        self.compare_among(
            &title,
            &[("wshub", launch, &[WS_PATH])],
            &args,
            |server, _, _| recovery::catch_up(server, mib),
        )
    }

    /// A request -> reply round trip answered by the hub itself (`ping`),
    /// by a program through the library receiver, and by a backend's
    /// service connection.
    fn request(&self, clients: usize, rate: u64, secs: u64) -> Summary {
        let pace = match rate {
            0 => "each sending its next as soon as its answer is in".to_owned(),
            rate => format!("{rate} requests/s in all"),
        };
        let title = format!(
            "request: {clients} clients, request -> reply by correlationId, {pace}, for {secs} s: \
             answered by the hub (ping), the library receiver, a service connection"
        );
        let Some(hub) = self.wshub_only("request") else {
            return Summary::new(&title, self.runs, Vec::new(), Vec::new());
        };
        let library = match library_launch() {
            Ok(launch) => launch,
            Err(why) => {
                println!("  !! {why}");
                return Summary::new(&title, self.runs, Vec::new(), vec![why]);
            }
        };
        let mut service_args = hub.args.clone();
        service_args.extend(["--admin-token".to_owned(), SERVICE_TOKEN.to_owned()]);
        let service = Launch {
            kind: Kind::Wshub,
            program: hub.program.clone(),
            args: service_args,
        };
        let run_for = Duration::from_secs(secs);
        self.compare_among(
            &title,
            &[
                ("hub (ping)", hub, &[WS_PATH]),
                ("library", &library, &[WS_PATH]),
                ("service", &service, &[WS_PATH]),
            ],
            &wshub_capacity(clients + 1),
            |server, label, _| match label {
                "hub (ping)" => round_trips(server, clients, rate, run_for, "ping", "pong"),
                "library" => round_trips(server, clients, rate, run_for, "echo", "echoed"),
                _ => with_service(server, |server| {
                    round_trips(server, clients, rate, run_for, "echo", "echoed")
                }),
            },
        )
    }

    fn fanout_paced(&self, subscribers: usize, rate: u64, secs: u64) -> Summary {
        let title = format!(
            "fanout-paced: 1 publisher -> {subscribers} subscribers at {rate} publications/s \
             for {secs} s ({} deliveries/s offered)",
            group(subscribers as f64 * rate as f64)
        );
        let pace = Pace::Paced {
            rate: rate.max(1),
            count: rate.max(1) * secs,
        };
        self.compare(&title, &wshub_capacity(subscribers + 1), |server| {
            fanout(server, subscribers, pace, &[WS_PATH])
        })
    }

    fn idle(&self, n: usize) -> Summary {
        let title = format!("idle: {n} silent WebSocket clients");
        if let Some(limit) = own_fd_limit().filter(|&l| l < n as u64 + 200) {
            println!(
                "  !! this process may open only {limit} files (ulimit -n): \
                 fewer than {n} clients will connect"
            );
        }
        self.compare(&title, &wshub_capacity(n), |server| idle(server, n))
    }

    fn ping(&self, clients: usize, rate: u64, secs: u64) -> Summary {
        let pace = match rate {
            0 => "each sending its next as soon as its pong is in".to_owned(),
            rate => format!("{rate} pings/s in all"),
        };
        let title = format!(
            "ping: {clients} clients, application ping -> pong by correlationId, \
             {pace}, for {secs} s"
        );
        self.compare(&title, &wshub_capacity(clients), |server| {
            ping(server, clients, rate, Duration::from_secs(secs))
        })
    }

    fn connect(&self, n: usize, at_once: usize) -> Summary {
        let title = format!(
            "connect: {n} connections, {at_once} at a time, each done once it has the welcome"
        );
        self.compare(&title, &wshub_capacity(n), |server| {
            connect(server, n, at_once)
        })
    }
}

// ---------------------------------------------------------------- scenarios

#[derive(Clone, Copy)]
enum Pace {
    /// As fast as the server answers, for this long.
    Max { run_for: Duration },
    /// `count` publications, `rate` per second.
    Paced { rate: u64, count: u64 },
}

/// One publisher and `subscribers` subscribers of [`CHANNEL`], each
/// connecting on one of `paths` in turn.
fn fanout(server: &mut Server, subscribers: usize, pace: Pace, paths: &[&str]) -> Outcome {
    let fleet = Fleet {
        hubs: vec![server],
        pids: Vec::new(),
    };
    fanout_fleet(&fleet, subscribers, pace, paths).0
}

/// The servers a fan-out runs on: subscriber `i` connects to
/// `hubs[i % hubs.len()]`, the publisher to the first; the server side's
/// CPU is theirs and `pids`' (Redis).
struct Fleet<'a> {
    hubs: Vec<&'a Server>,
    pids: Vec<u32>,
}

impl Fleet<'_> {
    fn all_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.hubs.iter().map(|h| h.child.id()).collect();
        pids.extend(&self.pids);
        pids
    }
}

/// [`fanout`] on a fleet; also returns how many publications there were.
fn fanout_fleet(
    fleet: &Fleet<'_>,
    subscribers: usize,
    pace: Pace,
    paths: &[&str],
) -> (Outcome, u64) {
    let mut out = Outcome::default();
    let server = fleet.hubs[0];
    let mut opened = Opened {
        clients: Vec::with_capacity(subscribers),
        errors: Tally::default(),
        took: Duration::ZERO,
        latency: Histogram::default(),
    };
    let per_hub = subscribers.div_ceil(fleet.hubs.len());
    for (i, hub) in fleet.hubs.iter().enumerate() {
        let n = per_hub.min(subscribers.saturating_sub(i * per_hub));
        let part = open_many(hub.addr, n, CONNECT_AT_ONCE, Some(CHANNEL), paths);
        opened.clients.extend(part.clients);
        opened.errors.merge(part.errors);
        opened.took += part.took;
        opened.latency.merge(&part.latency);
    }
    let subscribed = opened.clients.len();
    out.row("subscribers", format!("{subscribed} / {subscribers}"));
    out.row("connect errors", opened.errors.summary());
    if subscribed < subscribers {
        out.note(format!(
            "{} took only {subscribed} of {subscribers} subscribers: {}",
            server.kind,
            opened.errors.summary()
        ));
    }
    let publisher = match open_client(server.addr, WS_PATH, None) {
        Ok(publisher) => publisher,
        Err(why) => {
            out.note(format!("the publisher could not connect: {why}"));
            return (out, 0);
        }
    };
    if subscribed == 0 {
        out.note("no subscriber connected");
        return (out, 0);
    }

    let shared = Shared::default();
    let threads = generator_cpus().clamp(1, subscribed);
    let mut groups: Vec<Vec<Sub>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, client) in opened.clients.into_iter().enumerate() {
        groups[i % threads].push(Sub::new(client));
    }
    let pause = match pace {
        Pace::Max { .. } => BATCH_PAUSE,
        Pace::Paced { .. } => Duration::ZERO,
    };

    let (published, report, on_time, cpu) = thread::scope(|scope| {
        let readers: Vec<_> = groups
            .into_iter()
            .map(|subs| {
                let shared = &shared;
                thread::Builder::new()
                    .name("bench-reader".into())
                    .spawn_scoped(scope, move || read_subscribers(subs, shared, pause))
                    .expect("start a reader thread")
            })
            .collect();
        let pids = fleet.all_pids();
        let clock = CpuClock::start_pids(&pids);
        let published = match pace {
            Pace::Max { run_for } => publish_max(publisher, run_for, subscribed, &shared),
            Pace::Paced { rate, count } => publish_paced(publisher, rate, count),
        };
        shared.total.store(published.count, Ordering::Release);
        let on_time = match pace {
            Pace::Max { .. } => None,
            Pace::Paced { .. } => {
                thread::sleep(PACED_GRACE);
                Some(shared.delivered.load(Ordering::Acquire))
            }
        };
        let drained = wait_for(DRAIN_LIMIT, || {
            shared.complete.load(Ordering::Acquire) >= subscribed
        });
        let cpu = clock.stop_pids(&pids);
        if !drained {
            println!(
                "  !! gave up waiting {} s for the last deliveries",
                DRAIN_LIMIT.as_secs()
            );
        }
        shared.stop.store(true, Ordering::Release);
        let report = readers
            .into_iter()
            .map(|r| r.join().expect("reader thread"))
            .fold(ReaderReport::default(), ReaderReport::merge);
        (published, report, on_time, cpu)
    });

    let offered = published.count * subscribed as u64;
    out.row("publications", published.count.to_string());
    if let Some(error) = &published.error {
        out.note(format!("the publisher stopped: {error}"));
    }
    match pace {
        Pace::Max { .. } => {
            out.row(
                "acks (published)",
                format!(
                    "{} ({} did not count every subscriber; {} errors)",
                    published.acks, published.short_acks, published.errors
                ),
            );
            out.row(
                "publisher held back by",
                format!(
                    "acks {} times, unread deliveries {} times",
                    published.waits_ack, published.waits_delivery
                ),
            );
        }
        Pace::Paced { .. } => {
            out.row(
                "publisher lateness (max)",
                show_us(published.max_late_us as f64),
            );
            if published.max_late_us > 50_000 {
                out.note(format!(
                    "the publisher fell up to {} behind its schedule: \
                     the load generator did not get its CPU",
                    show_us(published.max_late_us as f64)
                ));
            }
        }
    }
    let span_ns = report.last_rx_ns.saturating_sub(published.first_ns).max(1);
    let rate = report.received as f64 * 1e9 / span_ns as f64;
    out.row(
        "deliveries",
        format!("{} of {} offered", report.received, offered),
    );
    out.row(
        "first publication -> last delivery",
        format!("{:.3} s", span_ns as f64 / 1e9),
    );
    out.row("deliveries/s", group(rate));
    out.row("latency (publish -> receive)", report.latency.summary());
    out.row(
        "complete & in order",
        format!("{} / {subscribed} subscribers", report.complete),
    );
    out.row("gaps, duplicates, reorders", report.anomalies.to_string());
    out.row("subscribers closed", report.closes.summary());
    if report.closes.count > 0 {
        out.note(format!(
            "{} closed {} subscribers: {}",
            server.kind,
            report.closes.count,
            report.closes.summary()
        ));
    }
    if report.complete < subscribed {
        out.note(format!(
            "only {} of {subscribed} subscribers got every message exactly once and in order",
            report.complete
        ));
    }
    if server.kind == Kind::Wshub {
        for hub in &fleet.hubs {
            out.row(
                "wshub slow consumers",
                metric(&metrics(hub.addr), "wshub_slow_consumers_total"),
            );
        }
    }
    let server_cpu = cpu.report(server.kind, &mut out);

    let complete = 100.0 * report.complete as f64 / subscribers as f64;
    match pace {
        Pace::Max { .. } => out.figure("deliveries/s", rate, group),
        Pace::Paced { .. } => {
            let on_time = on_time.unwrap_or(0).min(offered);
            let share = 100.0 * on_time as f64 / offered.max(1) as f64;
            out.row(
                "delivered within 1 s of the end",
                format!("{on_time} ({share:.2}% of offered)"),
            );
            out.figure("delivered in time", share, percent);
            out.figure(
                "delivered in all",
                100.0 * report.received as f64 / offered.max(1) as f64,
                percent,
            );
        }
    }
    out.figure("complete & in order", complete, percent);
    out.figure("latency p50", report.latency.quantile(0.50), show_us);
    out.figure("latency p99", report.latency.quantile(0.99), show_us);
    out.figure("latency max", report.latency.max as f64, show_us);
    out.figure("server CPU", server_cpu, percent);
    if report.received > 0 {
        out.figure(
            "server CPU per delivery",
            cpu.server * 1e9 / report.received as f64,
            show_ns,
        );
    }
    (out, published.count)
}

/// `n` silent clients: what each costs the server, and what it does idle.
fn idle(server: &mut Server, n: usize) -> Outcome {
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
fn map_ceiling(per_connection: f64, base: u64) -> String {
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

/// `clients` clients sending application pings, `rate` per second in all
/// (0: each as soon as its last pong is in), for `run_for`.
fn ping(server: &mut Server, clients: usize, rate: u64, run_for: Duration) -> Outcome {
    round_trips(server, clients, rate, run_for, "ping", "pong")
}

/// `clients` clients each sending `request`s and waiting for the `reply`
/// with its `correlationId`, `rate` per second in all (0: flat out).
fn round_trips(
    server: &mut Server,
    clients: usize,
    rate: u64,
    run_for: Duration,
    request: &str,
    reply: &str,
) -> Outcome {
    let mut out = Outcome::default();
    let reply_type = format!(r#""type":"{reply}""#);
    let reply_type = reply_type.as_str();
    let opened = open_many(server.addr, clients, CONNECT_AT_ONCE, None, &[WS_PATH]);
    let connected = opened.clients.len();
    out.row("clients", format!("{connected} / {clients}"));
    out.row("connect errors", opened.errors.summary());
    if connected == 0 {
        out.note("no client connected");
        return out;
    }
    // Each client pings every `period`, the clients spread evenly over it.
    let period_ns = (rate > 0).then(|| connected as u64 * 1_000_000_000 / rate);
    let barrier = Barrier::new(connected + 1);
    let (results, cpu) = thread::scope(|scope| {
        let barrier = &barrier;
        let workers: Vec<_> = opened
            .clients
            .into_iter()
            .enumerate()
            .map(|(i, mut ws)| {
                thread::Builder::new()
                    .name("bench-rtt".into())
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || {
                        barrier.wait();
                        let start = Instant::now();
                        let offset = period_ns.map_or(0, |p| p * i as u64 / connected as u64);
                        let mut latency = Histogram::default();
                        let mut behind = 0u64;
                        let mut k = 0u64;
                        loop {
                            if let Some(period) = period_ns {
                                let due = start + Duration::from_nanos(offset + period * k);
                                let now = Instant::now();
                                if due > now {
                                    thread::sleep(due - now);
                                } else if now - due > Duration::from_nanos(period) {
                                    behind += 1;
                                }
                            }
                            if start.elapsed() >= run_for {
                                break;
                            }
                            let sent = Instant::now();
                            let message = format!(r#"{{"type":"{request}","correlationId":{k}}}"#);
                            ws.send_text(&message)?;
                            loop {
                                let answer = ws.expect_text()?;
                                if answer.contains(reply_type)
                                    && field(&answer, "correlationId") == Some(k)
                                {
                                    break;
                                }
                            }
                            latency.record(sent.elapsed().as_micros() as u64);
                            k += 1;
                        }
                        Ok::<_, String>((latency, behind))
                    })
                    .expect("start a round-trip thread")
            })
            .collect();
        barrier.wait();
        let clock = CpuClock::start(server);
        let results: Vec<_> = workers
            .into_iter()
            .map(|w| w.join().expect("round-trip thread"))
            .collect();
        (results, clock.stop(server))
    });
    let mut latency = Histogram::default();
    let mut errors = Tally::default();
    let mut behind = 0;
    for result in results {
        match result {
            Ok((l, b)) => {
                latency.merge(&l);
                behind += b;
            }
            Err(e) => errors.add(e),
        }
    }
    let achieved = latency.n as f64 / cpu.wall;
    out.row("client errors", errors.summary());
    out.row("round trips", latency.n.to_string());
    out.row(
        "round trips/s",
        match rate {
            0 => group(achieved),
            rate => format!("{} (offered {rate})", group(achieved)),
        },
    );
    if rate > 0 {
        out.row("requests a period late", behind.to_string());
    }
    out.row("latency", latency.summary());
    if errors.count > 0 {
        out.note(format!(
            "{} clients failed: {}",
            errors.count,
            errors.summary()
        ));
    }
    let server_cpu = cpu.report(server.kind, &mut out);
    out.figure("round trips/s", achieved, group);
    out.figure("latency p50", latency.quantile(0.50), show_us);
    out.figure("latency p99", latency.quantile(0.99), show_us);
    out.figure("latency max", latency.max as f64, show_us);
    out.figure("server CPU", server_cpu, percent);
    out
}

/// The admin token of the request scenario's service setup.
const SERVICE_TOKEN: &str = "bench-service-token";

/// Runs `body` while a service connection (a thread of this process)
/// answers every `echo` with `echoed`, as a backend in another language would.
fn with_service(server: &mut Server, body: impl FnOnce(&mut Server) -> Outcome) -> Outcome {
    let path = format!("{WS_PATH}?token={SERVICE_TOKEN}");
    let mut ws = match RawWs::handshake(server.addr, &path).and_then(|mut ws| {
        ws.expect_text()?;
        Ok(ws)
    }) {
        Ok(ws) => ws,
        Err(e) => {
            let mut out = Outcome::default();
            out.note(format!("the service connection could not connect: {e}"));
            return out;
        }
    };
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let stop = &stop;
        let answering = scope.spawn(move || {
            let _ = ws.stream.set_read_timeout(Some(Duration::from_millis(50)));
            let mut answered = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let message = match ws.read_text() {
                    Ok(Some(message)) => message,
                    Ok(None) => continue,
                    Err(_) => break,
                };
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&message) else {
                    continue;
                };
                if event["type"] != "client_message" {
                    continue;
                }
                let request = &event["data"]["message"];
                let answer = serde_json::json!({
                    "type": "send",
                    "clientId": event["data"]["clientId"],
                    "message": {
                        "type": "echoed",
                        "data": request.get("data"),
                        "correlationId": request.get("correlationId"),
                    },
                });
                if ws.send_text(&answer.to_string()).is_err() {
                    break;
                }
                answered += 1;
            }
            answered
        });
        let mut out = body(server);
        stop.store(true, Ordering::Relaxed);
        let answered = answering.join().unwrap_or(0);
        out.row("answered by the service", group(answered as f64));
        out
    })
}

/// `n` handshakes, `at_once` at a time; everyone stays connected till the end.
fn connect(server: &mut Server, n: usize, at_once: usize) -> Outcome {
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
    out
}

// --------------------------------------------------------- the publishers

/// What a publisher did.
#[derive(Default)]
struct Published {
    count: u64,
    /// When the first publication went out (ns on [`now_ns`]'s clock).
    first_ns: u64,
    acks: u64,
    /// `published` acks that counted fewer than every subscriber.
    short_acks: u64,
    /// `error` replies.
    errors: u64,
    waits_ack: u64,
    waits_delivery: u64,
    max_late_us: u64,
    error: Option<String>,
}

/// Publishes for `run_for` as fast as the windows allow: at most
/// [`ACK_WINDOW`] publications unanswered, at most [`DELIVERY_WINDOW`]
/// ahead of what the average subscriber has read.
fn publish_max(mut ws: RawWs, run_for: Duration, subscribers: usize, shared: &Shared) -> Published {
    let mut done = Published::default();
    // Wait for acks a millisecond at a time, so the deliveries window is
    // checked again soon.
    ws.stream
        .set_read_timeout(Some(Duration::from_millis(1)))
        .expect("set the publisher's read timeout");
    let mut frames = Vec::with_capacity(64 * 1024);
    let started = Instant::now();
    done.first_ns = now_ns();
    loop {
        let publishing = started.elapsed() < run_for;
        let outstanding = done.count - done.acks - done.errors;
        if !publishing && outstanding == 0 {
            break;
        }
        if !publishing && started.elapsed() > run_for + STEP_TIMEOUT {
            done.error = Some(format!("{outstanding} publications never acknowledged"));
            break;
        }
        if publishing {
            let read = shared.delivered.load(Ordering::Acquire) / subscribers as u64;
            let by_acks = ACK_WINDOW.saturating_sub(outstanding);
            let by_deliveries = (read + DELIVERY_WINDOW).saturating_sub(done.count);
            let room = by_acks.min(by_deliveries);
            if room == 0 {
                if by_acks == 0 {
                    done.waits_ack += 1;
                } else {
                    done.waits_delivery += 1;
                }
            }
            frames.clear();
            for _ in 0..room {
                push_publish(&mut frames, done.count, now_ns(), Some(done.count));
                done.count += 1;
            }
            if !frames.is_empty()
                && let Err(e) = ws.stream.write_all(&frames)
            {
                done.error = Some(format!("write: {e}"));
                break;
            }
        }
        match ws.read_text() {
            Ok(Some(reply)) if reply.contains(r#""type":"published""#) => {
                done.acks += 1;
                if field(&reply, "delivered") != Some(subscribers as u64) {
                    done.short_acks += 1;
                }
            }
            Ok(Some(reply)) if reply.contains(r#""type":"error""#) => {
                done.errors += 1;
                if done.error.is_none() {
                    done.error = Some(format!("the server answered {reply}"));
                }
            }
            Ok(_) => {}
            Err(e) => {
                done.error = Some(e);
                break;
            }
        }
    }
    done
}

/// `count` publications, `rate` per second, each stamped with when it went
/// out. Those that fell due together (the thread overslept) go in one write;
/// how late the publisher ran is reported on its own, so the latency stays
/// the server's.
fn publish_paced(mut ws: RawWs, rate: u64, count: u64) -> Published {
    let mut done = Published::default();
    let mut frames = Vec::with_capacity(16 * 1024);
    let start = now_ns() + 10_000_000;
    done.first_ns = start;
    let period = 1_000_000_000 / rate;
    while done.count < count {
        let due = start + done.count * period;
        let now = now_ns();
        if due > now {
            thread::sleep(Duration::from_nanos(due - now));
            continue;
        }
        done.max_late_us = done.max_late_us.max((now - due) / 1000);
        frames.clear();
        while done.count < count && start + done.count * period <= now {
            push_publish(&mut frames, done.count, now, None);
            done.count += 1;
        }
        if let Err(e) = ws.stream.write_all(&frames) {
            done.error = Some(format!("write: {e}"));
            break;
        }
    }
    done
}

/// A `publish` frame whose `data` is [`PAYLOAD_BYTES`] of JSON carrying its
/// sequence number and send time under keys nothing else uses.
fn push_publish(frames: &mut Vec<u8>, seq: u64, sent_ns: u64, correlation: Option<u64>) {
    let mut data = format!(r#"{{"Kseq":{seq},"Ksent":{sent_ns},"pad":""#);
    let pad = PAYLOAD_BYTES.saturating_sub(data.len() + 2);
    data.extend(std::iter::repeat_n('x', pad));
    data.push_str("\"}");
    let message = match correlation {
        Some(id) => format!(
            r#"{{"type":"publish","channel":"{CHANNEL}","correlationId":{id},"data":{data}}}"#
        ),
        None => format!(r#"{{"type":"publish","channel":"{CHANNEL}","data":{data}}}"#),
    };
    push_frame(frames, OP_TEXT, message.as_bytes());
}

// ------------------------------------------------------------ the readers

/// What publisher and readers share.
struct Shared {
    /// Deliveries read so far, every subscriber together.
    delivered: AtomicU64,
    /// How many publications there were, once the publisher is done.
    total: AtomicU64,
    /// Subscribers that have all `total`, or closed.
    complete: AtomicUsize,
    stop: AtomicBool,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared {
            delivered: AtomicU64::new(0),
            total: AtomicU64::new(u64::MAX),
            complete: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }
}

/// One subscriber as a reader sees it.
struct Sub {
    stream: mio::net::TcpStream,
    /// The start of a frame that has not all arrived.
    pending: Vec<u8>,
    next: u64,
    received: u64,
    anomalies: u64,
    open: bool,
    counted: bool,
}

impl Sub {
    fn new(ws: RawWs) -> Sub {
        ws.stream
            .set_nonblocking(true)
            .expect("make a subscriber non-blocking");
        Sub {
            stream: mio::net::TcpStream::from_std(ws.stream),
            pending: ws.buf,
            next: 0,
            received: 0,
            anomalies: 0,
            open: true,
            counted: false,
        }
    }

    fn close(&mut self, report: &mut ReaderReport, why: String) {
        self.open = false;
        report.closes.add(why);
    }

    /// Handles the complete frames at the start of `data`; returns how many
    /// bytes they took and how many were publications.
    fn consume(&mut self, data: &[u8], now: u64, report: &mut ReaderReport) -> (usize, u64) {
        let mut at = 0;
        let mut got = 0;
        while self.open {
            match parse_frame(&data[at..]) {
                Parse::Partial => break,
                Parse::Bad(why) => self.close(report, why.to_owned()),
                Parse::Frame {
                    fin,
                    opcode,
                    start,
                    end,
                } => {
                    let payload = &data[at + start..at + end];
                    at += end;
                    match opcode {
                        OP_TEXT if fin => got += u64::from(self.on_text(payload, now, report)),
                        OP_CLOSE => self.close(report, close_reason(payload)),
                        OP_PING => {
                            let mut pong = Vec::with_capacity(payload.len() + 8);
                            push_frame(&mut pong, OP_PONG, payload);
                            let _ = self.stream.write(&pong);
                        }
                        OP_TEXT => self.close(report, "fragmented message".to_owned()),
                        _ => {}
                    }
                }
            }
        }
        (at, got)
    }

    fn on_text(&mut self, payload: &[u8], now: u64, report: &mut ReaderReport) -> bool {
        let Some(seq) = number_after(payload, br#""Kseq":"#) else {
            return false;
        };
        let sent = number_after(payload, br#""Ksent":"#).unwrap_or(now);
        if seq != self.next {
            self.anomalies += 1;
        }
        self.next = self.next.max(seq + 1);
        self.received += 1;
        report.latency.record(now.saturating_sub(sent) / 1000);
        true
    }

    /// Reads until the socket has nothing more; returns the publications read.
    fn drain(&mut self, buf: &mut [u8], report: &mut ReaderReport) -> u64 {
        let mut got = 0;
        while self.open {
            let keep = self.pending.len();
            if keep > buf.len() / 2 {
                self.close(report, format!("a frame of more than {keep} bytes"));
                break;
            }
            buf[..keep].copy_from_slice(&self.pending);
            let n = match self.stream.read(&mut buf[keep..]) {
                Ok(0) => {
                    self.close(report, "EOF without a close frame".to_owned());
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.close(report, format!("read: {e}"));
                    break;
                }
            };
            let now = now_ns();
            let data = &buf[..keep + n];
            let (used, publications) = self.consume(data, now, report);
            got += publications;
            if publications > 0 {
                report.last_rx_ns = report.last_rx_ns.max(now);
            }
            self.pending.clear();
            self.pending.extend_from_slice(&data[used..]);
        }
        got
    }
}

#[derive(Default)]
struct ReaderReport {
    latency: Histogram,
    received: u64,
    last_rx_ns: u64,
    complete: usize,
    anomalies: u64,
    closes: Tally,
}

impl ReaderReport {
    fn merge(mut self, other: ReaderReport) -> ReaderReport {
        self.latency.merge(&other.latency);
        self.received += other.received;
        self.last_rx_ns = self.last_rx_ns.max(other.last_rx_ns);
        self.complete += other.complete;
        self.anomalies += other.anomalies;
        self.closes.merge(other.closes);
        self
    }
}

/// One reader thread: epoll over its subscribers until told to stop.
fn read_subscribers(mut subs: Vec<Sub>, shared: &Shared, pause: Duration) -> ReaderReport {
    let mut report = ReaderReport::default();
    let mut poll = Poll::new().expect("create an epoll instance");
    let mut buf = vec![0u8; READ_BUFFER];
    let now = now_ns();
    let mut got = 0;
    for (i, sub) in subs.iter_mut().enumerate() {
        // What came with the `subscribed` reply, before any publication.
        let pending = std::mem::take(&mut sub.pending);
        let (used, publications) = sub.consume(&pending, now, &mut report);
        got += publications;
        sub.pending = pending[used..].to_vec();
        poll.registry()
            .register(&mut sub.stream, Token(i), Interest::READABLE)
            .expect("register a subscriber with epoll");
    }
    let mut events = Events::with_capacity(4096);
    let deadline = Instant::now() + PHASE_LIMIT + DRAIN_LIMIT;
    while !shared.stop.load(Ordering::Acquire) && Instant::now() < deadline {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(5))) {
            assert_eq!(e.kind(), ErrorKind::Interrupted, "epoll_wait: {e}");
            continue;
        }
        for event in &events {
            if let Some(sub) = subs.get_mut(event.token().0) {
                got += sub.drain(&mut buf, &mut report);
            }
        }
        if got > 0 {
            report.received += got;
            shared.delivered.fetch_add(got, Ordering::AcqRel);
        }
        let total = shared.total.load(Ordering::Acquire);
        if total != u64::MAX {
            for sub in subs
                .iter_mut()
                .filter(|s| !s.counted && (!s.open || s.next >= total))
            {
                sub.counted = true;
                shared.complete.fetch_add(1, Ordering::AcqRel);
            }
        }
        if got > 0 && !pause.is_zero() {
            thread::sleep(pause);
        }
        got = 0;
    }
    let total = shared.total.load(Ordering::Acquire);
    for sub in &subs {
        report.anomalies += sub.anomalies;
        if sub.next == total && sub.received == total && sub.anomalies == 0 {
            report.complete += 1;
        }
    }
    report
}

// ---------------------------------------------------------------- clients

/// A client past the handshake, on a blocking socket, with the bytes read
/// past the last complete frame.
struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Connects and upgrades to a WebSocket, reads nothing more.
    fn handshake(addr: SocketAddr, path: &str) -> Result<RawWs, String> {
        let mut stream =
            TcpStream::connect_timeout(&addr, STEP_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(Some(STEP_TIMEOUT)).ok();
        stream.set_write_timeout(Some(STEP_TIMEOUT)).ok();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("send the upgrade request: {e}"))?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        let head_end = loop {
            let n = match stream.read(&mut chunk) {
                Ok(0) => return Err("closed during the handshake".to_owned()),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read the upgrade response: {e}")),
            };
            buf.extend_from_slice(&chunk[..n]);
            if let Some(at) = find(&buf, b"\r\n\r\n") {
                break at + 4;
            }
            if buf.len() > 16 * 1024 {
                return Err("an upgrade response head over 16 KiB".to_owned());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]);
        let status = head.lines().next().unwrap_or_default().to_owned();
        if !status.starts_with("HTTP/1.1 101") {
            let body = String::from_utf8_lossy(&buf[head_end..]);
            return Err(format!("refused: {status} {}", body.trim()));
        }
        buf.drain(..head_end);
        Ok(RawWs { stream, buf })
    }

    fn send_text(&mut self, text: &str) -> Result<(), String> {
        let mut frame = Vec::with_capacity(text.len() + 14);
        push_frame(&mut frame, OP_TEXT, text.as_bytes());
        self.stream
            .write_all(&frame)
            .map_err(|e| format!("write: {e}"))
    }

    /// The next text message, or `None` when the socket's read timeout (or
    /// non-blocking mode) says there is none yet. Pings are answered.
    fn read_text(&mut self) -> Result<Option<String>, String> {
        loop {
            match parse_frame(&self.buf) {
                Parse::Frame {
                    fin,
                    opcode,
                    start,
                    end,
                } => {
                    let payload = self.buf[start..end].to_vec();
                    self.buf.drain(..end);
                    match opcode {
                        OP_TEXT if fin => {
                            return String::from_utf8(payload)
                                .map(Some)
                                .map_err(|_| "a text frame that is not UTF-8".to_owned());
                        }
                        OP_TEXT => return Err("a fragmented message".to_owned()),
                        OP_CLOSE => {
                            return Err(format!(
                                "closed by the server: {}",
                                close_reason(&payload)
                            ));
                        }
                        OP_PING => {
                            let mut pong = Vec::with_capacity(payload.len() + 8);
                            push_frame(&mut pong, OP_PONG, &payload);
                            self.stream
                                .write_all(&pong)
                                .map_err(|e| format!("write: {e}"))?;
                        }
                        _ => {}
                    }
                }
                Parse::Partial => {
                    let mut chunk = [0u8; 16 * 1024];
                    match self.stream.read(&mut chunk) {
                        Ok(0) => return Err("connection closed".to_owned()),
                        Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::WouldBlock
                                    | ErrorKind::TimedOut
                                    | ErrorKind::Interrupted
                            ) =>
                        {
                            return Ok(None);
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(format!("read: {e}")),
                    }
                }
                Parse::Bad(why) => return Err(why.to_owned()),
            }
        }
    }

    /// The next text message within the socket's read timeout.
    fn expect_text(&mut self) -> Result<String, String> {
        self.read_text()?
            .ok_or_else(|| format!("no message within {} s", STEP_TIMEOUT.as_secs()))
    }

    /// Whether the server still has this (silent) client: nothing to read,
    /// or only what an open connection gets.
    fn still_open(&mut self) -> bool {
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        loop {
            match self.read_text() {
                Ok(None) => return true,
                Ok(Some(_)) => {}
                Err(_) => return false,
            }
        }
    }
}

/// A client past the `connection` welcome, subscribed to `channel` if one is
/// given.
fn open_client(addr: SocketAddr, path: &str, channel: Option<&str>) -> Result<RawWs, String> {
    let mut ws = RawWs::handshake(addr, path)?;
    let welcome = ws.expect_text()?;
    // `connection`, or `connection:established` in the payload envelope.
    if !welcome.contains(r#""type":"connection"#) {
        return Err(format!("expected the welcome, got {welcome}"));
    }
    if let Some(channel) = channel {
        let subscribe =
            format!(r#"{{"type":"subscribe","channel":"{channel}","correlationId":"sub"}}"#);
        ws.send_text(&subscribe)?;
        loop {
            let reply = ws.expect_text()?;
            if reply.contains(r#""type":"subscribed""#) {
                break;
            }
            if reply.contains(r#""type":"error""#) {
                return Err(format!("subscribe refused: {reply}"));
            }
        }
    }
    Ok(ws)
}

/// Clients that made it, the failures, how long it took, and how long each
/// successful one took.
struct Opened {
    clients: Vec<RawWs>,
    errors: Tally,
    took: Duration,
    latency: Histogram,
}

/// Opens `n` clients, `at_once` at a time (one thread each), until done,
/// [`PHASE_LIMIT`] passes or more than half have failed.
/// Client `i` connects on `paths[i % paths.len()]`.
fn open_many(
    addr: SocketAddr,
    n: usize,
    at_once: usize,
    channel: Option<&str>,
    paths: &[&str],
) -> Opened {
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let start = Instant::now();
    let parts: Vec<(Vec<RawWs>, Tally, Histogram)> = thread::scope(|scope| {
        let workers: Vec<_> = (0..at_once.clamp(1, n.max(1)))
            .map(|_| {
                let (next, failures) = (&next, &failures);
                thread::Builder::new()
                    .name("bench-connect".into())
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || {
                        let mut part = (Vec::new(), Tally::default(), Histogram::default());
                        while start.elapsed() < PHASE_LIMIT
                            && failures.load(Ordering::Relaxed) <= n / 2 + 100
                        {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= n {
                                break;
                            }
                            let began = Instant::now();
                            match open_client(addr, paths[i % paths.len()], channel) {
                                Ok(ws) => {
                                    part.2.record(began.elapsed().as_micros() as u64);
                                    part.0.push(ws);
                                }
                                Err(e) => {
                                    failures.fetch_add(1, Ordering::Relaxed);
                                    part.1.add(e);
                                }
                            }
                        }
                        part
                    })
                    .expect("start a connect thread")
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("connect thread"))
            .collect()
    });
    let mut opened = Opened {
        clients: Vec::with_capacity(n),
        errors: Tally::default(),
        took: start.elapsed(),
        latency: Histogram::default(),
    };
    for (clients, errors, latency) in parts {
        opened.clients.extend(clients);
        opened.errors.merge(errors);
        opened.latency.merge(&latency);
    }
    let tried = next.load(Ordering::Relaxed).min(n);
    if tried < n {
        opened
            .errors
            .add(format!("gave up after {tried} of {n} attempts"));
    }
    opened
}

// --------------------------------------------------------- WebSocket frames

/// A client frame (masked) onto `out`.
fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
}

enum Parse {
    /// A whole frame: its payload is `start..end`, and `end` is its length.
    Frame {
        fin: bool,
        opcode: u8,
        start: usize,
        end: usize,
    },
    Partial,
    Bad(&'static str),
}

/// The server frame at the start of `buf`, if it has all arrived.
fn parse_frame(buf: &[u8]) -> Parse {
    let [b0, b1, rest @ ..] = buf else {
        return Parse::Partial;
    };
    if b1 & 0x80 != 0 {
        return Parse::Bad("a masked frame from the server");
    }
    let (len, start) = match b1 & 0x7f {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 4),
            _ => return Parse::Partial,
        },
        127 => match rest.get(..8) {
            Some(bytes) => (u64::from_be_bytes(bytes.try_into().expect("8 bytes")), 10),
            None => return Parse::Partial,
        },
        n => (u64::from(n), 2),
    };
    if len > 16 << 20 {
        return Parse::Bad("a frame over 16 MiB");
    }
    let end = start + len as usize;
    if buf.len() < end {
        return Parse::Partial;
    }
    Parse::Frame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        start,
        end,
    }
}

/// `code reason` from a close frame's payload.
fn close_reason(payload: &[u8]) -> String {
    match payload {
        [a, b, reason @ ..] => format!(
            "close {} {}",
            u16::from_be_bytes([*a, *b]),
            String::from_utf8_lossy(reason)
        ),
        _ => "close (no code)".to_owned(),
    }
}

/// Where `needle` (at least two bytes) first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    // Scan for the second byte: the first is often a `"`.
    let mut from = 1;
    while let Some(at) = hay.get(from..)?.iter().position(|&b| b == needle[1]) {
        let start = from + at - 1;
        if hay[start..].starts_with(needle) {
            return Some(start);
        }
        from += at + 1;
    }
    None
}

/// The unsigned number right after `key` in `hay`.
fn number_after(hay: &[u8], key: &[u8]) -> Option<u64> {
    let digits = &hay[find(hay, key)? + key.len()..];
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    digits[..end].iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The unsigned number after `"name":` in a JSON text, without parsing it all.
fn field(text: &str, name: &str) -> Option<u64> {
    number_after(text.as_bytes(), format!("\"{name}\":").as_bytes())
}

// ------------------------------------------------------------- HTTP (wshub)

/// One HTTP/1.1 request on its own connection; returns the body.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let exchange = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&addr, STEP_TIMEOUT)?;
        stream.set_read_timeout(Some(STEP_TIMEOUT))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    };
    let response = exchange().unwrap_or_default();
    response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned()
}

/// wshub's Prometheus counters, as `name value` lines.
fn metrics(addr: SocketAddr) -> String {
    http_get(addr, "/metrics")
}

fn metric(metrics: &str, name: &str) -> String {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or("?")
        .to_owned()
}

// ---------------------------------------------------------------- summary

/// One scenario's figures: the median of each over the runs, per server.
struct Summary {
    title: String,
    runs: usize,
    /// Who was measured, in column order; the first is compared with the
    /// others.
    labels: Vec<String>,
    rows: Vec<Row>,
    notes: Vec<String>,
}

/// One figure of a summary: the median per server, in `kinds`' order.
struct Row {
    name: &'static str,
    show: fn(f64) -> String,
    medians: Vec<Option<f64>>,
}

impl Summary {
    fn new(
        title: &str,
        runs: usize,
        outcomes: Vec<(String, Vec<Outcome>)>,
        failures: Vec<String>,
    ) -> Summary {
        let mut rows: Vec<Row> = Vec::new();
        for (_, runs) in &outcomes {
            for figure in runs.iter().flat_map(|o| &o.figures) {
                if !rows.iter().any(|row| row.name == figure.name) {
                    rows.push(Row {
                        name: figure.name,
                        show: figure.show,
                        medians: Vec::new(),
                    });
                }
            }
        }
        for Row { name, medians, .. } in &mut rows {
            for (_, runs) in &outcomes {
                let values: Vec<f64> = runs
                    .iter()
                    .flat_map(|o| &o.figures)
                    .filter(|f| f.name == *name)
                    .map(|f| f.value)
                    .collect();
                medians.push(median(values));
            }
        }
        let mut notes = failures;
        for (kind, runs) in &outcomes {
            let mut seen: Vec<(&str, usize)> = Vec::new();
            for note in runs.iter().flat_map(|o| &o.notes) {
                match seen.iter_mut().find(|(n, _)| n == note) {
                    Some((_, times)) => *times += 1,
                    None => seen.push((note, 1)),
                }
            }
            for (note, times) in seen {
                let times = if times > 1 {
                    format!(" ({times} runs)")
                } else {
                    String::new()
                };
                notes.push(format!("{kind}: {note}{times}"));
            }
        }
        Summary {
            title: title.to_owned(),
            runs,
            labels: outcomes.into_iter().map(|(label, _)| label).collect(),
            rows,
            notes,
        }
    }

    fn print(&self) {
        // wshub against the others, or (one server, several setups) the
        // first setup against the rest.
        let base = match self.labels.is_empty() {
            true => None,
            false => Some(self.labels.iter().position(|l| l == "wshub").unwrap_or(0)),
        };
        let others: Vec<usize> = match base {
            Some(w) => (0..self.labels.len()).filter(|&i| i != w).collect(),
            None => Vec::new(),
        };
        println!(
            "\n== summary: {} (median of {} run{} per server)",
            self.title,
            self.runs,
            if self.runs == 1 { "" } else { "s" }
        );
        let mut line = format!("  {:<26}", "figure");
        for label in &self.labels {
            line += &format!(" {label:>14}");
        }
        if let Some(b) = base {
            for &o in &others {
                let ratio = format!("{}/{}", self.labels[b], self.labels[o]);
                line += &format!(" {ratio:>12}");
            }
        }
        println!("{line}");
        for Row {
            name,
            show,
            medians,
        } in &self.rows
        {
            let mut line = format!("  {name:<26}");
            for value in medians {
                line += &format!(" {:>14}", value.map_or("-".to_owned(), show));
            }
            if let Some(w) = base {
                for &o in &others {
                    let ratio = match (medians[w], medians[o]) {
                        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}x", a / b),
                        _ => "-".to_owned(),
                    };
                    line += &format!(" {ratio:>12}");
                }
            }
            println!("{line}");
        }
        for note in &self.notes {
            println!("  !! {note}");
        }
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

// ---------------------------------------------------------------- helpers

/// Nanoseconds since the benchmark started (one clock for the whole process).
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Polls `done` every millisecond until it holds (true) or `limit` passes.
fn wait_for(limit: Duration, done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Latencies in microseconds, in buckets about 3% wide: 32 per power of two.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    n: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: vec![0; 60 * 32],
            n: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn bucket(value: u64) -> usize {
        if value < 32 {
            return value as usize;
        }
        let exp = 63 - value.leading_zeros() as usize; // 5 and up
        let mantissa = (value >> (exp - 5)) as usize & 31;
        (exp - 4) * 32 + mantissa
    }

    /// The smallest value of bucket `i`.
    fn floor(i: usize) -> u64 {
        if i < 32 {
            return i as u64;
        }
        let exp = i / 32 + 4;
        ((32 + i % 32) as u64) << (exp - 5)
    }

    fn record(&mut self, micros: u64) {
        self.counts[Self::bucket(micros)] += 1;
        self.n += 1;
        self.max = self.max.max(micros);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.max = self.max.max(other.max);
    }

    /// The value below which a share `q` of the samples fall (NaN if none).
    fn quantile(&self, q: f64) -> f64 {
        if self.n == 0 {
            return f64::NAN;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return (Self::floor(i) as f64).min(self.max as f64);
            }
        }
        self.max as f64
    }

    fn summary(&self) -> String {
        if self.n == 0 {
            return "no samples".to_owned();
        }
        format!(
            "p50 {}  p99 {}  max {}  (n={})",
            show_us(self.quantile(0.5)),
            show_us(self.quantile(0.99)),
            show_us(self.max as f64),
            self.n
        )
    }
}

/// How often something happened, with the first few distinct examples.
#[derive(Default)]
struct Tally {
    count: usize,
    examples: Vec<String>,
    last: Option<String>,
}

impl Tally {
    fn add(&mut self, example: String) {
        self.count += 1;
        if self.examples.contains(&example) {
            return;
        }
        if self.examples.len() < 3 {
            self.examples.push(example);
        } else {
            self.last = Some(example);
        }
    }

    fn merge(&mut self, other: Tally) {
        self.count += other.count;
        for example in other.examples {
            if !self.examples.contains(&example) && self.examples.len() < 3 {
                self.examples.push(example);
            }
        }
        self.last = other.last.or(self.last.take());
    }

    fn summary(&self) -> String {
        match self.count {
            0 => "0".to_owned(),
            n => {
                let mut shown = self.examples.join(" | ");
                if let Some(last) = &self.last {
                    shown = format!("{shown} ... last: {last}");
                }
                format!("{n} (e.g. {shown})")
            }
        }
    }
}

/// A server's stderr lines, the first thousand kept.
#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    count: usize,
}

impl Lines {
    fn add(&mut self, line: String) {
        self.count += 1;
        if self.lines.len() < 1000 {
            self.lines.push(line);
        }
    }

    fn summary(&self) -> String {
        match self.count {
            0 => "none".to_owned(),
            n => {
                let shown: Vec<&str> = self.lines.iter().take(3).map(String::as_str).collect();
                format!("{n} line(s), e.g. {}", shown.join(" | "))
            }
        }
    }
}

fn show_ns(ns: f64) -> String {
    match ns {
        ns if ns.is_nan() => "-".to_owned(),
        ns if ns < 1_000.0 => format!("{ns:.0} ns"),
        ns => show_us(ns / 1e3),
    }
}

fn show_us(us: f64) -> String {
    match us {
        us if us.is_nan() => "-".to_owned(),
        us if us < 1_000.0 => format!("{us:.0} µs"),
        us if us < 1_000_000.0 => format!("{:.2} ms", us / 1e3),
        us => format!("{:.2} s", us / 1e6),
    }
}

/// A whole number with thin spaces between thousands: `1 234 567`.
fn group(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn percent(value: f64) -> String {
    format!("{value:.1}%")
}

fn kib(value: f64) -> String {
    format!("{value:.1} KiB")
}

fn count(value: f64) -> String {
    format!("{value:.0}")
}

fn two_places(value: f64) -> String {
    format!("{value:.2}")
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn table(rows: &[(String, String)]) {
    for (label, value) in rows {
        println!("  {label:<34} {value}");
    }
}
