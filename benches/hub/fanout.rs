//! The fan-out family: one publisher and many subscribers of one channel,
//! flat out (`fanout-max`), at a steady rate (`fanout-paced`) and across
//! the three envelopes (`fanout-envelopes`), with a dashboard watching
//! (`fanout-dashboard`); the publishers and the
//! subscribers' readers (one epoll thread per load-generator CPU) that
//! check every message arrives exactly once and in order. What is
//! published, on which channel, and how the clients connect (TLS,
//! permessage-deflate) is a [`Feed`]; `features.rs` varies it.

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::{
    Dial, Inflater, Opened, Parse, RawWs, Wire, close_reason, field, metric, number_after,
    open_client, open_many_with, parse_frame_with, push_frame,
};
use crate::harness::{Bench, Outcome, now_ns, wait_for};
use crate::peers::{CpuClock, Kind, Server, wshub_capacity};
use crate::report::{Histogram, Summary, Tally, bytes, group, percent, show_ns, show_us};
use crate::{
    ACK_WINDOW, BATCH_PAUSE, CHANNEL, CONNECT_AT_ONCE, DELIVERY_WINDOW, DRAIN_LIMIT,
    ENVELOPE_PATHS, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, PACED_GRACE, PAYLOAD_BYTES, PHASE_LIMIT,
    READ_BUFFER, STEP_TIMEOUT, WS_PATH, generator_cpus,
};
use mio::{Events, Interest, Poll, Token};

#[derive(Clone, Copy)]
pub(crate) enum Pace {
    /// As fast as the server answers, for this long.
    Max { run_for: Duration },
    /// `count` publications, `rate` per second.
    Paced { rate: u64, count: u64 },
}

/// One publisher and `subscribers` subscribers of [`CHANNEL`], each
/// connecting on one of `paths` in turn.
pub(crate) fn fanout(
    server: &mut Server,
    subscribers: usize,
    pace: Pace,
    paths: &[&str],
) -> Outcome {
    fanout_feed(server, subscribers, pace, paths, &Feed::default())
}

/// [`fanout`] of `feed`'s publications, its clients connected as it says.
pub(crate) fn fanout_feed(
    server: &mut Server,
    subscribers: usize,
    pace: Pace,
    paths: &[&str],
    feed: &Feed,
) -> Outcome {
    let fleet = Fleet {
        hubs: vec![server],
        pids: Vec::new(),
    };
    fanout_fleet(&fleet, subscribers, pace, paths, feed).0
}

/// What a fan-out publishes, on which channel, and how its clients (the
/// publisher too) connect. The default is every scenario's: plain TCP, no
/// extension offered, [`PAYLOAD_BYTES`]-byte payloads on [`CHANNEL`].
pub(crate) struct Feed {
    pub(crate) dial: Dial,
    pub(crate) channel: &'static str,
    /// The publications' `event` (their `type` as delivered); `None`: the
    /// hub's default.
    pub(crate) event: Option<&'static str>,
    pub(crate) payload: Payload,
}

impl Default for Feed {
    fn default() -> Feed {
        Feed {
            dial: Dial::default(),
            channel: CHANNEL,
            event: None,
            payload: Payload::Padded(PAYLOAD_BYTES),
        }
    }
}

/// The `data` of a fan-out's publications: a JSON object that carries its
/// sequence number and send time first, under keys nothing else uses
/// (`Kseq`, `Ksent`), which is how the readers check each delivery.
#[derive(Clone, Copy)]
pub(crate) enum Payload {
    /// Those two keys and a `pad` string: this many bytes in all.
    Padded(usize),
    /// Those two keys, then this object's own members.
    Object(&'static str),
}

impl Payload {
    /// The `data` of publication `seq`, sent at `sent_ns`.
    pub(crate) fn data(&self, seq: u64, sent_ns: u64) -> String {
        let mut data = format!(r#"{{"Kseq":{seq},"Ksent":{sent_ns}"#);
        match self {
            Payload::Padded(bytes) => {
                data.push_str(r#","pad":""#);
                let pad = bytes.saturating_sub(data.len() + 2);
                data.extend(std::iter::repeat_n('x', pad));
                data.push_str("\"}");
            }
            Payload::Object(object) => {
                let members = object
                    .trim_start()
                    .strip_prefix('{')
                    .expect("a payload template is a JSON object");
                if !members.trim_start().starts_with('}') {
                    data.push(',');
                }
                data.push_str(members);
            }
        }
        data
    }
}

/// The servers a fan-out runs on: subscriber `i` connects to
/// `hubs[i % hubs.len()]`, the publisher to the first; the server side's
/// CPU is theirs and `pids`' (Redis).
pub(crate) struct Fleet<'a> {
    pub(crate) hubs: Vec<&'a Server>,
    pub(crate) pids: Vec<u32>,
}

impl Fleet<'_> {
    pub(crate) fn all_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.hubs.iter().map(|h| h.child.id()).collect();
        pids.extend(&self.pids);
        pids
    }
}

