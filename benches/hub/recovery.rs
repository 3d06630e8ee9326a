//! The recovery scenarios, wshub alone (the reference servers keep no
//! history):
//!
//! - **chaos `[S] [RATE] [SECS] [DROP%]`** (defaults 1000, 500, 60, 10): S
//!   subscribers of one channel, RATE publications per second for SECS
//!   seconds; every second DROP% of the subscribers (a different slice each
//!   time) drop their connection and come back with `since` their last
//!   `seq`. Every subscriber must end with every `seq` exactly once: the
//!   table counts gaps, duplicates, `recovered: false` and reconnections.
//! - **history `[STREAMS] [PER]`** (defaults 10000 and 10): STREAMS×PER
//!   publications, round robin over STREAMS channels nobody subscribes to,
//!   as fast as acknowledged, once with history on (the defaults) and once
//!   with `--history-size 0`: what keeping history costs, in resident
//!   memory per stream and server CPU time per publication.
//! - **catch-up `[MIB]`** (default 100): a client resumes a channel from
//!   its start and stops reading in the middle of a MIB catch-up of 8 KiB
//!   publications: half of them (at most 32 MiB, which the default history
//!   keeps) are in the history when it resumes, it reads a tenth of those,
//!   and the rest are published while it does not read. The server's resident memory
//!   above idle (at its peak and at the end), what waits for the client,
//!   and what became of it: a catch-up must cost the hub no more than the
//!   client's queue, whatever the client does.
//!
//! The readers run on this thread with one epoll; reconnections are made
//! here too, between rounds of reads, as a real client would after its
//! socket died.

use crate::client::{
    Parse, RawWs, Wire, close_reason, field, metric, metrics, number_after, parse_frame, push_frame,
};
use crate::fanout::{Feed, Published, Shared, publish_paced};
use crate::harness::{Bench, Outcome};
use crate::peers::{CpuClock, Kind, Launch, Server, wshub_capacity};
use crate::report::{Summary, group, percent, show_ns};
use crate::{CHANNEL, DRAIN_LIMIT, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, WS_PATH};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

/// history: most publications not yet acknowledged (nobody subscribes, so
/// the server's pace is all that holds the publisher back).
const SPREAD_WINDOW: u64 = 256;

/// One resumable subscriber: where it is in the stream.
struct Resumer {
    stream: Wire,
    pending: Vec<u8>,
    /// The `seq` it expects next.
    next: u64,
    epoch: String,
    gaps: u64,
    duplicates: u64,
    open: bool,
}

/// What a subscribe (with or without `since`) was answered.
struct Subscribed {
    ws: RawWs,
    seq: u64,
    epoch: String,
    recovered: Option<bool>,
}

/// Connects and subscribes to [`CHANNEL`], from `since` if given.
fn subscribe(addr: SocketAddr, since: Option<(u64, &str)>) -> Result<Subscribed, String> {
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
            let epoch =
                text_after(&reply, r#""epoch":""#).ok_or_else(|| format!("no epoch in {reply}"))?;
            let recovered = match (
                reply.contains(r#""recovered":true"#),
                reply.contains(r#""recovered":false"#),
            ) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            return Ok(Subscribed {
                ws,
                seq: field(&reply, "seq").unwrap_or(0),
                epoch,
                recovered,
            });
        }
        if reply.contains(r#""type":"error""#) {
            return Err(format!("subscribe refused: {reply}"));
        }
    }
}

/// The string value after `key` (which ends with the opening quote).
fn text_after(text: &str, key: &str) -> Option<String> {
    let start = text.find(key)? + key.len();
    let len = text[start..].find('"')?;
    Some(text[start..start + len].to_owned())
}

impl Resumer {
    fn new(subscribed: Subscribed) -> Result<Resumer, String> {
        subscribed
            .ws
            .stream
            .set_nonblocking(true)
            .map_err(|e| format!("non-blocking: {e}"))?;
        Ok(Resumer {
            stream: subscribed.ws.stream,
            pending: subscribed.ws.buf,
            next: subscribed.seq + 1,
            epoch: subscribed.epoch,
            gaps: 0,
            duplicates: 0,
            open: true,
        })
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
                            if let Some(seq) = number_after(payload, br#""seq":"#) {
                                match seq.cmp(&self.next) {
                                    std::cmp::Ordering::Equal => self.next += 1,
                                    std::cmp::Ordering::Less => self.duplicates += 1,
                                    std::cmp::Ordering::Greater => {
                                        self.gaps += 1;
                                        self.next = seq + 1;
                                    }
                                }
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
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.open = false;
                    break;
                }
            };
            let used = self.consume(&buf[..keep + n]);
            let rest = buf[used..keep + n].to_vec();
            self.pending = rest;
        }
    }
}

