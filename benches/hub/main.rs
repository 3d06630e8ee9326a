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
//! subscriber; `published` with the count when asked), and `ping`. The
//! peers send what wshub sends in its standard envelope, the same fields in
//! the same order with values of the same shape: the welcome then `auth`,
//! `subscribed` with the channel's `seq` and `epoch`, and deliveries with
//! `from` (a `clientId` like `c_2-0954ab34`), `seq` and `epoch`. The first
//! delivery of the fan-out's 64-byte payload is 225 bytes from each of the
//! three (`benches/peers/node/same-bytes.js` shows every message's length).
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
//! - **fanout-dashboard `[S] [SECS]`** (defaults 1000 and 5): wshub alone,
//!   fanout-max with no dashboard, then with one open (a connection on
//!   `/admin` reading the stats pushed every second). The analytics are
//!   always on; the table compares deliveries/s.
//! - **fanout-tls `[S] [RATE] [SECS]`** (defaults 100, 2000 and 10): wshub
//!   alone, fanout-paced with every client (publisher and subscribers) over
//!   TLS, then over plain TCP; then the same two flat out for SECS seconds
//!   (fanout-max's windows). Two tables, each with the ratio TLS/plain of
//!   the server's CPU per delivery, deliveries/s and latency at the same
//!   offered load. The certificate (an authority and a server certificate
//!   for localhost and 127.0.0.1) is made with rcgen at run time into a
//!   temporary directory and given to wshub with `--tls-cert` and
//!   `--tls-key`; the load generator's clients trust that authority only
//!   and speak TLS 1.3 on rustls's ring provider (the hub's), preferring
//!   AES-128-GCM as browsers do (each run's rows say what was agreed).
//!   About 2.5 minutes at the defaults.
//! - **compression `[S] [RATE] [SECS]`** (defaults 100, 500 and 10): wshub
//!   alone, with `--compression` and without, fanout-paced once for each
//!   of five typical messages of the seeds: an `agent_status` and a
//!   `chat_message` (seed 001), an `ai_complete` (seed 004), a file
//!   watcher's event on `files` (seed 002), and a 2.5 KB assistant's
//!   answer in markdown with code; each on its own channel and under its
//!   own `event`, its `data` carrying `Kseq` and `Ksent` first. The S
//!   subscribers offer permessage-deflate as browsers do (`permessage-deflate;
//!   client_max_window_bits`), inflate what comes compressed (RSV1) and
//!   count the bytes they read off their sockets. One table gives, per
//!   message, its size as delivered, the share sent compressed, wire bytes
//!   and server CPU per delivery, and deliveries complete and in order,
//!   with the ratio deflate/plain. Messages under `--compression-min-size`
//!   (256, or what a `--wshub-arg` sets) go plain, and the notes say so.
//!   The hub compresses a publication once for all its subscribers, so the
//!   CPU per delivery depends on S. About 6 minutes at the defaults.
//! - **chaos `[S] [RATE] [SECS] [DROP%]`** and **history `[STREAMS] [PER]`**:
//!   recovery under churn, and what history costs; see `recovery.rs`.
//! - **cluster `[S] [SECS]`**: fanout-max on one hub, and on two hubs
//!   sharing one `redis-server`; see `cluster.rs`.
//! - **chaos-redis `[S] [RATE] [PCT]`**: two hubs on one `redis-server`
//!   that is stalled (SIGSTOP) for 2, 8 and 20 s and restarted empty,
//!   under a steady publisher and subscribers resuming on either hub: every
//!   `seq` of every epoch exactly once and in order, or a gap the
//!   subscriber was told of; see `cluster.rs`.
//! - **idle `[N ...]`** (defaults 5000 and 10000; `all` adds 19000, which
//!   for wshub needs `vm.max_map_count` raised, see below): N silent clients. The
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
//!   connections per second, handshake latency, and the server's CPU per
//!   connection; for scale, what starting one thread (a reader's 64 KiB
//!   stack) costs this machine, which a server with a reader thread per
//!   client pays once per connection.
//!
//! The earlier wshub-only scenarios are folded in: `fanout S M [RATE]` is
//! now fanout-max or fanout-paced (by time, not message count), and
//! `rtt C K` is `ping C 0 SECS`; their old names are refused rather than
//! reread with new meanings (`fanout 1000 10000` would run for hours).
//!
//! # Running
//!
//! ```text
//! cargo bench --bench hub                              # everything, default sizes (about 45 min)
//! cargo bench --bench hub -- fanout-max 1000 5
//! cargo bench --bench hub -- fanout-paced 100 2000 10
//! cargo bench --bench hub -- fanout-envelopes 1000 5
//! cargo bench --bench hub -- fanout-dashboard 1000 5
//! cargo bench --bench hub -- fanout-tls 100 2000 10
//! cargo bench --bench hub -- compression 100 500 10
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
//! The bench needs the crate's `cli`, `tls` and `compression` features (all
//! default ones; `required-features` in Cargo.toml): it runs the binary,
//! serves it TLS, and inflates its compressed messages with flate2.
//!
//! Options: `--runs N` (default 3), `--servers LIST` (any of wshub, tokio and
//! node; default all three), `--server-cpus LIST` and `--client-cpus LIST`
//! (taskset CPU lists; defaults 0 and 1), `--no-pin` (no taskset at all),
//! `--wshub-arg ARG` (one more argument for wshub, after the harness's own;
//! repeat it for more).
//!
//! N idle clients need about N file descriptors in this process (`ulimit -n`)
//! and in each server. wshub also needs a thread per client, with its
//! few memory maps, so Linux's default `vm.max_map_count` of 65 530 caps it
//! near 15 000 clients (`sysctl -w vm.max_map_count=262144` lifts that); the
//! idle table says when a server held fewer than N.

