//! The scale-out scenario, wshub alone:
//!
//! - **cluster `[S] [SECS]`** (defaults 1000 and 5): fanout-max twice, on
//!   one hub, then on two hubs sharing one `redis-server` (started here on
//!   a free port, pinned like the servers), half the subscribers on each,
//!   the publisher on the first: every publication crosses Redis once and
//!   comes back to both hubs. Reports deliveries/s and latency side by
//!   side, the server side's CPU (both hubs and Redis), and Redis's own CPU
//!   time per publication. Without `redis-server` the scenario says so and
//!   measures one hub only.
//!
//! On this box all three processes share the servers' CPU (CPU 0), so two
//! hubs measure what crossing Redis costs, not what a second host adds.

use crate::client::{
    Parse, RawWs, Wire, close_reason, metric, metrics, number_after, parse_frame, push_frame,
};
use crate::fanout::{Feed, Fleet, Pace, fanout_fleet};
use crate::harness::{Bench, Outcome};
use crate::peers::{Kind, Server, cpu_of, wshub_capacity};
use crate::report::{Summary, show_ns, table};
use crate::{CHANNEL, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, STEP_TIMEOUT, WS_PATH, header};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};

/// A `redis-server` for the scenario, stopped when dropped.
struct Redis {
    child: Child,
    port: u16,
    cpus: Option<String>,
}

impl Redis {
    fn start(cpus: Option<&str>) -> Result<Redis, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port: {e}"))?;
        let child = Redis::spawn(port, cpus)?;
        Ok(Redis {
            child,
            port,
            cpus: cpus.map(str::to_owned),
        })
    }

    /// A `redis-server` on `port`, once it answers.
    fn spawn(port: u16, cpus: Option<&str>) -> Result<Child, String> {
        let port_arg = port.to_string();
        let args = [
            "--port",
            port_arg.as_str(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        let mut command = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus, "redis-server"]);
                c
            }
            None => Command::new("redis-server"),
        };
        let mut child = command
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start redis-server ({e}): install it to measure two hubs")
            })?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !pings(port) {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("redis-server did not answer".to_owned());
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(child)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// SIGSTOP (`-STOP`) or SIGCONT (`-CONT`): a stall, and its end.
    fn signal(&self, signal: &str) -> Result<(), String> {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .map_err(|e| format!("kill {signal}: {e}"))?;
        match status.success() {
            true => Ok(()),
            false => Err(format!("kill {signal} failed: {status}")),
        }
    }

    /// Killed, and started again empty on the same port.
    fn restart_empty(&mut self) -> Result<(), String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Redis::spawn(self.port, self.cpus.as_deref())?;
        Ok(())
    }
}

