//! The `wshub` binary as an operator runs it: flags and environment, exit
//! codes, log lines, and a graceful stop on SIGTERM or SIGINT.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, unbounded};
use serde_json::json;
use support::{Client, DEADLINE};

const BIN: &str = env!("CARGO_BIN_EXE_wshub");

/// A running binary whose log lines arrive on a channel.
struct Running {
    child: Child,
    lines: Receiver<String>,
    addr: SocketAddr,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        Running::start_with_env(args, &[])
    }

    fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = unbounded();
        // Keep draining the pipe so the hub never blocks on logging.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut running = Running {
            child,
            lines,
            addr: "127.0.0.1:0".parse().unwrap(),
            seen: Vec::new(),
        };
        let line = running.wait_line("listening on ws://");
        running.addr = listening_on(&line);
        running
    }

    /// Waits for a log line containing `needle`.
    fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let line = self
                .lines
                .recv_deadline(deadline)
                .unwrap_or_else(|_| panic!("no log line with {needle:?}; saw {:#?}", self.seen));
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the binary to exit and reads its log to the end: the
    /// last lines may still be in the pipe when the process is gone, so
    /// the end is the pipe's end (the log thread's sender dropped), not
    /// the exit.
    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.lines.recv_deadline(deadline) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("the binary did not exit; saw {:#?}", self.seen)
                }
            }
        }
        let status = self.child.wait().expect("the binary's exit status");
        status.code().expect("exited, not killed")
    }
}