//!
//! # Layout
//!
//! `main.rs` reads the command line, pins the CPUs and runs the scenarios
//! asked for; `harness.rs` runs each against every server (`Bench`),
//! `peers.rs` starts and watches the servers, `client.rs` is the load
//! generator's WebSocket client (over plain TCP or TLS, with
//! permessage-deflate when offered), `report.rs` prints the medians. One
//! module per scenario family, each with its `impl Bench` entry points:
//! `fanout.rs` (fanout-max, fanout-paced, fanout-envelopes, fanout-dashboard), `recovery.rs`
//! (chaos, history, catch-up), `cluster.rs` (cluster, chaos-redis),
//! `features.rs` (fanout-tls, compression: a feature on and off, over
//! `fanout.rs`'s fan-out), `connections.rs` (idle, connect),
//! `requests.rs` (ping, request).

#![forbid(unsafe_code)]

mod client;
mod cluster;
mod connections;
mod fanout;
mod features;
mod harness;
mod peers;
mod recovery;
mod report;
mod requests;

use std::fs;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use harness::Bench;
use peers::{Kind, prepare};

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
            | "fanout-dashboard"
            | "fanout-tls"
            | "compression"
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
            summaries.push(bench.fanout_dashboard(1_000, 5));
            summaries.extend(bench.fanout_tls(100, 2_000, 10));
            summaries.push(bench.compression(100, 500, 10));
            summaries.push(bench.chaos(1_000, 500, 60, 10));
            summaries.push(bench.history(10_000, 10));
            summaries.push(bench.catch_up(100));
            summaries.push(bench.cluster(1_000, 5));
            summaries.push(bench.chaos_redis(200, 200, 10));
            for n in [5_000, 10_000, 19_000] {
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
        "fanout-dashboard" => {
            summaries.push(bench.fanout_dashboard(number(1, 1_000) as usize, number(2, 5)))
        }
        "fanout-tls" => summaries.extend(bench.fanout_tls(
            number(1, 100) as usize,
            number(2, 2_000),
            number(3, 10),
        )),
        "compression" => summaries.push(bench.compression(
            number(1, 100) as usize,
            number(2, 500),
            number(3, 10),
        )),
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
         \x20 fanout-dashboard [S=1000] [SECS=5]     fan-out with no dashboard, and with one open\n\
         \x20 fanout-tls [S=100] [RATE=2000] [SECS=10]  fan-out over TLS and plain TCP, at RATE/s and flat out\n\
         \x20 compression [S=100] [RATE=500] [SECS=10]  typical messages with permessage-deflate and without\n\
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