/// The chaos scenario on one server (see the module docs).
pub(super) fn chaos(
    server: &mut Server,
    subscribers: usize,
    rate: u64,
    secs: u64,
    drop_percent: u64,
) -> Outcome {
    let mut out = Outcome::default();
    let poll = Poll::new();
    let mut poll = match poll {
        Ok(poll) => poll,
        Err(e) => {
            out.note(format!("no epoll: {e}"));
            return out;
        }
    };
    let mut subs: Vec<Resumer> = Vec::with_capacity(subscribers);
    let mut errors = 0;
    for _ in 0..subscribers {
        match subscribe(server.addr, None).and_then(Resumer::new) {
            Ok(sub) => subs.push(sub),
            Err(e) => {
                errors += 1;
                if errors == 1 {
                    out.note(format!("a subscriber could not connect: {e}"));
                }
            }
        }
    }
    for (i, sub) in subs.iter_mut().enumerate() {
        if poll
            .registry()
            .register(&mut sub.stream, Token(i), Interest::READABLE)
            .is_err()
        {
            sub.open = false;
        }
    }
    let publisher = match RawWs::handshake(server.addr, WS_PATH).and_then(|mut ws| {
        ws.expect_text()?;
        Ok(ws)
    }) {
        Ok(ws) => ws,
        Err(e) => {
            out.note(format!("the publisher could not connect: {e}"));
            return out;
        }
    };
    let shared = Shared::default();
    let count = rate.max(1) * secs;
    let per_round = (subs.len() as u64 * drop_percent / 100).max(1) as usize;
    let mut reconnects = 0u64;
    let mut lost = 0u64;
    let mut reconnect_errors = 0u64;
    let mut reconnect_time = Duration::ZERO;
    let mut buf = vec![0u8; crate::READ_BUFFER];
    let mut events = Events::with_capacity(1024);
    let clock = CpuClock::start(server);
    let rss_before = server.snapshot().rss_kib;

    let published: Published = thread::scope(|scope| {
        let publishing = scope.spawn(|| {
            let published = publish_paced(publisher, rate.max(1), count, &Feed::default());
            shared.total.store(published.count, Ordering::Release);
            shared.stop.store(true, Ordering::Release);
            published
        });
        let started = Instant::now();
        let mut next_round = started + Duration::from_secs(1);
        let mut victim = 0usize;
        let mut drained_since: Option<Instant> = None;
        loop {
            let done = shared.stop.load(Ordering::Acquire);
            let total = shared.total.load(Ordering::Acquire);
            if done && subs.iter().all(|s| !s.open || s.next > total) {
                break;
            }
            if done {
                let since = *drained_since.get_or_insert_with(Instant::now);
                if since.elapsed() > DRAIN_LIMIT {
                    println!("  !! gave up waiting for the last deliveries");
                    break;
                }
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
            // Every second while publishing: a slice of them drops and
            // comes back from where it was.
            if !done && Instant::now() >= next_round {
                next_round += Duration::from_secs(1);
                let began = Instant::now();
                for _ in 0..per_round {
                    let i = victim % subs.len();
                    victim += 1;
                    let sub = &mut subs[i];
                    // Whatever arrived before the drop is read first.
                    sub.drain(&mut buf);
                    let _ = poll.registry().deregister(&mut sub.stream);
                    let since = (sub.next - 1, sub.epoch.clone());
                    match subscribe(server.addr, Some((since.0, &since.1))) {
                        Ok(back) => {
                            reconnects += 1;
                            if back.recovered != Some(true) {
                                lost += 1;
                            }
                            let (next, gaps, duplicates) = (sub.next, sub.gaps, sub.duplicates);
                            match Resumer::new(back) {
                                Ok(mut fresh) => {
                                    // It continues where it was.
                                    fresh.next = next;
                                    fresh.gaps = gaps;
                                    fresh.duplicates = duplicates;
                                    let consumed = {
                                        let pending = std::mem::take(&mut fresh.pending);
                                        let used = fresh.consume(&pending);
                                        pending[used..].to_vec()
                                    };
                                    fresh.pending = consumed;
                                    let _ = poll.registry().register(
                                        &mut fresh.stream,
                                        Token(i),
                                        Interest::READABLE,
                                    );
                                    *sub = fresh;
                                }
                                Err(_) => reconnect_errors += 1,
                            }
                        }
                        Err(e) => {
                            reconnect_errors += 1;
                            if reconnect_errors == 1 {
                                println!("  !! a reconnection failed: {e}");
                            }
                            let _ = poll.registry().register(
                                &mut sub.stream,
                                Token(i),
                                Interest::READABLE,
                            );
                        }
                    }
                }
                reconnect_time += began.elapsed();
            }
        }
        publishing.join().unwrap_or_default()
    });
    let cpu = clock.stop(server);
    let rss_after = server.snapshot().rss_kib;
    let total = published.count;

    let exact = subs
        .iter()
        .filter(|s| s.next == total + 1 && s.gaps == 0 && s.duplicates == 0)
        .count();
    let gaps: u64 = subs.iter().map(|s| s.gaps).sum();
    let duplicates: u64 = subs.iter().map(|s| s.duplicates).sum();
    let closed = subs.iter().filter(|s| !s.open).count();
    out.row("subscribers", format!("{} / {subscribers}", subs.len()));
    out.row("publications", group(total as f64));
    if let Some(error) = &published.error {
        out.note(format!("the publisher stopped: {error}"));
    }
    out.row(
        "reconnections",
        format!(
            "{reconnects} ({} per second, {reconnect_errors} failed, {:.0} ms spent reconnecting)",
            per_round,
            reconnect_time.as_secs_f64() * 1e3
        ),
    );
    out.row("recovered: false", lost.to_string());
    out.row(
        "every seq exactly once",
        format!("{exact} / {} subscribers", subs.len()),
    );
    out.row("gaps, duplicates", format!("{gaps}, {duplicates}"));
    out.row("subscribers closed", closed.to_string());
    let metrics = metrics(server.addr);
    out.row(
        "wshub recoveries (lost)",
        format!(
            "{} ({})",
            metric(&metrics, "wshub_recoveries_total"),
            metric(&metrics, "wshub_recoveries_lost_total")
        ),
    );
    out.row(
        "wshub slow consumers",
        metric(&metrics, "wshub_slow_consumers_total"),
    );
    out.row(
        "wshub history",
        format!(
            "{} streams, {} entries, {} bytes",
            metric(&metrics, "wshub_history_streams"),
            metric(&metrics, "wshub_history_entries"),
            metric(&metrics, "wshub_history_bytes")
        ),
    );
    out.row(
        "server RSS",
        format!("{rss_before} KiB before, {rss_after} KiB after"),
    );
    let server_cpu = cpu.report(server.kind, &mut out);
    if exact < subs.len() {
        out.note(format!(
            "only {exact} of {} subscribers got every seq exactly once",
            subs.len()
        ));
    }
    out.figure(
        "every seq exactly once",
        100.0 * exact as f64 / subscribers.max(1) as f64,
        percent,
    );
    out.figure("gaps + duplicates", (gaps + duplicates) as f64, |v| {
        format!("{v:.0}")
    });
    out.figure("recovered: false", lost as f64, |v| format!("{v:.0}"));
    out.figure("reconnections", reconnects as f64, |v| format!("{v:.0}"));
    out.figure("server CPU", server_cpu, percent);
    if total > 0 {
        out.figure(
            "server CPU per publication",
            cpu.server * 1e9 / total as f64,
            show_ns,
        );
    }
    out
}

/// Publishes `count` publications round robin over `streams` channels, at
/// most [`SPREAD_WINDOW`] unanswered.
fn publish_spread(mut ws: RawWs, streams: usize, count: u64) -> Result<u64, String> {
    ws.stream
        .set_read_timeout(Some(Duration::from_millis(1)))
        .map_err(|e| format!("read timeout: {e}"))?;
    let (mut sent, mut acked) = (0u64, 0u64);
    let mut frames = Vec::with_capacity(64 * 1024);
    let deadline = Instant::now() + crate::PHASE_LIMIT;
    while acked < count {
        if Instant::now() > deadline {
            return Err(format!("only {acked} of {count} acknowledged in time"));
        }
        frames.clear();
        while sent < count && sent - acked < SPREAD_WINDOW {
            let message = format!(
                r#"{{"type":"publish","channel":"h-{}","correlationId":{sent},"data":{{"n":{sent},"pad":"{}"}}}}"#,
                sent % streams as u64,
                "x".repeat(40)
            );
            push_frame(&mut frames, OP_TEXT, message.as_bytes());
            sent += 1;
        }
        if !frames.is_empty() {
            ws.stream
                .write_all(&frames)
                .map_err(|e| format!("write: {e}"))?;
        }
        while let Some(reply) = ws.read_text()? {
            if reply.contains(r#""type":"published""#) {
                acked += 1;
            } else if reply.contains(r#""type":"error""#) {
                return Err(format!("the server answered {reply}"));
            }
        }
    }
    Ok(acked)
}

/// The history scenario on one server (see the module docs).
pub(super) fn history(server: &mut Server, streams: usize, per_stream: u64) -> Outcome {
    let mut out = Outcome::default();
    let mut publisher = match RawWs::handshake(server.addr, WS_PATH) {
        Ok(ws) => ws,
        Err(e) => {
            out.note(format!("the publisher could not connect: {e}"));
            return out;
        }
    };
    if let Err(e) = publisher.expect_text() {
        out.note(format!("no welcome: {e}"));
        return out;
    }
    thread::sleep(Duration::from_millis(300));
    let before = server.snapshot();
    let clock = CpuClock::start(server);
    let started = Instant::now();
    let count = streams as u64 * per_stream;
    let published = publish_spread(publisher, streams.max(1), count);
    let took = started.elapsed();
    let cpu = clock.stop(server);
    thread::sleep(Duration::from_millis(300));
    let after = server.snapshot();
    let published = match published {
        Ok(n) => n,
        Err(e) => {
            out.note(format!("the publisher stopped: {e}"));
            return out;
        }
    };
    let metrics = metrics(server.addr);
    let history_bytes: f64 = metric(&metrics, "wshub_history_bytes")
        .parse()
        .unwrap_or(0.0);
    let rss_growth = after.rss_kib.saturating_sub(before.rss_kib) as f64 * 1024.0;
    out.row("publications", group(published as f64));
    out.row("streams", group(streams as f64));
    out.row(
        "publications/s",
        group(published as f64 / took.as_secs_f64().max(1e-9)),
    );
    out.row(
        "server RSS",
        format!(
            "{} KiB before, {} KiB after, {} KiB at the peak",
            before.rss_kib, after.rss_kib, after.peak_kib
        ),
    );
    out.row(
        "wshub history",
        format!(
            "{} streams, {} entries, {} bytes",
            metric(&metrics, "wshub_history_streams"),
            metric(&metrics, "wshub_history_entries"),
            metric(&metrics, "wshub_history_bytes")
        ),
    );
    let server_cpu = cpu.report(server.kind, &mut out);
    out.figure(
        "publications/s",
        published as f64 / took.as_secs_f64().max(1e-9),
        group,
    );
    out.figure(
        "server CPU per publication",
        cpu.server * 1e9 / published.max(1) as f64,
        show_ns,
    );
    out.figure(
        "RSS growth per stream",
        rss_growth / streams.max(1) as f64,
        |b| format!("{b:.0} B"),
    );
    out.figure(
        "RSS above idle at the peak",
        after.peak_kib.saturating_sub(before.rss_kib) as f64 / 1024.0,
        |m| format!("{m:.1} MiB"),
    );
    out.figure(
        "history bytes per stream",
        history_bytes / streams.max(1) as f64,
        |b| format!("{b:.0} B"),
    );
    out.figure("server CPU", server_cpu, percent);
    out
}

/// Publishes `from..to` to [`CHANNEL`], each `pad` long, at most
/// [`SPREAD_WINDOW`] unanswered.
fn publish_acked(ws: &mut RawWs, from: u64, to: u64, pad: &str) -> Result<(), String> {
    ws.stream
        .set_read_timeout(Some(Duration::from_millis(1)))
        .map_err(|e| format!("read timeout: {e}"))?;
    let (mut sent, mut acked) = (from, from);
    let mut frames = Vec::with_capacity(1 << 20);
    let deadline = Instant::now() + crate::PHASE_LIMIT;
    while acked < to {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {} acknowledged in time",
                acked - from,
                to - from
            ));
        }
        frames.clear();
        while sent < to && sent - acked < SPREAD_WINDOW {
            let message = format!(
                r#"{{"type":"publish","channel":"{CHANNEL}","correlationId":{sent},"data":{{"n":{sent},"pad":"{pad}"}}}}"#
            );
            push_frame(&mut frames, OP_TEXT, message.as_bytes());
            sent += 1;
        }
        if !frames.is_empty() {
            ws.stream
                .write_all(&frames)
                .map_err(|e| format!("write: {e}"))?;
        }
        while let Some(reply) = ws.read_text()? {
            if reply.contains(r#""type":"published""#) {
                acked += 1;
            } else if reply.contains(r#""type":"error""#) {
                return Err(format!("the server answered {reply}"));
            }
        }
    }
    Ok(())
}

