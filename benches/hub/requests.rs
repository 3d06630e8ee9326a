//! Round trips: application pings answered by the hub (`ping`), and
//! requests answered by the hub, by an embedding program's receiver and by
//! a service connection (`request`).

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::{RawWs, field, open_many};
use crate::harness::{Bench, Outcome};
use crate::peers::{CpuClock, Kind, Launch, Server, library_launch, wshub_capacity};
use crate::report::{Histogram, Summary, Tally, group, percent, show_us};
use crate::{CONNECT_AT_ONCE, WS_PATH};

/// `clients` clients sending application pings, `rate` per second in all
/// (0: each as soon as its last pong is in), for `run_for`.
pub(crate) fn ping(server: &mut Server, clients: usize, rate: u64, run_for: Duration) -> Outcome {
    round_trips(server, clients, rate, run_for, "ping", "pong")
}

/// `clients` clients each sending `request`s and waiting for the `reply`
/// with its `correlationId`, `rate` per second in all (0: flat out).
pub(crate) fn round_trips(
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
pub(crate) const SERVICE_TOKEN: &str = "bench-service-token";

/// Runs `body` while a service connection (a thread of this process)
/// answers every `echo` with `echoed`, as a backend in another language would.
pub(crate) fn with_service(
    server: &mut Server,
    body: impl FnOnce(&mut Server) -> Outcome,
) -> Outcome {
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

impl Bench {
    /// A request -> reply round trip answered by the hub itself (`ping`),
    /// by a program through the library receiver, and by a backend's
    /// service connection.
    pub(crate) fn request(&self, clients: usize, rate: u64, secs: u64) -> Summary {
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

    pub(crate) fn ping(&self, clients: usize, rate: u64, secs: u64) -> Summary {
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
}
