//! The servers under test: wshub and its reference peers (tokio, node),
//! each built if needed, started fresh for every run as a process of its
//! own (pinned to the server CPUs), watched through `/proc` (memory,
//! threads, descriptors, CPU time) and stopped when dropped.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::harness::Outcome;
use crate::report::Lines;
use crate::{
    PINNED, SATURATED, STEP_TIMEOUT, TICKS_PER_SEC, WITH_LIMITS, cpus_busy, generator_cpus,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Wshub,
    Tokio,
    Node,
    /// `examples/echo_service.rs`: wshub embedded in a program that answers
    /// requests through the library receiver (the request scenario only).
    Library,
}

impl Kind {
    pub(crate) const ALL: [Kind; 3] = [Kind::Wshub, Kind::Tokio, Kind::Node];

    pub(crate) fn name(self) -> &'static str {
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
pub(crate) struct Launch {
    pub(crate) kind: Kind,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
}

/// Every server asked for that can run here; the others are skipped with
/// the reason.
pub(crate) fn prepare(kinds: &[Kind]) -> Vec<Launch> {
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

pub(crate) fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// wshub's `--help`, read once: flags are only passed if the binary has them.
pub(crate) fn wshub_help() -> &'static str {
    static HELP: OnceLock<String> = OnceLock::new();
    HELP.get_or_init(|| {
        Command::new(env!("CARGO_BIN_EXE_wshub"))
            .arg("--help")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    })
}

pub(crate) fn wshub_has(flag: &str) -> bool {
    wshub_help().contains(&format!("{flag} ")) || wshub_help().contains(&format!("{flag}\n"))
}

pub(crate) fn wshub_launch() -> Launch {
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
pub(crate) fn wshub_capacity(clients: usize) -> Vec<String> {
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
pub(crate) fn tokio_launch() -> Result<Launch, String> {
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
pub(crate) fn library_launch() -> Result<Launch, String> {
    // Beside the wshub binary this bench runs: the same target directory,
    // wherever CARGO_TARGET_DIR puts it.
    let release = Path::new(env!("CARGO_BIN_EXE_wshub"))
        .parent()
        .map_or_else(|| root().join("target/release"), Path::to_path_buf);
    let binary = release.join("examples/echo_service");
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
pub(crate) fn locked_version(lock: &str, name: &str) -> String {
    let entry = format!("name = \"{name}\"\nversion = \"");
    lock.split_once(&entry)
        .and_then(|(_, rest)| rest.split('"').next())
        .unwrap_or("?")
        .to_owned()
}

/// The latest modification time among these files and folders' files.
pub(crate) fn newest_change(paths: &[PathBuf]) -> Option<SystemTime> {
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
pub(crate) fn node_launch() -> Result<Launch, String> {
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
pub(crate) struct Server {
    pub(crate) kind: Kind,
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    /// stderr lines that are not `INFO` (warnings, errors, a crash).
    pub(crate) complaints: Arc<Mutex<Lines>>,
}

/// What `/proc/<pid>` says about a server.
#[derive(Clone, Copy)]
pub(crate) struct Snapshot {
    pub(crate) rss_kib: u64,
    /// The most resident memory since the process started (`VmHWM`).
    pub(crate) peak_kib: u64,
    pub(crate) threads: u64,
    pub(crate) fds: u64,
    /// Memory mappings; each thread costs a few, and the kernel caps them
    /// at `vm.max_map_count`.
    pub(crate) maps: u64,
    pub(crate) cpu: Duration,
}

impl Server {
    pub(crate) fn start(
        launch: &Launch,
        extra: &[String],
        cpus: Option<&str>,
    ) -> Result<Server, String> {
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
                    // wshub says wss:// when it serves TLS.
                    let listening = ["listening on ws://", "listening on wss://"]
                        .iter()
                        .find_map(|start| line.split(start).nth(1));
                    if let Some(rest) = listening {
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

    pub(crate) fn snapshot(&self) -> Snapshot {
        proc_snapshot(&format!("/proc/{}", self.child.id()))
    }

    /// How the server ended, if it has.
    pub(crate) fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|s| s.to_string())
    }

    /// Its stderr lines (not INFO) that contain `word`: the first, and how many.
    pub(crate) fn complaints_about(&self, word: &str) -> Option<(String, usize)> {
        let complaints = self.complaints.lock().expect("complaints lock");
        let mut matching = complaints.lines.iter().filter(|l| l.contains(word));
        let first = matching.next()?.clone();
        Some((first, 1 + matching.count()))
    }

    /// SIGTERM, then SIGKILL if it takes more than 15 s.
    pub(crate) fn stop(mut self) {
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

pub(crate) fn proc_snapshot(dir: &str) -> Snapshot {
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
pub(crate) fn stat_cpu(stat: &str) -> Duration {
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
pub(crate) fn own_cpu() -> Duration {
    stat_cpu(&fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// This process's soft limit on open files.
pub(crate) fn own_fd_limit() -> Option<u64> {
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
pub(crate) struct CpuClock {
    pub(crate) server: Duration,
    pub(crate) generator: Duration,
    /// Busy time of the servers' CPUs and of the load generator's.
    pub(crate) busy: Option<(Duration, Duration)>,
    pub(crate) started: Instant,
}

/// What a [`CpuClock`] measured, in seconds.
pub(crate) struct CpuUse {
    pub(crate) wall: f64,
    pub(crate) server: f64,
    pub(crate) generator: f64,
    /// Busy time of the servers' CPUs and of the load generator's.
    pub(crate) busy: Option<(f64, f64)>,
}

/// CPU time of these processes together.
pub(crate) fn cpu_of(pids: &[u32]) -> Duration {
    pids.iter()
        .map(|pid| proc_snapshot(&format!("/proc/{pid}")).cpu)
        .sum()
}

impl CpuClock {
    pub(crate) fn start(server: &Server) -> CpuClock {
        CpuClock::start_pids(&[server.child.id()])
    }

    /// The server side is several processes (hubs, and Redis).
    pub(crate) fn start_pids(pids: &[u32]) -> CpuClock {
        CpuClock {
            server: cpu_of(pids),
            generator: own_cpu(),
            busy: PINNED.get().map(|(s, c)| (cpus_busy(s), cpus_busy(c))),
            started: Instant::now(),
        }
    }

    pub(crate) fn stop(&self, server: &Server) -> CpuUse {
        self.stop_pids(&[server.child.id()])
    }

    pub(crate) fn stop_pids(&self, pids: &[u32]) -> CpuUse {
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
    pub(crate) fn report(&self, kind: Kind, out: &mut Outcome) -> f64 {
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
    pub(crate) fn others(
        &self,
        out: &mut Outcome,
        whose: &str,
        cpus: &[usize],
        busy: f64,
        ours: f64,
    ) {
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