/// The address in the hub's start line (`wshub listening on ws://ADDR/ws`).
fn listening_on(line: &str) -> SocketAddr {
    line.split("ws://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("an address in the start line: {line}"))
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn help_and_version_print_and_exit_zero() {
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for flag in [
        "--host",
        "--port",
        "--path",
        "--heartbeat-interval",
        "--client-timeout",
        "--max-connections",
        "--max-message-size",
        "--max-queue",
        "--allow-client-publish",
        "--log-level",
    ] {
        assert!(out.contains(flag), "help mentions {flag}");
    }
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("wshub {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_flags_and_variables_exit_2_with_a_clear_message() {
    for (args, env, expected) in [
        (&["--bogus"][..], &[][..], "unknown option --bogus"),
        (
            &["--port", "http"],
            &[],
            "invalid value \"http\" for --port",
        ),
        (&["--port"], &[], "--port needs a value"),
        (&["--heartbeat-interval", "-1"], &[], "--heartbeat-interval"),
        (&[], &[("WSHUB_MAX_QUEUE", "lots")], "--max-queue"),
        (&["--max-message-size", "1"], &[], "max_message_size"),
        (
            &["--envelope", "xml"],
            &[],
            "invalid value \"xml\" for --envelope",
        ),
        (&["--endpoint", "/agents"], &[], "PATH=ENVELOPE"),
        (
            &["--endpoint", "/agents=xml"],
            &[],
            "standard, flat or payload",
        ),
        (&[], &[("WSHUB_ENDPOINTS", "/a=flat,/b=soap")], "--endpoint"),
        (&["--endpoint", "/health=flat"], &[], "/health is taken"),
        (&["--batch-type", ""], &[], "batch_type"),
    ] {
        let (code, _, err) = run(args, env);
        assert_eq!(code, 2, "{args:?} {env:?}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, _, err) = run(&["--port", &port], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot listen on 127.0.0.1:"), "{err}");
}

#[test]
fn sigterm_closes_clients_with_1001_and_exits_zero() {
    let mut hub = Running::start(&["--port", "0"]);
    let mut client = Client::connect(hub.addr, "/ws?userId=u1");
    assert_eq!(client.request(json!({"type": "ping"}), "p")["type"], "pong");
    hub.signal("TERM");
    assert_eq!(
        client.expect_close(),
        (1001, "Server shutting down".to_owned())
    );
    client.finish_close();
    assert_eq!(hub.wait_exit(), 0);
    let log = hub.seen.join("\n");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("wshub stopped"), "{log}");
}

#[test]
fn a_hub_whose_log_reader_went_away_keeps_serving_and_stops_on_sigterm() {
    // stderr read by a pipe whose reader exits (`wshub 2>&1 | head`):
    // every later log line meets a closed pipe.
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--log-level", "debug"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on ws://") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no start line");
    }
    let addr = listening_on(&line);
    drop(stderr);
    // Clients come and go, each a debug line on a closed pipe; the hub
    // answers them all.
    for n in 0..3 {
        let mut client = Client::connect(addr, &format!("/ws?userId=u{n}"));
        assert_eq!(client.request(json!({"type": "ping"}), "p")["type"], "pong");
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + DEADLINE;
    let code = loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the hub did not stop on SIGTERM with its log's reader gone");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
}

#[test]
fn sigint_stops_the_hub_too() {
    let mut hub = Running::start(&["--port=0", "--log-level=debug"]);
    hub.signal("INT");
    assert_eq!(hub.wait_exit(), 0);
}

#[test]
fn the_debug_log_tells_connects_disconnects_and_counts() {
    let mut hub = Running::start(&["--port", "0", "--log-level", "debug"]);
    let client = Client::connect(hub.addr, "/ws?userId=alice");
    let line = hub.wait_line("connected from");
    assert!(
        line.contains(&client.id())
            && line.contains("as user \"alice\"")
            && line.contains("(1 connected)"),
        "{line}"
    );
    drop(client);
    let line = hub.wait_line("disconnected");
    assert!(line.contains("(0 connected)"), "{line}");
}

#[test]
fn flags_and_environment_configure_the_hub() {
    let mut hub = Running::start(&[
        "--port",
        "0",
        "--path",
        "/live",
        "--heartbeat-interval",
        "0.25",
        "--allow-client-publish",
    ]);
    let mut client = Client::connect(hub.addr, "/live");
    assert_eq!(client.welcome["data"]["heartbeatMs"], 250);
    client.request(json!({"type": "subscribe", "channel": "c"}), "s");
    let reply = client.request(json!({"type": "publish", "channel": "c", "data": 1}), "p");
    assert_eq!(reply["type"], "published");
    hub.signal("TERM");
    assert_eq!(client.expect_close().0, 1001);
    client.finish_close();
    assert_eq!(hub.wait_exit(), 0);

    let mut hub = Running::start_with_env(
        &["--port", "0"],
        &[("WSHUB_PATH", "/env-path"), ("WSHUB_MAX_QUEUE", "8")],
    );
    assert!(hub.seen.last().unwrap().contains("/env-path"));
    Client::connect(hub.addr, "/env-path");
    hub.signal("TERM");
    assert_eq!(hub.wait_exit(), 0);
}

#[test]
fn a_missing_or_malformed_tokens_file_stops_the_start() {
    let (code, _, err) = run(&["--tokens", "/nonexistent/tokens.json"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--tokens") && err.contains("/nonexistent/tokens.json"),
        "{err}"
    );

    let path = std::env::temp_dir().join(format!("wshub-bad-tokens-{}.json", std::process::id()));
    std::fs::write(&path, "{ not json").unwrap();
    let (code, _, err) = run(&["--tokens", path.to_str().unwrap()], &[]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(code, 2);
    assert!(err.contains("--tokens"), "{err}");
}

#[test]
fn a_tokens_file_turns_auth_on() {
    let path = std::env::temp_dir().join(format!("wshub-tokens-{}.json", std::process::id()));
    std::fs::write(&path, r#"{"alice-token": {"userId": "alice"}}"#).unwrap();
    let mut hub = Running::start(&[
        "--port",
        "0",
        "--tokens",
        path.to_str().unwrap(),
        "--admin-token",
        "adm",
    ]);
    std::fs::remove_file(&path).unwrap();
    let alice = Client::connect(hub.addr, "/ws?token=alice-token");
    assert_eq!(alice.welcome["data"]["userId"], "alice");
    let mut stranger = Client::open(hub.addr, "/ws").unwrap();
    assert_eq!(
        support::read_json(&mut stranger, DEADLINE).unwrap()["data"]["code"],
        "unauthorized"
    );
    assert_eq!(support::expect_close(&mut stranger).0, 1008);
    assert_eq!(support::get(hub.addr, "/api/ws/stats").0, 401);
    let authorized = b"GET /api/ws/stats HTTP/1.1\r\nAuthorization: Bearer adm\r\n\r\n";
    assert_eq!(support::http_raw(hub.addr, authorized).0, 200);
    assert!(hub.seen.iter().all(|l| !l.contains("development mode")));
    drop((alice, stranger));
    hub.signal("TERM");
    assert_eq!(hub.wait_exit(), 0);
}

#[test]
fn without_auth_the_start_warns_of_development_mode() {
    let mut hub = Running::start(&["--port", "0"]);
    hub.wait_line("development mode");
    hub.signal("TERM");
    assert_eq!(hub.wait_exit(), 0);
}

#[test]
fn an_unreachable_jwks_url_does_not_stop_the_start_it_is_logged_and_retried() {
    // A port nobody listens on (kept so while `_bound` lives).
    let (_bound, port) = support::port_nobody_listens_on();
    let url = format!("http://127.0.0.1:{port}/jwks");
    let mut hub = Running::start(&["--port", "0", "--jwks-url", &url]);
    let first = hub.wait_line("JWKS: cannot fetch");
    assert!(
        first.contains(&url)
            && first.contains("tokens signed with its keys are refused until a fetch works")
            && first.contains("trying again in 1 s"),
        "{first}"
    );
    // Tried again, later each time; the hub serves meanwhile.
    let again = hub.wait_line("JWKS: cannot fetch");
    assert!(
        again.contains("trying again in 2 s") || again.contains("trying again in 4 s"),
        "{again}"
    );
    assert_eq!(support::get(hub.addr, "/health").0, 200);
    hub.signal("TERM");
    assert_eq!(hub.wait_exit(), 0);
}

#[test]
fn an_argument_that_is_not_utf8_is_refused_not_a_crash() {
    use std::os::unix::ffi::OsStrExt;
    let output = Command::new(BIN)
        .arg(std::ffi::OsStr::from_bytes(b"--port=\xff"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not valid UTF-8"));
}

#[test]
fn envelope_flags_serve_each_seeds_clients_from_one_binary() {
    let mut hub = Running::start(&[
        "--port",
        "0",
        "--envelope",
        "flat",
        "--endpoint",
        "/agents=payload",
        "--endpoint",
        "/chat=standard",
        "--json-heartbeat",
        "--heartbeat-interval",
        "0.1",
        "--batch-type",
        "batchUpdate",
    ]);
    let said = hub.wait_line("clients get the flat envelope");
    assert!(
        said.contains("on /agents, payload; on /chat, standard"),
        "{said}"
    );
    let mut agent = support::Client::open(hub.addr, "/agents").unwrap();
    let welcome = support::read_json(&mut agent, DEADLINE).unwrap();
    assert_eq!(welcome["type"], "connection:established", "{welcome}");
    let mut ide = support::Client::open(hub.addr, "/ws").unwrap();
    let welcome = support::read_json(&mut ide, DEADLINE).unwrap();
    assert_eq!(welcome["status"], "connected", "{welcome}");
    let mut chat = Client::connect(hub.addr, "/chat");
    chat.expect_eventually("heartbeat");

    let mut hub_env = Running::start_with_env(
        &["--port", "0"],
        &[("WSHUB_ENDPOINTS", "/agents=payload, /ide=flat")],
    );
    let mut env_ide = support::Client::open(hub_env.addr, "/ide").unwrap();
    let welcome = support::read_json(&mut env_ide, DEADLINE).unwrap();
    assert_eq!(welcome["status"], "connected", "{welcome}");
    // Gone before the stop, so it need not wait for their Close replies.
    drop((agent, ide, chat, env_ide));
    for running in [&mut hub, &mut hub_env] {
        running.signal("TERM");
        assert_eq!(running.wait_exit(), 0);
    }
}

#[test]
fn the_log_names_a_client_by_its_public_id_and_its_reader_thread_after_it() {
    let mut hub = Running::start(&["--port", "0", "--log-level", "debug"]);
    let mut client = Client::connect(hub.addr, "/ws?userId=alice");
    let id = client.id();
    let number = id
        .strip_prefix("c_")
        .and_then(|rest| rest.split('-').next())
        .expect("c_<number>-<tag>");
    let thread = format!("wshub-r-c_{number}");
    // The log says which thread reads this client...
    let line = hub.wait_line("reader is thread");
    assert!(
        line.contains(&id) && line.contains(&thread),
        "{line} (expected {id} and {thread})"
    );
    // ...and the kernel knows it by that name (what top -H, ps -L and gdb show).
    let tasks = std::fs::read_dir(format!("/proc/{}/task", hub.child.id())).unwrap();
    let names: Vec<String> = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    assert!(names.contains(&thread), "{thread} among {names:?}");
    // An error sent to it, a bad frame, its reader's end: always its id.
    client
        .ws
        .send(tungstenite::Message::Binary(vec![1].into()))
        .unwrap();
    assert_eq!(
        client.expect_eventually("error")["data"]["code"],
        "unsupported_frame"
    );
    let line = hub.wait_line("error unsupported_frame");
    assert!(line.contains(&id), "{line}");
    drop(client);
    let line = hub.wait_line("reader of client");
    assert!(line.contains(&id), "{line}");
    hub.wait_line("disconnected");
    let numbered: Vec<&String> = hub.seen.iter().filter(|l| l.contains("ClientId")).collect();
    assert!(
        numbered.is_empty(),
        "a client named another way: {numbered:#?}"
    );
}

#[test]
fn a_hub_held_still_past_the_client_timeout_keeps_its_clients_when_it_resumes() {
    // Pings every 500 ms, a client silent for 2 s is dead (room for a
    // busy machine's scheduling): then the hub is stopped for 5 s, as a
    // debugger's breakpoint or SIGSTOP holds it.
    let mut hub = Running::start(&[
        "--port",
        "0",
        "--heartbeat-interval",
        "0.5",
        "--client-timeout",
        "2",
    ]);
    let mut client = Client::connect(hub.addr, "/ws?userId=patient");
    // Reading answers every Ping (tungstenite does).
    let mut pings = 0;
    while pings < 3 {
        client
            .ws
            .get_mut()
            .set_read_timeout(Some(DEADLINE))
            .unwrap();
        if let tungstenite::Message::Ping(_) = read_frame(&mut client).expect("connected") {
            pings += 1;
        }
    }
    client.ws.flush().unwrap();
    hub.signal("STOP");
    // The pause itself: nothing to wait for, the hub does nothing.
    std::thread::sleep(std::time::Duration::from_secs(5));
    hub.signal("CONT");
    // Still connected through two client timeouts after the pause, its
    // Pongs answering the Pings that follow.
    let resumed = Instant::now();
    let mut answered = 0;
    while resumed.elapsed() < std::time::Duration::from_secs(4) || answered < 5 {
        client
            .ws
            .get_mut()
            .set_read_timeout(Some(DEADLINE))
            .unwrap();
        match read_frame(&mut client) {
            Ok(tungstenite::Message::Ping(_)) => answered += 1,
            Ok(_) => {}
            Err(err) => panic!(
                "the client was cut after the pause: {err}; saw {:#?}",
                hub.seen
            ),
        }
        client.ws.flush().unwrap();
    }
    let reply = client.request(json!({"type": "ping"}), "after-the-pause");
    assert_eq!(reply["type"], "pong");
    let (status, stats) = support::get(hub.addr, "/api/ws/stats");
    assert_eq!(status, 200);
    assert_eq!(stats["staleClients"], 0, "{stats}");
    // And the log says why.
    let line = hub.wait_line("did not run for");
    assert!(line.contains("silence counts from now"), "{line}");
}

#[test]
fn sigterm_with_a_drain_delay_answers_ready_503_then_shuts_down() {
    let mut hub = Running::start(&["--port", "0", "--drain-delay", "1"]);
    assert_eq!(
        support::get(hub.addr, "/ready"),
        (200, json!({"status": "ready"}))
    );
    let mut client = Client::connect(hub.addr, "/ws?userId=u1");
    hub.signal("TERM");
    hub.wait_line("draining for");
    // Draining: not ready, still alive, the client still served.
    let (status, body) = support::get(hub.addr, "/ready");
    assert_eq!(
        (status, &body["status"]),
        (503, &json!("draining")),
        "{body}"
    );
    assert_eq!(support::get(hub.addr, "/health").0, 200);
    assert_eq!(client.request(json!({"type": "ping"}), "p")["type"], "pong");
    // Then the shutdown as without a delay.
    assert_eq!(
        client.expect_close(),
        (1001, "Server shutting down".to_owned())
    );
    client.finish_close();
    assert_eq!(hub.wait_exit(), 0);
    let log = hub.seen.join("\n");
    assert!(log.contains("drained for"), "{log}");
}

/// The next frame, read again when a signal to this process (another
/// test's child stopping or ending) interrupted the read.
fn read_frame(client: &mut Client) -> tungstenite::Result<tungstenite::Message> {
    loop {
        match client.ws.read() {
            Err(tungstenite::Error::Io(err)) if err.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// A file of `text` in the temporary directory, named for the test.
fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("wshub-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_example_config_loads_and_has_a_key_for_every_flag() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/wshub.toml");
    let (code, out, err) = run(&["--config", example, "--check-config"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("the settings are good"), "{out}");
    let text = std::fs::read_to_string(example).unwrap();
    let (_, help, _) = run(&["--help"], &[]);
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .filter_map(|l| l.split([' ', '=']).next())
        .filter(|name| !["config", "check-config"].contains(name))
        .collect();
    assert!(flags.len() > 40, "{flags:?}");
    for flag in flags {
        assert!(
            text.lines().any(|l| {
                let l = l.trim_start_matches("# ");
                l.starts_with(&format!("{flag} ="))
            }),
            "dist/wshub.toml has no key for --{flag}"
        );
    }
}

#[test]
fn check_config_masks_secrets_and_variables_and_flags_win_over_the_file() {
    let file = temp_file(
        "secrets.toml",
        "port = 3001\nadmin-token = \"s3cret-admin\"\njwt-secret = \"s3cret-jwt\"\n\
         redis = \"redis://:s3cret-pw@127.0.0.1:6379/0\"\nallowed-origin = [\"https://a.example\", \"https://b.example\"]\n",
    );
    let file = file.to_str().unwrap();
    let (code, out, err) = run(&["--config", file, "--check-config"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("s3cret"), "a secret shown: {out}");
    assert!(out.contains("port: 3001"), "{out}");
    assert!(out.contains("redis://***@127.0.0.1:6379/0"), "{out}");
    assert!(out.contains("https://b.example"), "{out}");
    let env = [("WSHUB_PORT", "3002")];
    let (_, out, _) = run(&["--config", file, "--check-config"], &env);
    assert!(out.contains("port: 3002"), "the variable wins: {out}");
    let (_, out, _) = run(
        &["--config", file, "--check-config", "--port", "3003"],
        &env,
    );
    assert!(out.contains("port: 3003"), "the flag wins: {out}");
    let _ = std::fs::remove_file(file);
}

#[test]
fn a_config_file_with_an_unknown_key_or_a_bad_value_stops_the_start_naming_the_line() {
    let file = temp_file("unknown.toml", "port = 3000\n\nmax-queu = 5\n");
    let (code, _, err) = run(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 3") && err.contains("max-queu"), "{err}");
    let bad = temp_file("bad.toml", "port = \"many\"\n");
    let (code, _, err) = run(&["--config", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--port"), "{err}");
    let (code, _, err) = run(&["--config", "/nonexistent/wshub.toml"], &[]);
    assert_eq!(code, 2, "{err}");
    let _ = (std::fs::remove_file(file), std::fs::remove_file(bad));
}

#[test]
fn a_hub_runs_with_the_settings_of_its_config_file() {
    let file = temp_file("run.toml", "port = 0\npath = \"/hub\"\n");
    let mut hub = Running::start(&["--config", file.to_str().unwrap()]);
    let mut client = Client::connect(hub.addr, "/hub?userId=u1");
    assert_eq!(client.request(json!({"type": "ping"}), "p")["type"], "pong");
    hub.signal("TERM");
    assert_eq!(hub.wait_exit(), 0);
    let _ = std::fs::remove_file(file);
}

#[test]
fn a_refused_origin_is_logged_with_its_reason_and_the_403_names_the_flag() {
    let mut hub = Running::start(&["--port", "0", "--allowed-origin", "https://app.example"]);
    let (status, _, body) = support::upgrade_head(
        hub.addr,
        "/ws?userId=u1",
        &format!("Host: {}\r\nOrigin: https://evil.example\r\n", hub.addr),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--allowed-origin"), "{body}");
    let line = hub.wait_line("refused a WebSocket upgrade");
    assert!(
        line.contains("https://evil.example") && line.contains("403"),
        "{line}"
    );
    assert!(line.contains("127.0.0.1"), "the address: {line}");
}

#[test]
fn two_refusal_reasons_from_one_address_within_a_second_are_both_logged() {
    let mut hub = Running::start(&["--port", "0", "--allowed-origin", "https://app.example"]);
    let host = format!("Host: {}\r\n", hub.addr);
    let evil = format!("{host}Origin: https://evil.example\r\n");
    // Twice the same reason, then another one, at once.
    for _ in 0..2 {
        assert_eq!(support::upgrade_head(hub.addr, "/ws", &evil).0, 403);
    }
    assert_eq!(support::upgrade_head(hub.addr, "/nowhere", &host).0, 404);
    let line = hub.wait_line("to /nowhere");
    assert!(line.contains("404") && line.contains("127.0.0.1"), "{line}");
    let origin = hub
        .seen
        .iter()
        .filter(|l| l.contains("refused a WebSocket upgrade") && l.contains("evil.example"))
        .count();
    assert_eq!(origin, 1, "the same reason once: {:#?}", hub.seen);
}

/// A Redis URL where nothing listens.
fn absent_redis() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("redis://:pw@127.0.0.1:{port}/0")
}

#[test]
fn an_unreachable_redis_is_said_at_start_and_fails_it_with_redis_required() {
    let url = absent_redis();
    let (code, _, err) = run(
        &[
            "--port",
            "0",
            "--redis",
            &url,
            "--redis-timeout",
            "1",
            "--redis-required",
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("does not answer") && err.contains("--redis-required"),
        "{err}"
    );
    assert!(!err.contains(":pw@"), "the password shown: {err}");
    // Without it: the hub starts, says so, and is not ready.
    let mut hub = Running::start(&["--port", "0", "--redis", &url, "--redis-timeout", "1"]);
    assert!(
        hub.seen.iter().any(|l| l.contains("does not answer")),
        "{:#?}",
        hub.seen
    );
    let (status, body) = support::get(hub.addr, "/ready");
    assert_eq!(
        (status, &body["status"]),
        (503, &json!("redis_down")),
        "{body}"
    );
    hub.signal("TERM");
    assert_eq!(hub.wait_exit(), 0);
}

/// Every client's reader runs on a small stack (`--thread-stack-size`, 32
/// KiB at the least). A reader's loop whose frame held an inflater's state
/// (48 KiB, built on the stack by `flate2` and inlined in release builds)
/// overflowed it at once: the whole hub aborted on the first client. Run
/// also on the release binary by `.ci/run`, where inlining happens.
#[test]
fn readers_run_on_the_smallest_stack_the_flags_allow() {
    let mut hub = Running::start(&[
        "--port",
        "0",
        "--allow-client-publish",
        "--thread-stack-size",
        "32768",
    ]);
    let mut subscriber = Client::connect(hub.addr, "/ws?userId=sub");
    let mut publisher = Client::connect(hub.addr, "/ws?userId=pub");
    let subscribed = subscriber.request(json!({"type": "subscribe", "channel": "news"}), "s");
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    let published = publisher.request(
        json!({"type": "publish", "channel": "news", "data": {"text": "hello"}}),
        "p",
    );
    assert_eq!(published["type"], "published", "{published}");
    let event = subscriber.expect_eventually("event");
    assert_eq!(event["data"]["text"], "hello", "{event}");
    assert_eq!(
        publisher.request(json!({"type": "ping"}), "q")["type"],
        "pong"
    );
    hub.signal("TERM");
    assert_eq!(hub.wait_exit(), 0, "{:#?}", hub.seen);
}
