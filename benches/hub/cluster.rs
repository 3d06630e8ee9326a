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

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{
    Bench, Fleet, Kind, Outcome, Pace, STEP_TIMEOUT, Server, Summary, WS_PATH, cpu_of,
    fanout_fleet, header, metric, metrics, show_ns, table, wshub_capacity,
};

/// A `redis-server` for the scenario, stopped when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(cpus: Option<&str>) -> Result<Redis, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port: {e}"))?;
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
        let child = command
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start redis-server ({e}): install it to measure two hubs")
            })?;
        let redis = Redis { child, port };
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !redis.pings() {
            if Instant::now() > deadline {
                return Err("redis-server did not answer".to_owned());
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }

    fn pings(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        stream.set_read_timeout(Some(Duration::from_secs(1))).ok();
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
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
                    let (outcome, _) = fanout_fleet(&fleet, subscribers, pace, &[WS_PATH]);
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
        launch: &super::Launch,
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
        let (mut outcome, published) = fanout_fleet(&fleet, subscribers, pace, &[WS_PATH]);
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