fn pings(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok();
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bench {
    pub(super) fn cluster(&self, subscribers: usize, secs: u64) -> Summary {
        let title = format!(
            "cluster: fanout-max 1 -> {subscribers} on one hub, and on two hubs sharing one Redis \
             (half the subscribers on each, the publisher on the first), flat out for {secs} s"
        );
        header(&title);
        let Some(launch) = self.servers.iter().find(|l| l.kind == Kind::Wshub) else {
            println!("  !! cluster measures wshub only, which is not among --servers");
            return Summary::new(&title, self.runs, Vec::new(), Vec::new());
        };
        let pace = Pace::Max {
            run_for: Duration::from_secs(secs),
        };
        let mut extra = wshub_capacity(subscribers + 1);
        extra.extend(self.wshub_args.iter().cloned());
        let cpus = self.server_cpus.as_deref();
        let mut one_hub = Vec::new();
        let mut two_hubs = Vec::new();
        let mut failures = Vec::new();
        for run in 1..=self.runs {
            println!("\n  -- one hub (run {run} of {})", self.runs);
            match Server::start(launch, &extra, cpus) {
                Ok(server) => {
                    let fleet = Fleet {
                        hubs: vec![&server],
                        pids: Vec::new(),
                    };
                    let (outcome, _) =
                        fanout_fleet(&fleet, subscribers, pace, &[WS_PATH], &Feed::default());
                    report(&outcome);
                    server.stop();
                    one_hub.push(outcome);
                }
                Err(why) => failures.push(format!("one hub: run {run}: {why}")),
            }
            println!("\n  -- two hubs on one Redis (run {run} of {})", self.runs);
            match self.two_hubs(launch, &extra, subscribers, pace) {
                Ok(outcome) => {
                    report(&outcome);
                    two_hubs.push(outcome);
                }
                Err(why) => {
                    println!("  !! {why}");
                    failures.push(format!("two hubs: run {run}: {why}"));
                }
            }
        }
        let summary = Summary::new(
            &title,
            self.runs,
            vec![
                ("two hubs".to_owned(), two_hubs),
                ("one hub".to_owned(), one_hub),
            ],
            failures,
        );
        summary.print();
        summary
    }

    fn two_hubs(
        &self,
        launch: &crate::peers::Launch,
        extra: &[String],
        subscribers: usize,
        pace: Pace,
    ) -> Result<Outcome, String> {
        let cpus = self.server_cpus.as_deref();
        let redis = Redis::start(cpus)?;
        let mut args = extra.to_vec();
        args.extend(["--redis".to_owned(), redis.url()]);
        let first = Server::start(launch, &args, cpus)?;
        let second = Server::start(launch, &args, cpus)?;
        // Both have joined once each counts two hubs.
        let deadline = Instant::now() + STEP_TIMEOUT;
        for hub in [&first, &second] {
            while metric(&metrics(hub.addr), "wshub_cluster_hubs") != "2" {
                if Instant::now() > deadline {
                    return Err("the two hubs did not see each other".to_owned());
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        let redis_pid = redis.child.id();
        let before = cpu_of(&[redis_pid]);
        let fleet = Fleet {
            hubs: vec![&first, &second],
            pids: vec![redis_pid],
        };
        let (mut outcome, published) =
            fanout_fleet(&fleet, subscribers, pace, &[WS_PATH], &Feed::default());
        let redis_cpu = cpu_of(&[redis_pid]).saturating_sub(before).as_secs_f64();
        outcome.row(
            "Redis CPU",
            format!("{redis_cpu:.2} s for {published} publications"),
        );
        if published > 0 {
            outcome.figure(
                "Redis CPU per publication",
                redis_cpu * 1e9 / published as f64,
                show_ns,
            );
        }
        first.stop();
        second.stop();
        drop(redis);
        Ok(outcome)
    }
}

fn report(outcome: &Outcome) {
    table(&outcome.rows);
    for note in &outcome.notes {
        println!("  !! {note}");
    }
}

// ------------------------------------------------------------ chaos-redis

/// The faults of chaos-redis, in order, each followed by a calm spell.
const FAULTS: [Fault; 4] = [
    Fault::Stall(2),
    Fault::Stall(8),
    Fault::Stall(20),
    Fault::RestartEmpty,
];
/// Before the first fault, and after each.
const CALM: Duration = Duration::from_secs(10);
/// How often the hubs' `wshub_redis_up` is read.
const UP_POLL: Duration = Duration::from_millis(100);
/// A refused publication is tried again after this.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

#[derive(Clone, Copy)]
enum Fault {
    /// SIGSTOP for this many seconds, then SIGCONT.
    Stall(u64),
    /// SIGKILL, and a new, empty `redis-server` on the same port.
    RestartEmpty,
}

impl Fault {
    fn name(self) -> String {
        match self {
            Fault::Stall(secs) => format!("stall {secs} s"),
            Fault::RestartEmpty => "restart empty".to_owned(),
        }
    }
}

/// What the hubs showed of one fault.
#[derive(Default)]
struct Seen {
    /// From the fault to the first hub with `redisUp` 0.
    down_after: Option<Duration>,
    /// From its end to both hubs with `redisUp` 1 again.
    up_after: Option<Duration>,
}

/// One subscriber of chaos-redis and what it saw. The publisher numbers
/// its publications `Kn` = 1, 2, ... and publishes each exactly once (an
/// idempotency key, retried until taken), in order: so within an epoch
/// consecutive `seq`s must carry consecutive `Kn`s, and a jump in `Kn` is
/// only allowed where the subscriber was told (a new epoch, or
/// `recovered: false`).
struct Tracked {
    stream: Wire,
    pending: Vec<u8>,
    hub: usize,
    epoch: Option<String>,
    next_seq: u64,
    last_n: u64,
    /// Told of a possible gap (`recovered: false`): the next delivery may jump.
    told: bool,
    open: bool,
    got: u64,
    /// `Kn` not above the last: delivered twice, or out of order.
    repeats: u64,
    /// A `seq` missing or repeated within an epoch.
    seq_faults: u64,
    /// Publications missing between consecutive `seq`s of one epoch.
    hidden: u64,
    /// Gaps the subscriber was told of, and the publications in them.
    told_gaps: u64,
    told_missed: u64,
    /// The first few faults, for the notes.
    examples: Vec<String>,
    /// The last few things it saw, for those examples.
    recent: std::collections::VecDeque<String>,
}

/// A `subscribed` answer: its position (none when the hub could not know
/// it) and `recovered`.
struct Answer {
    ws: RawWs,
    position: Option<(u64, String)>,
    recovered: Option<bool>,
}

fn subscribe_on(addr: std::net::SocketAddr, since: Option<(u64, &str)>) -> Result<Answer, String> {
    let mut ws = RawWs::handshake(addr, WS_PATH)?;
    let welcome = ws.expect_text()?;
    if !welcome.contains(r#""type":"connection"#) {
        return Err(format!("expected the welcome, got {welcome}"));
    }
    let since = match since {
        Some((seq, epoch)) => format!(r#","since":{{"seq":{seq},"epoch":"{epoch}"}}"#),
        None => String::new(),
    };
    ws.send_text(&format!(
        r#"{{"type":"subscribe","channel":"{CHANNEL}"{since},"correlationId":"sub"}}"#
    ))?;
    loop {
        let reply = ws.expect_text()?;
        if reply.contains(r#""type":"subscribed""#) {
            let epoch = string_after(&reply, r#""epoch":""#);
            let seq = number_after(reply.as_bytes(), br#""seq":"#);
            let recovered = match (
                reply.contains(r#""recovered":true"#),
                reply.contains(r#""recovered":false"#),
            ) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            return Ok(Answer {
                ws,
                position: seq.zip(epoch),
                recovered,
            });
        }
        if reply.contains(r#""type":"error""#) {
            return Err(format!("subscribe refused: {reply}"));
        }
    }
}

fn string_after(text: &str, key: &str) -> Option<String> {
    let start = text.find(key)? + key.len();
    let len = text[start..].find('"')?;
    Some(text[start..start + len].to_owned())
}

impl Tracked {
    fn new(answer: Answer, hub: usize) -> Result<Tracked, String> {
        let mut tracked = Tracked::unread(answer, hub)?;
        let early = std::mem::take(&mut tracked.pending);
        let used = tracked.consume(&early);
        tracked.pending = early[used..].to_vec();
        Ok(tracked)
    }

    /// At the answer's position, what came with it not read yet.
    fn unread(answer: Answer, hub: usize) -> Result<Tracked, String> {
        answer
            .ws
            .stream
            .set_nonblocking(true)
            .map_err(|e| format!("non-blocking: {e}"))?;
        let (next_seq, epoch) = match answer.position {
            Some((seq, epoch)) => (seq + 1, Some(epoch)),
            None => (0, None),
        };
        Ok(Tracked {
            stream: answer.ws.stream,
            pending: answer.ws.buf,
            hub,
            epoch,
            next_seq,
            last_n: 0,
            told: true,
            open: true,
            got: 0,
            repeats: 0,
            seq_faults: 0,
            hidden: 0,
            told_gaps: 0,
            told_missed: 0,
            examples: Vec::new(),
            recent: Default::default(),
        })
    }

    /// Comes back on `answer` (a resume with `since`), where it was.
    fn note(&mut self, what: String) {
        if self.recent.len() >= 8 {
            self.recent.pop_front();
        }
        self.recent.push_back(what);
    }

    fn resume(&mut self, answer: Answer, hub: usize) -> Result<(), String> {
        let recovered = answer.recovered == Some(true);
        let (position, answer_recovered) = (answer.position.clone(), answer.recovered);
        let mut fresh = Tracked::unread(answer, hub)?;
        fresh.last_n = self.last_n;
        fresh.got = self.got;
        fresh.repeats = self.repeats;
        fresh.seq_faults = self.seq_faults;
        fresh.hidden = self.hidden;
        fresh.told_gaps = self.told_gaps;
        fresh.told_missed = self.told_missed;
        fresh.examples = std::mem::take(&mut self.examples);
        fresh.recent = std::mem::take(&mut self.recent);
        fresh.note(format!(
            "resumed on hub {hub} from {:?} {:?}: {:?} recovered {:?}",
            self.next_seq.saturating_sub(1),
            self.epoch,
            position,
            answer_recovered
        ));
        if recovered {
            // The replay goes on from exactly where it was.
            fresh.epoch = self.epoch.clone();
            fresh.next_seq = self.next_seq;
            fresh.told = false;
        }
        // What came with the answer was read against the old position.
        let early = std::mem::take(&mut fresh.pending);
        let used = fresh.consume(&early);
        fresh.pending = early[used..].to_vec();
        *self = fresh;
        Ok(())
    }

    fn delivered(&mut self, n: u64, seq: u64, epoch: &str) {
        self.got += 1;
        let recent: Vec<String> = self.recent.iter().cloned().collect();
        let fault = |what: &str, examples: &mut Vec<String>| {
            if examples.len() < 3 {
                examples.push(format!(
                    "{what}: Kn {n} seq {seq} epoch {epoch} on hub {} after Kn {} (expected seq {} of {:?}{}); before: {}",
                    self.hub,
                    self.last_n,
                    self.next_seq,
                    self.epoch,
                    if self.told { ", told" } else { "" },
                    recent.join(" | ")
                ));
            }
        };
        if n <= self.last_n {
            fault("again", &mut self.examples);
            self.repeats += 1;
            return;
        }
        let same_epoch = self.epoch.as_deref() == Some(epoch);
        if same_epoch && !self.told {
            if seq != self.next_seq {
                fault("seq", &mut self.examples);
                self.seq_faults += 1;
            } else if n > self.last_n + 1 && self.last_n > 0 {
                fault("hidden gap", &mut self.examples);
                self.hidden += n - self.last_n - 1;
            }
        } else if n > self.last_n + 1 && self.last_n > 0 {
            self.told_gaps += 1;
            self.told_missed += n - self.last_n - 1;
        }
        if !same_epoch {
            self.epoch = Some(epoch.to_owned());
        }
        self.note(format!("{n}@{seq}/{}", &epoch[..4.min(epoch.len())]));
        self.told = false;
        self.next_seq = seq + 1;
        self.last_n = n;
    }

    /// Handles the complete frames at the start of `data`; returns the
    /// bytes they took.
    fn consume(&mut self, data: &[u8]) -> usize {
        let mut at = 0;
        while self.open {
            match parse_frame(&data[at..]) {
                Parse::Partial => break,
                Parse::Bad(why) => {
                    println!("  !! a subscriber read a bad frame: {why}");
                    self.open = false;
                }
                Parse::Frame {
                    fin,
                    opcode,
                    start,
                    end,
                    ..
                } => {
                    let payload = &data[at + start..at + end];
                    at += end;
                    match opcode {
                        OP_TEXT if fin => {
                            let n = number_after(payload, br#""Kn":"#);
                            let seq = number_after(payload, br#""seq":"#);
                            let text = String::from_utf8_lossy(payload);
                            let epoch = string_after(&text, r#""epoch":""#);
                            if let (Some(n), Some(seq), Some(epoch)) = (n, seq, epoch) {
                                self.delivered(n, seq, &epoch);
                            }
                        }
                        OP_CLOSE => {
                            println!("  !! a subscriber was closed: {}", close_reason(payload));
                            self.open = false;
                        }
                        OP_PING => {
                            let mut pong = Vec::with_capacity(payload.len() + 8);
                            push_frame(&mut pong, OP_PONG, payload);
                            let _ = self.stream.write(&pong);
                        }
                        _ => {}
                    }
                }
            }
        }
        at
    }

    /// Reads until the socket has nothing more.
    fn drain(&mut self, buf: &mut [u8]) {
        while self.open {
            let keep = self.pending.len();
            if keep > buf.len() / 2 {
                println!("  !! a frame of more than {keep} bytes");
                self.open = false;
                break;
            }
            buf[..keep].copy_from_slice(&self.pending);
            let n = match self.stream.read(&mut buf[keep..]) {
                Ok(0) => {
                    self.open = false;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.open = false;
                    break;
                }
            };
            let used = self.consume(&buf[..keep + n]);
            self.pending = buf[used..keep + n].to_vec();
        }
    }
}

/// What the publisher did.
#[derive(Default)]
struct Publishing {
    /// The last publication taken (all before it were, each once).
    last: u64,
    /// Attempts refused (`busy`): nothing delivered...
    refused: u64,
    /// ...or not confirmed (it may have been: the retry's key decides).
    unconfirmed: u64,
    /// The longest from a publication's first attempt to its answer `published`.
    longest: Duration,
    error: Option<String>,
}

/// Publishes `tick`s with `Kn` = 1, 2, ..., `rate` a second, each with the
/// idempotency key `n<Kn>` and tried again until taken, until `stop`.
fn steady_publisher(
    mut ws: RawWs,
    rate: u64,
    stop: &AtomicBool,
    last: &std::sync::atomic::AtomicU64,
) -> Publishing {
    let mut done = Publishing::default();
    let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let mut due = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now < due {
            thread::sleep(due - now);
            continue;
        }
        // After a stall, on at the same pace, not in a burst.
        due = due.max(now - period) + period;
        n += 1;
        let first_try = Instant::now();
        loop {
            let frame = format!(
                r#"{{"type":"publish","channel":"{CHANNEL}","event":"tick","data":{{"Kn":{n}}},"idempotencyKey":"n{n}","correlationId":{n}}}"#
            );
            if let Err(e) = ws.send_text(&frame) {
                done.error = Some(e);
                return done;
            }
            let reply = loop {
                match ws.read_text() {
                    Ok(Some(reply))
                        if number_after(reply.as_bytes(), br#""correlationId":"#) == Some(n) =>
                    {
                        break reply;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        done.error = Some(e);
                        return done;
                    }
                }
            };
            if reply.contains(r#""type":"published""#) {
                break;
            }
            if reply.contains("may have been") {
                done.unconfirmed += 1;
            } else {
                done.refused += 1;
            }
            if stop.load(Ordering::Acquire) {
                // Never taken: the last is the one before.
                n -= 1;
                done.last = n;
                last.store(n, Ordering::Release);
                return done;
            }
            thread::sleep(RETRY_PAUSE);
        }
        done.longest = done.longest.max(first_try.elapsed());
        done.last = n;
        last.store(n, Ordering::Release);
    }
    done
}

/// `wshub_redis_up` of each hub.
fn redis_up(hubs: &[&Server]) -> Vec<bool> {
    hubs.iter()
        .map(|hub| metric(&metrics(hub.addr), "wshub_redis_up") == "1")
        .collect()
}

impl Bench {
    pub(super) fn chaos_redis(&self, subscribers: usize, rate: u64, drop_percent: u64) -> Summary {
        let title = format!(
            "chaos-redis: two hubs on one Redis, {subscribers} subscribers (half on each) at \
             {rate} publications/s, {drop_percent}% of them resuming with since on the other hub \
             every second; Redis stalled 2, 8 and 20 s (SIGSTOP) and restarted empty"
        );
        header(&title);
        let Some(launch) = self.servers.iter().find(|l| l.kind == Kind::Wshub) else {
            println!("  !! chaos-redis measures wshub only, which is not among --servers");
            return Summary::new(&title, self.runs, Vec::new(), Vec::new());
        };
        let mut outcomes = Vec::new();
        let mut failures = Vec::new();
        for run in 1..=self.runs {
            println!("\n  -- run {run} of {}", self.runs);
            match self.redis_faults(launch, subscribers, rate, drop_percent) {
                Ok(outcome) => {
                    report(&outcome);
                    outcomes.push(outcome);
                }
                Err(why) => {
                    println!("  !! {why}");
                    failures.push(format!("run {run}: {why}"));
                }
            }
        }
        let summary = Summary::new(
            &title,
            self.runs,
            vec![("wshub".to_owned(), outcomes)],
            failures,
        );
        summary.print();
        summary
    }

    fn redis_faults(
        &self,
        launch: &crate::peers::Launch,
        subscribers: usize,
        rate: u64,
        drop_percent: u64,
    ) -> Result<Outcome, String> {
        let cpus = self.server_cpus.as_deref();
        let mut redis = Redis::start(cpus)?;
        let mut args = wshub_capacity(subscribers + 1);
        args.extend(self.wshub_args.iter().cloned());
        args.extend(["--redis".to_owned(), redis.url()]);
        let first = Server::start(launch, &args, cpus)?;
        let second = Server::start(launch, &args, cpus)?;
        let hubs = [&first, &second];
        let deadline = Instant::now() + STEP_TIMEOUT;
        for hub in hubs {
            while metric(&metrics(hub.addr), "wshub_cluster_hubs") != "2" {
                if Instant::now() > deadline {
                    return Err("the two hubs did not see each other".to_owned());
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        let mut out = Outcome::default();
        let poll = mio::Poll::new().map_err(|e| format!("no epoll: {e}"))?;
        let mut subs = Vec::with_capacity(subscribers);
        for i in 0..subscribers {
            let hub = i % 2;
            let answer = subscribe_on(hubs[hub].addr, None)?;
            let mut sub = Tracked::new(answer, hub)?;
            poll.registry()
                .register(&mut sub.stream, mio::Token(i), mio::Interest::READABLE)
                .map_err(|e| format!("epoll: {e}"))?;
            subs.push(sub);
        }
        let publisher = RawWs::handshake(first.addr, WS_PATH).and_then(|mut ws| {
            ws.expect_text()?;
            Ok(ws)
        })?;
        let stop = AtomicBool::new(false);
        let last = std::sync::atomic::AtomicU64::new(0);
        let per_round = (subs.len() * drop_percent as usize / 100).max(1);
        let (mut resumed, mut lost, mut resume_errors) = (0u64, 0u64, 0u64);
        let mut buf = vec![0u8; crate::READ_BUFFER];
        let mut events = mio::Events::with_capacity(1024);
        let mut poll = poll;
        let faults_done = AtomicBool::new(false);
        // (fault, when it began, when it ended), and (when, every hub up).
        let timeline: std::sync::Mutex<Vec<(Fault, Instant, Instant)>> = Default::default();
        let ups: std::sync::Mutex<Vec<(Instant, bool)>> = Default::default();
        let published = thread::scope(|scope| -> Result<Publishing, String> {
            let publishing = scope.spawn(|| steady_publisher(publisher, rate, &stop, &last));
            // The faults, on a thread of their own so their times hold
            // whatever the readers wait for.
            let faults = scope.spawn(|| -> Result<(), String> {
                let result = (|| {
                    for fault in FAULTS {
                        thread::sleep(CALM);
                        println!(
                            "  {} (after Kn {})",
                            fault.name(),
                            last.load(Ordering::Acquire)
                        );
                        let began = Instant::now();
                        match fault {
                            Fault::Stall(secs) => {
                                redis.signal("-STOP")?;
                                thread::sleep(Duration::from_secs(secs));
                                redis.signal("-CONT")?;
                            }
                            Fault::RestartEmpty => redis.restart_empty()?,
                        }
                        let ended = Instant::now();
                        println!("  ... over (after Kn {})", last.load(Ordering::Acquire));
                        timeline
                            .lock()
                            .expect("timeline")
                            .push((fault, began, ended));
                    }
                    thread::sleep(CALM);
                    Ok(())
                })();
                faults_done.store(true, Ordering::Release);
                result
            });
            // Whether every hub takes Redis for up, as it changes.
            scope.spawn(|| {
                let mut was = None;
                while !faults_done.load(Ordering::Acquire) {
                    let up = redis_up(&hubs).iter().all(|u| *u);
                    if was != Some(up) {
                        ups.lock().expect("ups").push((Instant::now(), up));
                        was = Some(up);
                    }
                    thread::sleep(UP_POLL);
                }
            });
            let mut victim = 0usize;
            let mut next_round = Instant::now() + Duration::from_secs(1);
            let ending = loop {
                if faults_done.load(Ordering::Acquire) {
                    break Instant::now();
                }
                if poll
                    .poll(&mut events, Some(Duration::from_millis(1)))
                    .is_err()
                {
                    continue;
                }
                for event in &events {
                    if let Some(sub) = subs.get_mut(event.token().0) {
                        sub.drain(&mut buf);
                    }
                }
                // Every second a slice of them drops and resumes with
                // `since` on the other hub.
                if Instant::now() >= next_round {
                    next_round += Duration::from_secs(1);
                    for _ in 0..per_round {
                        let i = victim % subs.len();
                        victim += 1;
                        let sub = &mut subs[i];
                        if !sub.open {
                            continue;
                        }
                        sub.drain(&mut buf);
                        let _ = poll.registry().deregister(&mut sub.stream);
                        let hub = 1 - sub.hub;
                        let since = sub
                            .epoch
                            .clone()
                            .map(|e| (sub.next_seq.saturating_sub(1), e));
                        let answer =
                            subscribe_on(hubs[hub].addr, since.as_ref().map(|(s, e)| (*s, &**e)));
                        match answer.and_then(|a| {
                            let recovered = a.recovered;
                            sub.resume(a, hub).map(|()| recovered)
                        }) {
                            Ok(recovered) => {
                                resumed += 1;
                                if recovered != Some(true) {
                                    lost += 1;
                                }
                            }
                            Err(e) => {
                                resume_errors += 1;
                                if resume_errors == 1 {
                                    println!("  !! a resume failed: {e}");
                                }
                            }
                        }
                        let _ = poll.registry().register(
                            &mut sub.stream,
                            mio::Token(i),
                            mio::Interest::READABLE,
                        );
                    }
                }
            };
            faults
                .join()
                .unwrap_or_else(|_| Err("the fault thread panicked".to_owned()))?;
            stop.store(true, Ordering::Release);
            let published = publishing.join().unwrap_or_default();
            // Everyone gets to the last publication.
            let total = published.last;
            while subs.iter().any(|s| s.open && s.last_n < total) {
                if ending.elapsed() > crate::DRAIN_LIMIT {
                    println!("  !! gave up waiting for the last deliveries");
                    break;
                }
                if poll
                    .poll(&mut events, Some(Duration::from_millis(10)))
                    .is_err()
                {
                    continue;
                }
                for event in &events {
                    if let Some(sub) = subs.get_mut(event.token().0) {
                        sub.drain(&mut buf);
                    }
                }
            }
            Ok(published)
        })?;
        let total = published.last;
        if let Some(error) = &published.error {
            out.note(format!("the publisher stopped: {error}"));
        }
        let ups = ups.into_inner().expect("ups");
        let seen: Vec<(Fault, Seen)> = timeline
            .into_inner()
            .expect("timeline")
            .into_iter()
            .map(|(fault, began, ended)| {
                // Seen down within a calm spell of the fault's end.
                let within = ended + CALM;
                let down = ups
                    .iter()
                    .find(|(at, up)| *at >= began && *at < within && !up)
                    .map(|(at, _)| *at);
                let up = down.and_then(|down| {
                    ups.iter()
                        .find(|(at, up)| *at >= down.max(ended) && *up)
                        .map(|(at, _)| *at)
                });
                let seen = Seen {
                    down_after: down.map(|d| d - began),
                    up_after: up.map(|u| u - ended),
                };
                (fault, seen)
            })
            .collect();
        for (fault, s) in &seen {
            let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
            let told = match (s.down_after, s.up_after) {
                (None, _) => match fault {
                    Fault::Stall(_) => "redisUp stayed 1 (a stall within the Redis timeout)",
                    Fault::RestartEmpty => "redisUp 0 too briefly to be seen",
                }
                .to_owned(),
                (Some(down), Some(up)) => format!(
                    "redisUp 0 after {}, both hubs 1 again {} after it ended",
                    secs(down),
                    secs(up)
                ),
                (Some(down), None) => format!("redisUp 0 after {}, never 1 again", secs(down)),
            };
            out.row(&fault.name(), told);
        }
        out.row(
            "publications",
            format!(
                "{total}, each taken once; {} attempts refused and {} unconfirmed, all tried again with their key; longest wait for one {:.1} s",
                published.refused,
                published.unconfirmed,
                published.longest.as_secs_f64()
            ),
        );
        out.row(
            "resumes",
            format!("{resumed} ({lost} recovered: false, {resume_errors} failed)"),
        );
        let exact = subs
            .iter()
            .filter(|s| s.repeats == 0 && s.seq_faults == 0 && s.hidden == 0 && s.last_n == total)
            .count();
        let repeats: u64 = subs.iter().map(|s| s.repeats).sum();
        let seq_faults: u64 = subs.iter().map(|s| s.seq_faults).sum();
        let hidden: u64 = subs.iter().map(|s| s.hidden).sum();
        let told_gaps: u64 = subs.iter().map(|s| s.told_gaps).sum();
        let told_missed: u64 = subs.iter().map(|s| s.told_missed).sum();
        let told_subs = subs.iter().filter(|s| s.told_gaps > 0).count();
        out.row(
            "every seq of every epoch once, in order, to the last",
            format!("{exact} / {} subscribers", subs.len()),
        );
        out.row(
            "duplicates, seq faults, hidden gaps",
            format!("{repeats}, {seq_faults}, {hidden} publications"),
        );
        out.row(
            "gaps told (new epoch or recovered: false)",
            format!("{told_gaps} in {told_subs} subscribers, {told_missed} publications"),
        );
        out.row(
            "deliveries",
            crate::report::group(subs.iter().map(|s| s.got).sum::<u64>() as f64),
        );
        out.figure(
            "subscribers with every seq once, in order",
            exact as f64 * 100.0 / subs.len().max(1) as f64,
            crate::report::percent,
        );
        out.figure(
            "hidden gaps and duplicates",
            (repeats + seq_faults + hidden) as f64,
            |v| format!("{v:.0}"),
        );
        for kind in ["again", "seq", "hidden gap"] {
            let of_kind = subs
                .iter()
                .flat_map(|s| &s.examples)
                .filter(|e| e.starts_with(kind));
            for example in of_kind.take(3) {
                println!("  !! {example}");
            }
        }
        if exact < subs.len() {
            out.note(format!(
                "{} of {} subscribers saw a duplicate, a seq fault, a hidden gap or not the last publication",
                subs.len() - exact,
                subs.len()
            ));
        }
        first.stop();
        second.stop();
        drop(redis);
        Ok(out)
    }
}