/// The catch-up scenario on one server (see the module docs).
pub(super) fn catch_up(server: &mut Server, mib: u64) -> Outcome {
    const SIZE: usize = 8 * 1024;
    let mut out = Outcome::default();
    let count = (mib << 20) / SIZE as u64;
    let missed = (count / 2).min((32 << 20) / SIZE as u64);
    let pad = "x".repeat(SIZE);
    thread::sleep(Duration::from_millis(300));
    let idle = server.snapshot();
    let run = || -> Result<(u64, String), String> {
        // Where the stream starts.
        let first = subscribe(server.addr, None)?;
        let epoch = first.epoch;
        drop(first.ws);
        let mut publisher = RawWs::handshake(server.addr, WS_PATH)?;
        publisher.expect_text()?;
        publish_acked(&mut publisher, 0, missed, &pad)?;
        let mut resumer = subscribe(server.addr, Some((0, &epoch)))?;
        if resumer.recovered != Some(true) {
            return Err(format!("resumed with recovered {:?}", resumer.recovered));
        }
        // A tenth of what it missed, then it reads no more.
        let mut read = 0;
        while read < missed / 10 {
            match resumer.ws.expect_text()? {
                text if text.contains(r#""seq""#) => read += 1,
                _ => {}
            }
        }
        publish_acked(&mut publisher, missed, count, &pad)?;
        thread::sleep(Duration::from_secs(1));
        // What became of it: the rest of what it was sent, then its end.
        resumer
            .ws
            .stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .ok();
        let ending = loop {
            match resumer.ws.read_text() {
                Ok(Some(_)) => read += 1,
                Ok(None) => break "still connected, sent nothing more".to_owned(),
                Err(e) => break e,
            }
        };
        Ok((read, ending))
    };
    let result = run();
    let end = server.snapshot();
    let metrics = metrics(server.addr);
    match result {
        Ok((read, ending)) => {
            out.row(
                "catch-up",
                format!("{} publications, {mib} MiB", group(count as f64)),
            );
            out.row("read by the client", group(read as f64));
            out.row("the client", ending);
        }
        Err(e) => out.note(format!("the run stopped: {e}")),
    }
    out.row(
        "server RSS",
        format!(
            "{} KiB idle, {} KiB at the peak, {} KiB at the end",
            idle.rss_kib, end.peak_kib, end.rss_kib
        ),
    );
    out.row(
        "wshub history",
        format!(
            "{} entries, {} bytes",
            metric(&metrics, "wshub_history_entries"),
            metric(&metrics, "wshub_history_bytes")
        ),
    );
    out.row(
        "wshub slow consumers",
        metric(&metrics, "wshub_slow_consumers_total"),
    );
    out.row(
        "wshub queued for clients",
        format!(
            "{} messages, {} bytes",
            metric(&metrics, "wshub_queued_messages"),
            metric(&metrics, "wshub_queued_bytes")
        ),
    );
    out.figure(
        "RSS above idle at the peak",
        end.peak_kib.saturating_sub(idle.rss_kib) as f64 / 1024.0,
        |m| format!("{m:.1} MiB"),
    );
    out.figure(
        "RSS above idle at the end",
        end.rss_kib.saturating_sub(idle.rss_kib) as f64 / 1024.0,
        |m| format!("{m:.1} MiB"),
    );
    out
}

impl Bench {
    pub(crate) fn chaos(
        &self,
        subscribers: usize,
        rate: u64,
        secs: u64,
        drop_percent: u64,
    ) -> Summary {
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
            |server, _, _| chaos(server, subscribers, rate, secs, drop_percent),
        )
    }

    pub(crate) fn history(&self, streams: usize, per_stream: u64) -> Summary {
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
            |server, _, _| history(server, streams, per_stream),
        )
    }

    pub(crate) fn catch_up(&self, mib: u64) -> Summary {
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
            |server, _, _| catch_up(server, mib),
        )
    }
}