/// [`fanout_feed`] on a fleet; also returns how many publications there were.
pub(crate) fn fanout_fleet(
    fleet: &Fleet<'_>,
    subscribers: usize,
    pace: Pace,
    paths: &[&str],
    feed: &Feed,
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
        let part = open_many_with(
            &feed.dial,
            hub.addr,
            n,
            CONNECT_AT_ONCE,
            Some(feed.channel),
            paths,
        );
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
    // The publisher offers no extension: it reads only acks.
    let publisher_dial = Dial {
        deflate: false,
        ..feed.dial.clone()
    };
    let publisher = match open_client(&publisher_dial, server.addr, WS_PATH, None) {
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
    if let Some(agreed) = publisher.stream.tls_agreed() {
        out.row("TLS", agreed);
    }
    let deflating = opened
        .clients
        .iter()
        .filter(|c| c.inflater.is_some())
        .count();
    if feed.dial.deflate {
        out.row(
            "permessage-deflate agreed",
            format!("{deflating} / {subscribed} subscribers"),
        );
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
            Pace::Max { run_for } => publish_max(publisher, run_for, subscribed, &shared, feed),
            Pace::Paced { rate, count } => publish_paced(publisher, rate, count, feed),
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
                metric(&feed.dial.metrics(hub.addr), "wshub_slow_consumers_total"),
            );
        }
    }
    if feed.dial.deflate {
        report.bandwidth(deflating > 0, &mut out);
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

/// What a publisher did.
#[derive(Default)]
pub(crate) struct Published {
    pub(crate) count: u64,
    /// When the first publication went out (ns on [`now_ns`]'s clock).
    pub(crate) first_ns: u64,
    pub(crate) acks: u64,
    /// `published` acks that counted fewer than every subscriber.
    pub(crate) short_acks: u64,
    /// `error` replies.
    pub(crate) errors: u64,
    pub(crate) waits_ack: u64,
    pub(crate) waits_delivery: u64,
    pub(crate) max_late_us: u64,
    pub(crate) error: Option<String>,
}

/// Publishes for `run_for` as fast as the windows allow: at most
/// [`ACK_WINDOW`] publications unanswered, at most [`DELIVERY_WINDOW`]
/// ahead of what the average subscriber has read.
pub(crate) fn publish_max(
    mut ws: RawWs,
    run_for: Duration,
    subscribers: usize,
    shared: &Shared,
    feed: &Feed,
) -> Published {
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
                push_publish(&mut frames, feed, done.count, now_ns(), Some(done.count));
                done.count += 1;
            }
            if !frames.is_empty()
                && let Err(e) = ws
                    .stream
                    .write_all(&frames)
                    .and_then(|()| ws.stream.flush())
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
pub(crate) fn publish_paced(mut ws: RawWs, rate: u64, count: u64, feed: &Feed) -> Published {
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
            push_publish(&mut frames, feed, done.count, now, None);
            done.count += 1;
        }
        if let Err(e) = ws
            .stream
            .write_all(&frames)
            .and_then(|()| ws.stream.flush())
        {
            done.error = Some(format!("write: {e}"));
            break;
        }
    }
    done
}

/// A `publish` frame of `feed`'s: its channel, its event if any, and its
/// payload carrying this sequence number and send time.
pub(crate) fn push_publish(
    frames: &mut Vec<u8>,
    feed: &Feed,
    seq: u64,
    sent_ns: u64,
    correlation: Option<u64>,
) {
    let mut message = format!(r#"{{"type":"publish","channel":"{}""#, feed.channel);
    if let Some(event) = feed.event {
        message.push_str(&format!(r#","event":"{event}""#));
    }
    if let Some(id) = correlation {
        message.push_str(&format!(r#","correlationId":{id}"#));
    }
    message.push_str(r#","data":"#);
    message.push_str(&feed.payload.data(seq, sent_ns));
    message.push('}');
    push_frame(frames, OP_TEXT, message.as_bytes());
}

/// What publisher and readers share.
pub(crate) struct Shared {
    /// Deliveries read so far, every subscriber together.
    pub(crate) delivered: AtomicU64,
    /// How many publications there were, once the publisher is done.
    pub(crate) total: AtomicU64,
    /// Subscribers that have all `total`, or closed.
    pub(crate) complete: AtomicUsize,
    pub(crate) stop: AtomicBool,
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
pub(crate) struct Sub {
    pub(crate) stream: Wire,
    /// permessage-deflate, if agreed.
    pub(crate) inflater: Option<Inflater>,
    /// The start of a frame that has not all arrived.
    pub(crate) pending: Vec<u8>,
    pub(crate) next: u64,
    pub(crate) received: u64,
    pub(crate) anomalies: u64,
    pub(crate) open: bool,
    pub(crate) counted: bool,
}

impl Sub {
    pub(crate) fn new(ws: RawWs) -> Sub {
        ws.stream
            .set_nonblocking(true)
            .expect("make a subscriber non-blocking");
        Sub {
            stream: ws.stream,
            inflater: ws.inflater,
            pending: ws.buf,
            next: 0,
            received: 0,
            anomalies: 0,
            open: true,
            counted: false,
        }
    }

    pub(crate) fn close(&mut self, report: &mut ReaderReport, why: String) {
        self.open = false;
        report.closes.add(why);
    }

    /// Handles the complete frames at the start of `data`; returns how many
    /// bytes they took and how many were publications.
    pub(crate) fn consume(
        &mut self,
        data: &[u8],
        now: u64,
        report: &mut ReaderReport,
    ) -> (usize, u64) {
        let mut at = 0;
        let mut got = 0;
        while self.open {
            match parse_frame_with(&data[at..], self.inflater.is_some()) {
                Parse::Partial => break,
                Parse::Bad(why) => self.close(report, why.to_owned()),
                Parse::Frame {
                    fin,
                    opcode,
                    start,
                    end,
                    compressed,
                } => {
                    let payload = &data[at + start..at + end];
                    at += end;
                    match opcode {
                        OP_TEXT if fin && compressed => {
                            let mut inflater = self.inflater.take();
                            match inflater.as_mut().map(|i| i.inflate(payload)) {
                                Some(Ok(text)) => {
                                    got += u64::from(self.on_text(text, true, now, report))
                                }
                                Some(Err(why)) => self.close(report, why.to_owned()),
                                None => self.close(report, "RSV1 without deflate".to_owned()),
                            }
                            self.inflater = inflater;
                        }
                        OP_TEXT if fin => {
                            got += u64::from(self.on_text(payload, false, now, report))
                        }
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

    /// A text message (inflated if it came `compressed`): a publication
    /// if it carries `Kseq`.
    pub(crate) fn on_text(
        &mut self,
        payload: &[u8],
        compressed: bool,
        now: u64,
        report: &mut ReaderReport,
    ) -> bool {
        let Some(seq) = number_after(payload, br#""Kseq":"#) else {
            return false;
        };
        report.sizes.add(payload.len() as u64, compressed);
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
    pub(crate) fn drain(&mut self, buf: &mut [u8], report: &mut ReaderReport) -> u64 {
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
            report.wire_bytes += n as u64;
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
pub(crate) struct ReaderReport {
    pub(crate) latency: Histogram,
    pub(crate) received: u64,
    pub(crate) last_rx_ns: u64,
    pub(crate) complete: usize,
    pub(crate) anomalies: u64,
    pub(crate) closes: Tally,
    /// Bytes read off the subscribers' sockets while publications came
    /// (over TLS: the plaintext, the WebSocket frames).
    pub(crate) wire_bytes: u64,
    /// The publications' texts, inflated.
    pub(crate) sizes: Sizes,
}

/// The sizes of the publications' texts as read (inflated when they came
/// compressed).
#[derive(Default, Clone, Copy)]
pub(crate) struct Sizes {
    pub(crate) total: u64,
    pub(crate) min: Option<u64>,
    pub(crate) max: u64,
    pub(crate) compressed: u64,
}

impl Sizes {
    fn add(&mut self, len: u64, compressed: bool) {
        self.total += len;
        self.min = Some(self.min.map_or(len, |m| m.min(len)));
        self.max = self.max.max(len);
        self.compressed += u64::from(compressed);
    }

    fn merge(&mut self, other: Sizes) {
        self.total += other.total;
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = self.max.max(other.max);
        self.compressed += other.compressed;
    }
}

impl ReaderReport {
    pub(crate) fn merge(mut self, other: ReaderReport) -> ReaderReport {
        self.latency.merge(&other.latency);
        self.received += other.received;
        self.last_rx_ns = self.last_rx_ns.max(other.last_rx_ns);
        self.complete += other.complete;
        self.anomalies += other.anomalies;
        self.closes.merge(other.closes);
        self.wire_bytes += other.wire_bytes;
        self.sizes.merge(other.sizes);
        self
    }

    /// The bandwidth rows and figures: bytes on the wire and message bytes
    /// per delivery, and how many came compressed (`agreed`: the
    /// subscribers agreed permessage-deflate).
    fn bandwidth(&self, agreed: bool, out: &mut Outcome) {
        let per = |n: u64| n as f64 / self.received.max(1) as f64;
        let sizes = &self.sizes;
        out.row(
            "message bytes (text, inflated)",
            format!(
                "{:.0} per delivery ({} to {})",
                per(sizes.total),
                sizes.min.unwrap_or(0),
                sizes.max
            ),
        );
        out.row(
            "bytes read off the sockets",
            format!(
                "{:.0} per delivery ({:.1} MB in all)",
                per(self.wire_bytes),
                self.wire_bytes as f64 / 1e6
            ),
        );
        out.row(
            "deliveries compressed",
            format!("{} of {}", sizes.compressed, self.received),
        );
        if agreed && sizes.compressed < self.received {
            out.note(format!(
                "{} of {} deliveries came uncompressed (messages of {} to {} bytes): \
                 under the hub's --compression-min-size, or no smaller compressed",
                self.received - sizes.compressed,
                self.received,
                sizes.min.unwrap_or(0),
                sizes.max
            ));
        }
        if self.received > 0 {
            out.figure("wire bytes per delivery", per(self.wire_bytes), bytes);
            out.figure("message bytes per delivery", per(sizes.total), bytes);
            out.figure(
                "deliveries compressed",
                100.0 * sizes.compressed as f64 / self.received as f64,
                percent,
            );
        }
    }
}

/// One reader thread: epoll over its subscribers until told to stop.
pub(crate) fn read_subscribers(
    mut subs: Vec<Sub>,
    shared: &Shared,
    pause: Duration,
) -> ReaderReport {
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

impl Bench {
    pub(crate) fn fanout_max(&self, subscribers: usize, secs: u64) -> Summary {
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
    pub(crate) fn fanout_envelopes(&self, subscribers: usize, secs: u64) -> Summary {
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

    /// wshub alone: fanout-max with no dashboard, then with one open (a
    /// connection on `/admin` reading its stream every second). The
    /// analytics are always on: this is what watching adds.
    pub(crate) fn fanout_dashboard(&self, subscribers: usize, secs: u64) -> Summary {
        let title = format!(
            "fanout-dashboard: wshub, 1 publisher -> {subscribers} subscribers, flat out for \
             {secs} s, with no dashboard and with one open"
        );
        let Some(launch) = self.wshub_only("fanout-dashboard") else {
            return Summary::new(&title, self.runs, Vec::new(), Vec::new());
        };
        let pace = Pace::Max {
            run_for: Duration::from_secs(secs),
        };
        let sides = [
            (NO_DASHBOARD, launch, &[WS_PATH][..]),
            ("dashboard open", launch, &[WS_PATH][..]),
        ];
        self.compare_among(
            &title,
            &sides,
            &wshub_capacity(subscribers + 2),
            |server, label, paths| {
                let watcher = (label != NO_DASHBOARD).then(|| Watcher::open(server.addr));
                let mut outcome = fanout(server, subscribers, pace, paths);
                if let Some(watcher) = watcher {
                    let seen = watcher.stop();
                    outcome.note(format!("the dashboard read {seen} admin_stats messages"));
                }
                outcome
            },
        )
    }

    pub(crate) fn fanout_paced(&self, subscribers: usize, rate: u64, secs: u64) -> Summary {
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
}

/// The label of fanout-dashboard's side with no dashboard.
const NO_DASHBOARD: &str = "no dashboard";

/// A dashboard's connection (`/admin`, development mode: no token) read by
/// a thread of its own until stopped.
struct Watcher {
    stop: std::sync::Arc<AtomicBool>,
    thread: thread::JoinHandle<usize>,
}

impl Watcher {
    fn open(addr: std::net::SocketAddr) -> Watcher {
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopping = std::sync::Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let Ok(stream) = std::net::TcpStream::connect(addr) else {
                return 0;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let url = format!("ws://{addr}/admin");
            let Ok((mut ws, _)) = tungstenite::client(url.as_str(), stream) else {
                return 0;
            };
            let mut stats = 0;
            while !stopping.load(Ordering::Relaxed) {
                match ws.read() {
                    Ok(tungstenite::Message::Text(text)) if text.contains("\"admin_stats\"") => {
                        stats += 1
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
            stats
        });
        Watcher { stop, thread }
    }

    /// Stops reading: how many `admin_stats` it read.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}
