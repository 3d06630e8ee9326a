//! Several hubs on one Redis serve one set of clients: every target reaches
//! its clients on every hub, presence is told once per user, a client
//! resumes on another hub without a gap, commands and service connections
//! reach the hub that holds the client, and a hub or Redis going away costs
//! only what it must. Real `redis-server` processes on free ports; `.ci/run`
//! installs Debian's.

mod support;
#[path = "support/tls.rs"]
mod tls;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Client, DEADLINE, TestHub, narrow_client, until_pong};
use support::{expect_but_presence as expect, next_but_presence as next};
use wshub::{Config, Secret, Target, TokenGrant, Topic};

const ADMIN: &str = "cluster-admin-token";
const NEEDS_REDIS: &str = "needs redis-server; .ci/run installs it";

/// A `redis-server` of our own on a free port, gone when dropped.
///
/// The port is below the kernel's ephemeral range (which starts at 32768 on
/// Linux): the hubs and clients of the tests running beside this one bind
/// port 0, so none of them can take it while this Redis is stopped and
/// started again. And a Redis is taken as up only when the one answering is
/// this `redis-server` process (its pid), not another test's that got the
/// same port first.
struct Redis {
    child: Option<Child>,
    port: u16,
    /// Set, it serves TLS only (on `port`), with a certificate of this
    /// test authority's.
    tls: Option<RedisTls>,
}

/// A test authority and the certificate it issued to a `redis-server`.
struct RedisTls {
    pki: tls::Pki,
    issued: tls::Issued,
}

impl Redis {
    fn start() -> Redis {
        Redis::start_with(None)
    }

    /// One that speaks TLS only (`rediss://`), its certificate from an
    /// authority made for it ([`Redis::ca_file`]).
    fn start_tls() -> Redis {
        let pki = tls::Pki::new("redis");
        let issued = pki.issue("redis", "redis test server", 1);
        Redis::start_with(Some(RedisTls { pki, issued }))
    }

    fn start_with(mut tls: Option<RedisTls>) -> Redis {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mut redis = Redis {
                child: None,
                port: unused_port(),
                tls: tls.take(),
            };
            if redis.try_launch() {
                return redis;
            }
            tls = redis.tls.take();
            assert!(Instant::now() < deadline, "no free port for redis-server");
        }
    }

    /// Starts it again on its port (after [`Redis::stop`]).
    fn launch(&mut self) {
        assert!(
            self.try_launch(),
            "redis-server could not listen on port {} again",
            self.port
        );
    }

    /// Starts redis-server on the port and waits until it answers; `false`
    /// if it exited instead (the port was taken).
    fn try_launch(&mut self) -> bool {
        let mut ports = vec!["--port".to_owned(), self.port.to_string()];
        if let Some(files) = &self.tls {
            let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
            ports = vec![
                "--port".to_owned(),
                "0".to_owned(),
                "--tls-port".to_owned(),
                self.port.to_string(),
                "--tls-cert-file".to_owned(),
                path(&files.issued.cert),
                "--tls-key-file".to_owned(),
                path(&files.issued.key),
                "--tls-ca-cert-file".to_owned(),
                path(&files.pki.ca_file()),
                "--tls-auth-clients".to_owned(),
                "no".to_owned(),
            ];
        }
        let child = Command::new("redis-server")
            .args(ports)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{NEEDS_REDIS}: cannot start redis-server: {e}"));
        let pid = child.id();
        let child = self.child.insert(child);
        let deadline = Instant::now() + DEADLINE;
        while !answers_on(self.port, self.tls.as_ref(), pid) {
            if child.try_wait().ok().flatten().is_some() {
                self.child = None;
                return false;
            }
            assert!(Instant::now() < deadline, "redis-server did not answer");
            // Polls a process starting up: no message to wait on.
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The authority of a TLS Redis's certificate (a PEM file).
    fn ca_file(&self) -> std::path::PathBuf {
        let files = self.tls.as_ref().expect("a TLS redis-server");
        files.pki.ca_file()
    }

    /// SIGSTOP: Redis stalls, its connections open and silent.
    fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: it goes on with what it was sent meanwhile.
    fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("a running redis-server");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port from 20000 to 31999 that nothing listens on now, picked at
/// random so that tests starting together pick different ones.
fn unused_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    loop {
        let port = 20_000 + (RandomState::new().hash_one(Instant::now()) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Whether the Redis on `port` (over TLS with `tls`) is the
/// `redis-server` process `pid`.
fn answers_on(port: u16, tls: Option<&RedisTls>, pid: u32) -> bool {
    let addr = ([127, 0, 0, 1], port).into();
    match tls {
        None => TcpStream::connect(addr).is_ok_and(|stream| {
            stream.set_read_timeout(Some(Duration::from_secs(1))).ok();
            answers(stream, pid)
        }),
        Some(files) => {
            tls::connect(addr, &files.pki.client_config()).is_ok_and(|stream| answers(stream, pid))
        }
    }
}

/// Whether the Redis at the other end of `stream` is the `redis-server`
/// process `pid`.
fn answers(mut stream: impl Read + Write, pid: u32) -> bool {
    if stream.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let wanted = format!("\r\nprocess_id:{pid}\r\n");
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
        }
        let text = String::from_utf8_lossy(&reply);
        if text.contains(&wanted) {
            return true;
        }
        if text.contains("\r\nprocess_id:") && text.contains("\r\nrun_id:") {
            return false;
        }
    }
}

fn config(redis: &Redis) -> Config {
    support::config()
        .redis(Some(redis.url()))
        .presence_grace(Duration::ZERO)
        .admin_token(Some(ADMIN.into()))
        .allow_client_publish(true)
}

/// A hub on `redis`, once it has joined the others.
fn hub_on(config: Config) -> TestHub {
    let hub = support::start(config);
    hub.wait_stats("the hub to join Redis", |s| {
        s.cluster.as_ref().is_some_and(|c| c.redis_up)
    });
    hub
}

/// `n` hubs that know each other.
fn hubs(redis: &Redis, n: usize) -> Vec<TestHub> {
    hubs_with(&config(redis), n)
}

/// `n` hubs with this config, once they know each other.
fn hubs_with(config: &Config, n: usize) -> Vec<TestHub> {
    let hubs: Vec<TestHub> = (0..n).map(|_| hub_on(config.clone())).collect();
    for hub in &hubs {
        hub.wait_stats("every hub's heartbeat", |s| {
            s.cluster.as_ref().is_some_and(|c| c.hubs.len() == n)
        });
    }
    hubs
}

fn subscribe(client: &mut Client, topic: Value, since: Option<Value>) -> Value {
    let mut request = json!({"type": "subscribe"});
    for (key, value) in topic.as_object().unwrap() {
        request[key] = value.clone();
    }
    if let Some(since) = since {
        request["since"] = since;
    }
    request["correlationId"] = json!("sub");
    client.send(request);
    loop {
        let reply = next(client, "subscribed");
        if reply["correlationId"] == "sub" {
            assert_eq!(reply["type"], "subscribed", "{reply}");
            return reply;
        }
    }
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn every_target_reaches_its_clients_on_every_hub() {
    let redis = Redis::start();
    let hubs = hubs(&redis, 2);
    let (one, two) = (&hubs[0], &hubs[1]);
    let mut near = one.client("/ws?userId=alice&sessionId=s1");
    let mut far = two.client("/ws?userId=bob&sessionId=s1");
    subscribe(&mut near, json!({"channel": "files"}), None);
    subscribe(&mut far, json!({"channel": "files"}), None);
    subscribe(&mut near, json!({"sessionId": "s1"}), None);
    subscribe(&mut far, json!({"sessionId": "s1"}), None);

    // A channel: one publication, the same position on both hubs.
    one.handle()
        .publish(Target::channel("files"), "file_changed", json!({"n": 1}))
        .unwrap();
    let a = expect(&mut near, "file_changed");
    let b = expect(&mut far, "file_changed");
    assert_eq!((&a["seq"], &a["epoch"]), (&b["seq"], &b["epoch"]));
    assert_eq!(a["data"], json!({"n": 1}));

    // A session, from the other hub.
    two.handle()
        .publish(Target::session("s1"), "ai_progress", json!({"p": 2}))
        .unwrap();
    assert_eq!(expect(&mut near, "ai_progress")["sessionId"], "s1");
    assert_eq!(expect(&mut far, "ai_progress")["data"], json!({"p": 2}));

    // A user, a client, everyone, the authenticated.
    one.handle()
        .publish(Target::user("bob"), "notification", json!({"to": "bob"}))
        .unwrap();
    assert_eq!(expect(&mut far, "notification")["channel"], "user:bob");
    one.handle()
        .publish(Target::client(far.id()), "direct", json!({}))
        .unwrap();
    expect(&mut far, "direct");
    two.handle().broadcast("everyone", json!({})).unwrap();
    expect(&mut near, "everyone");
    expect(&mut far, "everyone");
    one.handle()
        .publish(Target::Authenticated, "trusted", json!({}))
        .unwrap();
    expect(&mut near, "trusted");
    expect(&mut far, "trusted");

    // Batched: the same items on each hub, in batches (one, unless a busy
    // machine lets the 100 ms window pass between two calls).
    for n in 0..3 {
        one.handle()
            .publish_batched(Target::session("s1"), "chunk", json!({ "n": n }))
            .unwrap();
    }
    let items = |client: &mut Client| {
        let mut items = Vec::new();
        while items.len() < 3 {
            let batch = expect(client, "batch_update");
            items.extend(batch["data"]["messages"].as_array().unwrap().clone());
        }
        items
    };
    let a = items(&mut near);
    assert_eq!(a, items(&mut far));
    assert_eq!(a.len(), 3);

    // A client's own publication, and HTTP on the other hub.
    near.send(json!({"type": "publish", "channel": "files", "event": "said", "data": "hi"}));
    assert_eq!(expect(&mut far, "said")["from"]["userId"], "alice");
    expect(&mut near, "said");
    let (status, _) = admin(
        two,
        "POST",
        "/api/publish",
        &json!({"channel": "files", "type": "over_http", "data": 1}).to_string(),
    );
    assert_eq!(status, 200);
    expect(&mut near, "over_http");
    expect(&mut far, "over_http");
    near.expect_nothing_pending();
    far.expect_nothing_pending();
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn presence_is_told_once_per_user_across_hubs() {
    let redis = Redis::start();
    let hubs = hubs(&redis, 3);
    let mut watcher = hubs[0].client("/ws?userId=watcher");
    // Its own online, once.
    let own = watcher.expect("user_presence");
    assert_eq!(own["data"]["userId"], "watcher");

    let first = hubs[1].client("/ws?userId=alice");
    let online = watcher.expect("user_presence");
    assert_eq!(
        online["data"],
        json!({"userId": "alice", "status": "online"})
    );
    let second = hubs[2].client("/ws?userId=alice");
    // A second connection anywhere is no news...
    let probe = hubs[2].client("/ws?userId=probe");
    assert_eq!(watcher.expect("user_presence")["data"]["userId"], "probe");
    drop(first);
    hubs[1].wait_stats("alice's first connection to go", |s| s.users == 0);
    // ...nor is the first of two leaving: the next news is probe's.
    drop(probe);
    let next = watcher.expect("user_presence");
    assert_eq!(
        next["data"],
        json!({"userId": "probe", "status": "offline"})
    );
    drop(second);
    let offline = watcher.expect("user_presence");
    assert_eq!(
        offline["data"],
        json!({"userId": "alice", "status": "offline"})
    );

    // A status set on one hub is seen on another, once.
    let mut carol = hubs[1].client("/ws?userId=carol");
    assert_eq!(watcher.expect("user_presence")["data"]["status"], "online");
    carol.send(json!({"type": "user_presence", "data": {"status": "away"}}));
    carol.send(json!({"type": "user_presence", "data": {"status": "away"}}));
    let away = watcher.expect("user_presence");
    assert_eq!(away["data"], json!({"userId": "carol", "status": "away"}));
    // The presence list is the cluster's.
    let list = watcher.request(json!({"type": "presence"}), "who");
    let users: Vec<&str> = list["data"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userId"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["carol", "watcher"], "{list}");
    watcher.expect_nothing_pending();
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_client_resumes_on_another_hub_without_a_gap() {
    let redis = Redis::start();
    let hubs = hubs(&redis, 2);
    let mut client = hubs[0].client("/ws");
    let reply = subscribe(&mut client, json!({"channel": "feed"}), None);
    assert_eq!(reply["data"]["seq"], 0);
    for n in 1..=3 {
        hubs[0]
            .handle()
            .publish(Target::channel("feed"), "tick", json!({ "n": n }))
            .unwrap();
    }
    let mut last = Value::Null;
    for n in 1..=3 {
        last = expect(&mut client, "tick");
        assert_eq!(last["seq"], n);
    }
    drop(client);
    // Published on the other hub while it is away.
    for n in 4..=6 {
        hubs[1]
            .handle()
            .publish(Target::channel("feed"), "tick", json!({ "n": n }))
            .unwrap();
    }
    let mut back = hubs[1].client("/ws");
    let reply = subscribe(
        &mut back,
        json!({"channel": "feed"}),
        Some(json!({"seq": 3, "epoch": last["epoch"]})),
    );
    assert_eq!(reply["data"]["recovered"], true, "{reply}");
    assert_eq!(reply["data"]["seq"], 6);
    hubs[0]
        .handle()
        .publish(Target::channel("feed"), "tick", json!({"n": 7}))
        .unwrap();
    for n in 4..=7 {
        let tick = expect(&mut back, "tick");
        assert_eq!((&tick["seq"], &tick["data"]["n"]), (&json!(n), &json!(n)));
    }
    back.expect_nothing_pending();
    // Too old, or of another epoch: recovered false, on any hub.
    let mut stale = hubs[0].client("/ws");
    let reply = subscribe(
        &mut stale,
        json!({"channel": "feed"}),
        Some(json!({"seq": 3, "epoch": "not-it"})),
    );
    assert_eq!(reply["data"]["recovered"], false);
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_users_stream_is_recovered_on_another_hub() {
    let redis = Redis::start();
    let hubs = hubs(&redis, 2);
    let mut alice = hubs[0].client("/ws?userId=alice");
    let reply = subscribe(&mut alice, json!({"channel": "user:alice"}), None);
    let epoch = reply["data"]["epoch"].clone();
    drop(alice);
    hubs[0].wait_stats("alice gone", |s| s.active_connections == 0);
    for n in 1..=2 {
        hubs[1]
            .handle()
            .publish(Target::user("alice"), "note", json!({ "n": n }))
            .unwrap();
    }
    let mut alice = hubs[1].client("/ws?userId=alice");
    let reply = subscribe(
        &mut alice,
        json!({"channel": "user:alice"}),
        Some(json!({"seq": 0, "epoch": epoch})),
    );
    assert_eq!(reply["data"]["recovered"], true, "{reply}");
    assert_eq!(expect(&mut alice, "note")["seq"], 1);
    assert_eq!(expect(&mut alice, "note")["seq"], 2);
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn server_side_control_reaches_the_hub_that_holds_the_client() {
    let redis = Redis::start();
    let hubs = hubs(&redis, 2);
    let mut far = hubs[1].client("/ws");
    let id = far.id();
    assert!(id.ends_with(&format!(".{}", cluster_id(&hubs[1]))), "{id}");
    // Subscribed from the other hub.
    assert!(
        hubs[0]
            .handle()
            .subscribe(&id, Topic::channel("ops"))
            .unwrap()
    );
    assert_eq!(expect(&mut far, "subscribed")["channel"], "ops");
    assert!(hubs[0].handle().set_meta(&id, "role", "ide").unwrap());
    // An unknown client of that hub is no client.
    let ghost = format!("c_999-00000000.{}", cluster_id(&hubs[1]));
    assert!(
        !hubs[0]
            .handle()
            .subscribe(&ghost, Topic::channel("ops"))
            .unwrap()
    );
    // A service connection on the first hub closes it.
    let mut service = hubs[0].client(&format!("/ws?token={ADMIN}"));
    let ack = service.request(
        json!({"type": "disconnect", "clientId": id, "code": 4002, "reason": "moved"}),
        "bye",
    );
    assert_eq!(ack["data"]["count"], 1, "{ack}");
    assert_eq!(far.expect_close(), (4002, "moved".to_owned()));
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_service_on_one_hub_answers_clients_of_another() {
    let redis = Redis::start();
    let hubs = hubs(&redis, 2);
    let mut service = hubs[0].client(&format!("/ws?token={ADMIN}"));
    hubs[1].wait_stats("the service to be known", |s| {
        s.cluster
            .as_ref()
            .is_some_and(|c| c.hubs.iter().any(|h| h.services == 1))
    });
    let mut client = hubs[1].client("/ws?sessionId=s9");
    client
        .send(json!({"type": "agent:start", "payload": {"projectId": "p"}, "correlationId": "r1"}));
    let forwarded = expect(&mut service, "client_message");
    assert_eq!(forwarded["data"]["clientId"], client.id());
    assert_eq!(forwarded["data"]["message"]["type"], "agent:start");
    service.send(json!({
        "type": "send",
        "clientId": client.id(),
        "message": {"type": "agent:started", "data": {"ok": true}, "correlationId": "r1"},
    }));
    let reply = expect(&mut client, "agent:started");
    assert_eq!(reply["correlationId"], "r1");
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_services_presence_list_is_the_clusters() {
    let redis = Redis::start();
    let hubs = hubs(&redis, 2);
    let mut service = hubs[0].client(&format!("/ws?token={ADMIN}"));
    let users = |list: &Value| -> Vec<(String, String)> {
        list["data"]["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                let field = |k: &str| u[k].as_str().unwrap().to_owned();
                (field("userId"), field("status"))
            })
            .collect()
    };
    let pair = |user: &str, status: &str| (user.to_owned(), status.to_owned());
    let _bob = hubs[0].client("/ws?userId=bob");
    assert_eq!(service.expect("user_presence")["data"]["userId"], "bob");
    let mut alice = hubs[1].client("/ws?userId=alice");
    assert_eq!(service.expect("user_presence")["data"]["userId"], "alice");
    let list = service.request(json!({"type": "presence"}), "who");
    assert_eq!(
        users(&list),
        [pair("alice", "online"), pair("bob", "online")],
        "{list}"
    );
    // A status set on the other hub, and a user leaving it.
    alice.send(json!({"type": "user_presence", "data": {"status": "away"}}));
    assert_eq!(service.expect("user_presence")["data"]["status"], "away");
    let list = service.request(json!({"type": "presence"}), "who2");
    assert_eq!(
        users(&list),
        [pair("alice", "away"), pair("bob", "online")],
        "{list}"
    );
    drop(alice);
    let gone = service.expect("user_presence");
    assert_eq!(
        gone["data"],
        json!({"userId": "alice", "status": "offline"})
    );
    let list = service.request(json!({"type": "presence"}), "who3");
    assert_eq!(users(&list), [pair("bob", "online")], "{list}");
    // The same list over HTTP and from the library, on either hub.
    for hub in &hubs {
        let (status, body) = admin(hub, "GET", "/api/presence", "");
        assert_eq!(status, 200, "{body}");
        let listed: Vec<&str> = body["users"]
            .as_array()
            .or(body["data"]["users"].as_array())
            .unwrap()
            .iter()
            .map(|u| u["userId"].as_str().unwrap())
            .collect();
        assert_eq!(listed, ["bob"], "{body}");
        let from_handle = hub.handle().presence().unwrap();
        assert_eq!(from_handle.len(), 1, "{from_handle:?}");
        assert_eq!(from_handle[0].user_id, "bob");
    }
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_request_goes_to_a_hub_whose_service_declared_its_type() {
    let redis = Redis::start();
    let hubs = hubs(&redis, 3);
    // Hub 0 serves agents, hub 1 files; hub 2 has no service.
    let mut agents = hubs[0].client(&format!(
        "/ws?token={ADMIN}&handles=agent:start,agent:cancel"
    ));
    let mut files = hubs[1].client(&format!("/ws?token={ADMIN}&handles=file:read"));
    for hub in &hubs {
        hub.wait_stats("both services' types to be known", |s| {
            let hubs = s.cluster.as_ref().map(|c| c.hubs.as_slice()).unwrap_or(&[]);
            hubs.iter().filter(|h| h.services == 1).count() == 2
        });
    }
    let answer = |service: &mut Client, kind: &str| {
        let forwarded = expect(service, "client_message");
        assert_eq!(forwarded["data"]["message"]["type"], kind, "{forwarded}");
        let message = &forwarded["data"]["message"];
        service.send(json!({
            "type": "send",
            "clientId": forwarded["data"]["clientId"],
            "message": {"type": "done", "data": {"kind": kind}, "correlationId": message["correlationId"]},
        }));
    };
    // From the hub with no service, and from each other's.
    for (n, hub) in hubs.iter().enumerate() {
        let mut client = hub.client("/ws");
        for kind in ["agent:start", "file:read", "agent:cancel"] {
            let correlation = format!("{kind}-{n}");
            client.send(json!({"type": kind, "correlationId": correlation}));
            match kind {
                "file:read" => answer(&mut files, kind),
                _ => answer(&mut agents, kind),
            }
            let done = expect(&mut client, "done");
            assert_eq!(done["correlationId"], correlation.as_str(), "{done}");
        }
        // A type no service anywhere declared.
        client.send(json!({"type": "chat:send", "correlationId": "nobody"}));
        let unknown = expect_error(&mut client, "nobody");
        assert_eq!(unknown["data"]["code"], "unknown_type", "{unknown}");
    }
    agents.expect_nothing_pending();
    files.expect_nothing_pending();
}

/// The error a request got; it must echo `correlation`.
fn expect_error(client: &mut Client, correlation: &str) -> Value {
    let reply = expect(client, "error");
    assert_eq!(reply["correlationId"], correlation, "{reply}");
    reply
}

/// A service connection on `hubs[0]` that `hubs[1]` knows of.
fn service_known_to_the_other(hubs: &[TestHub]) -> Client {
    let service = hubs[0].client(&format!("/ws?token={ADMIN}"));
    hubs[1].wait_stats("the service to be known", |s| {
        s.cluster
            .as_ref()
            .is_some_and(|c| c.hubs.iter().any(|h| h.services == 1))
    });
    service
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_request_whose_service_on_another_hub_leaves_is_answered_busy() {
    let redis = Redis::start();
    let hubs = hubs(&redis, 2);
    let mut service = service_known_to_the_other(&hubs);
    let mut client = hubs[1].client("/ws");
    client.send(json!({"type": "agent:start", "correlationId": "r1"}));
    expect(&mut service, "client_message");
    drop(service);
    let busy = expect_error(&mut client, "r1");
    assert_eq!(busy["data"]["code"], "busy", "{busy}");
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_request_sent_on_old_news_of_a_service_is_answered_not_silent() {
    let redis = Redis::start();
    let hubs = hubs(&redis, 2);
    let service = service_known_to_the_other(&hubs);
    drop(service);
    hubs[0].wait_stats("the service to leave", |s| s.service_connections == 0);
    // hubs[1] hears of it at hubs[0]'s next heartbeat, up to 2 s later;
    // until then its requests go to a hub without a service, which says so.
    let mut client = hubs[1].client("/ws");
    client.send(json!({"type": "agent:start", "correlationId": "r1"}));
    let reply = expect_error(&mut client, "r1");
    let code = reply["data"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(code == "busy" || code == "unknown_type", "{reply}");
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_subscribe_superseded_while_it_waits_for_redis_is_answered_too() {
    let redis = Redis::start();
    let hub = hub_on(config(&redis));
    // One publication that has come round, so the stream stands at 1.
    let mut probe = hub.client("/ws");
    subscribe(&mut probe, json!({"channel": "c"}), None);
    hub.handle()
        .publish(Target::channel("c"), "before", json!({}))
        .unwrap();
    expect(&mut probe, "before");
    let mut client = hub.client("/ws");
    // Sent back to back: the later ones arrive while the first waits for
    // Redis to say where the stream stands.
    let asked: Vec<String> = (0..5).map(|i| format!("s{i}")).collect();
    for (i, correlation) in asked.iter().enumerate() {
        let mut request =
            json!({"type": "subscribe", "channel": "c", "correlationId": correlation});
        if i % 2 == 1 {
            request["since"] = json!({"seq": 0, "epoch": "stale"});
        }
        client.send(request);
    }
    let mut answered = Vec::new();
    while answered.len() < asked.len() {
        let reply = expect(&mut client, "subscribed");
        assert_eq!(reply["data"]["seq"], 1, "{reply}");
        answered.push(reply["correlationId"].as_str().unwrap().to_owned());
    }
    assert_eq!(answered, asked, "one answer per subscribe, in order");
    // And the subscription is live, once.
    hub.handle()
        .publish(Target::channel("c"), "after", json!({}))
        .unwrap();
    assert_eq!(expect(&mut client, "after")["seq"], 2);
    client.expect_nothing_pending();
}

/// The messages of channel `name` that `client` is sent after its
/// `unsubscribed`, reading up to the answers of three pings.
fn sent_after_unsubscribed(client: &mut Client, name: &str) -> Vec<Value> {
    let mut told = false;
    let mut leaked = Vec::new();
    for round in 0..3 {
        for message in until_pong(client, &format!("after-{round}")) {
            if message["type"] == "unsubscribed" {
                told = true;
            } else if told && message["channel"] == name {
                leaked.push(message);
            }
        }
    }
    assert!(told, "the client was never told `unsubscribed`");
    leaked
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_catch_up_ends_when_a_service_on_another_hub_unsubscribes_the_client() {
    let redis = Redis::start();
    // 1500 publications of 32 KiB to catch up on: more than the socket and
    // half the queue hold, so the rest waits in the hub.
    const COUNT: u64 = 1_500;
    let hubs: Vec<TestHub> = (0..2)
        .map(|_| hub_on(config(&redis).history_size(2_000).max_queue_bytes(64 << 20)))
        .collect();
    for hub in &hubs {
        hub.wait_stats("every hub's heartbeat", |s| {
            s.cluster.as_ref().is_some_and(|c| c.hubs.len() == 2)
        });
    }
    let mut client = narrow_client(&hubs[0], "/ws");
    let reply = subscribe(&mut client, json!({"channel": "c"}), None);
    let epoch = reply["data"]["epoch"].clone();
    client.request(json!({"type": "unsubscribe", "channel": "c"}), "away");
    let pad = "x".repeat(32 * 1024);
    for n in 0..COUNT {
        hubs[0]
            .handle()
            .publish(Target::channel("c"), "tick", json!({ "n": n, "pad": pad }))
            .unwrap();
    }
    let reply = subscribe(
        &mut client,
        json!({"channel": "c"}),
        Some(json!({"seq": 0, "epoch": epoch})),
    );
    assert_eq!(reply["data"]["recovered"], true, "{reply}");
    // A service connection of the other hub takes it off the channel.
    let mut service = hubs[1].client(&format!("/ws?token={ADMIN}"));
    let ack = service.request(
        json!({"type": "unsubscribe", "clientId": client.id(), "channel": "c"}),
        "off",
    );
    assert_eq!(ack["data"]["done"], true, "{ack}");
    for n in COUNT..COUNT + 200 {
        hubs[1]
            .handle()
            .publish(Target::channel("c"), "tick", json!({ "n": n }))
            .unwrap();
    }
    let leaked = sent_after_unsubscribed(&mut client, "c");
    assert!(
        leaked.is_empty(),
        "{} messages of the channel after `unsubscribed`, seq {} first",
        leaked.len(),
        leaked[0]["seq"]
    );
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_subscribe_waiting_for_redis_when_access_ends_gets_nothing_of_the_stream() {
    let mut redis = Redis::start();
    let hub = hub_on(config(&redis));
    let mut client = hub.client("/ws");
    let reply = subscribe(&mut client, json!({"channel": "c"}), None);
    let epoch = reply["data"]["epoch"].clone();
    for n in 0..3 {
        hub.handle()
            .publish(Target::channel("c"), "tick", json!({ "n": n }))
            .unwrap();
    }
    for _ in 0..3 {
        expect(&mut client, "tick");
    }
    // Redis stops answering for a moment: the resume waits for it.
    let pid = redis.child.as_ref().unwrap().id().to_string();
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
    };
    signal("-STOP");
    client.send(json!({
        "type": "subscribe", "channel": "c", "correlationId": "late",
        "since": {"seq": 0, "epoch": epoch}
    }));
    // The hub has it (a ping behind it is answered), and takes the client
    // off the channel while Redis is still to answer.
    let before = until_pong(&mut client, "asked");
    let unsubscribed = hub
        .handle()
        .unsubscribe(&client.id(), Some(Topic::channel("c")));
    signal("-CONT");
    assert!(before.is_empty(), "{before:?}");
    assert!(unsubscribed.unwrap());
    // Redis answers in order: once a later subscribe is answered, so was
    // the first.
    client.send(json!({"type": "subscribe", "channel": "probe", "correlationId": "probe"}));
    let mut got = Vec::new();
    loop {
        let message = next(&mut client, "the probe's answer");
        if message["correlationId"] == "probe" {
            break;
        }
        got.push(message);
    }
    // The subscribe that waited gets its one answer, first: it was ended.
    assert_eq!(got[0]["type"], "error", "{got:?}");
    assert_eq!(got[0]["correlationId"], "late", "{got:?}");
    assert_eq!(got[0]["data"]["code"], "unsubscribed", "{got:?}");
    assert_eq!(got[1]["type"], "unsubscribed", "{got:?}");
    assert!(got.len() == 2, "after `unsubscribed`: {:?}", &got[2..]);
    for round in 0..2 {
        let later = until_pong(&mut client, &format!("later-{round}"));
        assert!(later.iter().all(|m| m["channel"] != "c"), "{later:?}");
    }
    redis.stop();
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_subscribe_waiting_for_redis_that_the_client_unsubscribes_gets_its_own_answer() {
    let redis = Redis::start();
    let hub = hub_on(config(&redis));
    let mut client = hub.client("/ws");
    let reply = subscribe(&mut client, json!({"channel": "c"}), None);
    let epoch = reply["data"]["epoch"].clone();
    client.request(json!({"type": "unsubscribe", "channel": "c"}), "off");
    // Redis stops answering: the subscribes below wait for it.
    redis.pause();
    for (correlation, since) in [
        ("first", Some(json!({"seq": 0, "epoch": epoch}))),
        ("second", None),
    ] {
        let mut request =
            json!({"type": "subscribe", "channel": "c", "correlationId": correlation});
        if let Some(since) = since {
            request["since"] = since;
        }
        client.send(request);
    }
    client.send(json!({"type": "unsubscribe", "channel": "c", "correlationId": "cancel"}));
    // Each request gets one answer, in order, while Redis is still stalled.
    let mut got = until_pong(&mut client, "stalled");
    redis.resume();
    // Redis answers in order: once a later subscribe is answered, so were
    // the first two.
    client.send(json!({"type": "subscribe", "channel": "probe", "correlationId": "probe"}));
    loop {
        let message = next(&mut client, "the probe's answer");
        if message["correlationId"] == "probe" {
            break;
        }
        got.push(message);
    }
    got.extend(until_pong(&mut client, "after"));
    let answers: Vec<(String, String)> = got
        .iter()
        .filter(|m| m["type"] != "user_presence")
        .map(|m| {
            let code = m["data"]["code"].as_str().unwrap_or_default();
            (
                m["correlationId"].as_str().unwrap_or("-").to_owned(),
                format!("{} {code}", m["type"].as_str().unwrap_or_default()),
            )
        })
        .collect();
    let expected = [
        ("first", "error unsubscribed"),
        ("second", "error unsubscribed"),
        ("cancel", "unsubscribed "),
    ]
    .map(|(c, t)| (c.to_owned(), t.to_owned()));
    assert_eq!(answers, expected, "{got:?}");
    // Subscribed again, it is live once.
    subscribe(&mut client, json!({"channel": "c"}), None);
    hub.handle()
        .publish(Target::channel("c"), "after", json!({}))
        .unwrap();
    expect(&mut client, "after");
    client.expect_nothing_pending();
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_catch_up_from_redis_larger_than_the_clients_queue_is_recovered_false() {
    let redis = Redis::start();
    let hub = hub_on(config(&redis).max_queue(100));
    let mut client = hub.client("/ws");
    let reply = subscribe(&mut client, json!({"channel": "c"}), None);
    let epoch = reply["data"]["epoch"].clone();
    client.request(json!({"type": "unsubscribe", "channel": "c"}), "away");
    for n in 0..300 {
        hub.handle()
            .publish(Target::channel("c"), "tick", json!({ "n": n }))
            .unwrap();
    }
    // Redis kept all 300, but the hub would hold them for the client: more
    // than its queue may hold is not replayed, the client is told.
    let reply = subscribe(
        &mut client,
        json!({"channel": "c"}),
        Some(json!({"seq": 0, "epoch": epoch})),
    );
    assert_eq!(reply["data"]["recovered"], false, "{reply}");
    assert_eq!(reply["data"]["seq"], 300, "{reply}");
    hub.handle()
        .publish(Target::channel("c"), "tick", json!({ "n": 300 }))
        .unwrap();
    assert_eq!(
        expect(&mut client, "tick")["seq"],
        301,
        "live from its position"
    );
    client.expect_nothing_pending();
    // Within its queue, it is replayed.
    let reply = subscribe(
        &mut client,
        json!({"channel": "c"}),
        Some(json!({"seq": 250, "epoch": epoch})),
    );
    assert_eq!(reply["data"]["recovered"], true, "{reply}");
    for seq in 251..=301 {
        assert_eq!(expect(&mut client, "tick")["seq"], seq);
    }
    client.expect_nothing_pending();
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_client_that_stops_reading_mid_catch_up_from_redis_is_a_slow_consumer() {
    let redis = Redis::start();
    let hub = hub_on(config(&redis).max_queue_bytes(16 << 20));
    // 240 of 64 KB to catch up on (15 MB): within its queue's 16 MiB, more
    // than half of it and the socket take, so the rest is held for it.
    let pad = "x".repeat(64 * 1024);
    let publish = |n: u64| {
        hub.handle()
            .publish(Target::channel("c"), "tick", json!({ "n": n, "pad": pad }))
            .unwrap();
    };
    let mut client = narrow_client(&hub, "/ws");
    let reply = subscribe(&mut client, json!({"channel": "c"}), None);
    let epoch = reply["data"]["epoch"].clone();
    client.request(json!({"type": "unsubscribe", "channel": "c"}), "away");
    for n in 0..240 {
        publish(n);
    }
    let reply = subscribe(
        &mut client,
        json!({"channel": "c"}),
        Some(json!({"seq": 0, "epoch": epoch})),
    );
    assert_eq!(reply["data"]["recovered"], true, "{reply}");
    // It reads no more; what comes for it is held behind its catch-up,
    // until that passes its queue's limit.
    let mut n = 240;
    while hub.handle().stats().unwrap().slow_consumers == 0 {
        assert!(
            n < 600,
            "{n} publications held for a client that does not read"
        );
        publish(n);
        n += 1;
        let stats = hub.handle().stats().unwrap();
        assert!(
            stats.queued_bytes <= (16 << 20) + 128 * 1024,
            "{} bytes queued or held",
            stats.queued_bytes
        );
    }
    assert_eq!(client.expect_close(), (1013, "Client too slow".to_owned()));
}

/// An HTTP request with the admin token; its status and JSON body.
fn admin(hub: &TestHub, method: &str, path: &str, body: &str) -> (u16, Value) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        hub.addr,
        body.len()
    );
    let (status, _, body) = support::http_raw(hub.addr, request.as_bytes());
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn cluster_id(hub: &TestHub) -> String {
    hub.handle().stats().unwrap().cluster.unwrap().hub
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn stats_show_each_hub_and_the_cluster() {
    let redis = Redis::start();
    let hubs = hubs(&redis, 2);
    let _a = hubs[0].client("/ws");
    let _b = hubs[1].client("/ws");
    let _c = hubs[1].client("/ws");
    let stats = hubs[0].wait_stats("the heartbeats to count 3 clients", |s| {
        s.cluster
            .as_ref()
            .is_some_and(|c| c.hubs.iter().map(|h| h.connections).sum::<usize>() == 3)
    });
    assert_eq!(stats.active_connections, 1);
    let (status, body) = admin(&hubs[0], "GET", "/api/ws/stats", "");
    assert_eq!(status, 200);
    assert_eq!(body["clusterHubs"], 2);
    assert_eq!(body["clusterConnections"], 3);
    assert_eq!(body["redisUp"], 1);
    assert_eq!(body["hubs"].as_array().unwrap().len(), 2);
}

/// The wshub binary on `redis`, its address from its log.
struct Binary {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Binary {
    fn start(redis: &Redis) -> Binary {
        Binary::start_with(redis, &[])
    }

    fn start_with(redis: &Redis, more: &[&str]) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wshub"))
            .args([
                "--port",
                "0",
                "--redis",
                &redis.url(),
                "--presence-grace",
                "0",
            ])
            .args(more)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines.next().expect("a log line").expect("readable stderr");
            if let Some(rest) = line.split("listening on ws://").nth(1) {
                break rest.split('/').next().unwrap().parse().unwrap();
            }
        };
        // Keep draining its log.
        std::thread::spawn(move || for _ in lines {});
        Binary { child, addr }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_hub_killed_with_sigkill_leaves_the_others_serving_and_its_users_go_offline() {
    let redis = Redis::start();
    let survivor = hub_on(config(&redis));
    let mut doomed = Binary::start(&redis);
    let mut watcher = survivor.client("/ws?userId=watcher");
    watcher.expect("user_presence");
    let deadline = Instant::now() + DEADLINE;
    // The binary joins Redis on its own time: wait for alice's online.
    let _alice = loop {
        let alice = Client::connect(doomed.addr, "/ws?userId=alice");
        let told = watcher.recv("alice online");
        if told["data"]["userId"] == "alice" {
            break alice;
        }
        assert!(Instant::now() < deadline);
    };
    let killed = Instant::now();
    Command::new("kill")
        .args(["-KILL", &doomed.child.id().to_string()])
        .status()
        .unwrap();
    let _ = doomed.child.wait();
    // Offline once its lease ran out (10 s) and a heartbeat swept it.
    let mut offline = None;
    while offline.is_none() {
        let message = support::read_json(&mut watcher.ws, Duration::from_secs(20))
            .expect("alice goes offline within the lease");
        if message["data"] == json!({"userId": "alice", "status": "offline"}) {
            offline = Some(killed.elapsed());
        }
    }
    assert!(offline.unwrap() < Duration::from_secs(20));
    // The survivor serves on.
    subscribe(&mut watcher, json!({"channel": "c"}), None);
    survivor
        .handle()
        .publish(Target::channel("c"), "still", json!({}))
        .unwrap();
    expect(&mut watcher, "still");
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_request_sent_to_a_hub_that_dies_is_answered_busy() {
    let redis = Redis::start();
    let survivor = hub_on(config(&redis));
    let doomed = Binary::start_with(&redis, &["--admin-token", ADMIN]);
    let mut service = Client::connect(doomed.addr, &format!("/ws?token={ADMIN}"));
    survivor.wait_stats("the service to be known", |s| {
        s.cluster
            .as_ref()
            .is_some_and(|c| c.hubs.iter().any(|h| h.services == 1))
    });
    let mut client = survivor.client("/ws");
    client.send(json!({"type": "agent:start", "correlationId": "r1"}));
    expect(&mut service, "client_message");
    Command::new("kill")
        .args(["-KILL", &doomed.child.id().to_string()])
        .status()
        .unwrap();
    // Once its lease ran out (10 s), the request is known to be lost.
    let busy = support::read_json(&mut client.ws, Duration::from_secs(25))
        .expect("busy once the dead hub's lease runs out");
    assert_eq!(busy["type"], "error", "{busy}");
    assert_eq!(busy["correlationId"], "r1", "{busy}");
    assert_eq!(busy["data"]["code"], "busy", "{busy}");
    drop(doomed);
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn without_redis_each_hub_serves_its_own_and_joins_again_by_itself() {
    let mut redis = Redis::start();
    let hubs = hubs(&redis, 2);
    let mut near = hubs[0].client("/ws");
    let mut far = hubs[1].client("/ws");
    let reply = subscribe(&mut near, json!({"channel": "c"}), None);
    let epoch = reply["data"]["epoch"].clone();
    subscribe(&mut far, json!({"channel": "c"}), None);

    redis.stop();
    for hub in &hubs {
        hub.wait_stats("the hub to see Redis gone", |s| {
            s.cluster.as_ref().is_some_and(|c| !c.redis_up)
        });
    }
    // Each hub serves its own clients alone.
    hubs[0]
        .handle()
        .publish(Target::channel("c"), "alone", json!({"n": 1}))
        .unwrap();
    let alone = expect(&mut near, "alone");
    assert_ne!(alone["epoch"], epoch, "numbered on this hub alone: {alone}");
    far.expect_nothing_pending();

    redis.launch();
    for hub in &hubs {
        hub.wait_stats("the hub to join Redis again", |s| {
            s.cluster.as_ref().is_some_and(|c| c.redis_up)
        });
    }
    // Cross-hub delivery is back by itself.
    hubs[1]
        .handle()
        .publish(Target::channel("c"), "together", json!({}))
        .unwrap();
    let a = expect(&mut near, "together");
    let b = expect(&mut far, "together");
    assert_eq!(a["epoch"], b["epoch"]);
    // Whoever had the old epoch learns it cannot be recovered.
    let mut late = hubs[1].client("/ws");
    let reply = subscribe(
        &mut late,
        json!({"channel": "c"}),
        Some(json!({"seq": 0, "epoch": epoch})),
    );
    assert_eq!(reply["data"]["recovered"], false, "{reply}");
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_session_belongs_to_its_user_across_hubs() {
    let redis = Redis::start();
    let tokens = HashMap::from([
        (Secret::new("alice-token"), TokenGrant::user("alice")),
        (Secret::new("bob-token"), TokenGrant::user("bob")),
    ]);
    let hub = |tokens: &HashMap<Secret, TokenGrant>| hub_on(config(&redis).tokens(tokens.clone()));
    let (one, two) = (hub(&tokens), hub(&tokens));
    let mut alice = one.client("/ws?token=alice-token");
    subscribe(&mut alice, json!({"sessionId": "private-1"}), None);
    let mut bob = two.client("/ws?token=bob-token");
    bob.send(json!({"type": "subscribe", "sessionId": "private-1", "correlationId": "steal"}));
    let refused = next(&mut bob, "the refusal");
    assert_eq!(refused["data"]["code"], "forbidden", "{refused}");
    one.handle()
        .publish(Target::session("private-1"), "secret", json!({}))
        .unwrap();
    expect(&mut alice, "secret");
    // Nothing but presence (bob's own online comes round the bus at its
    // own pace) before the pong: no secret.
    bob.send(json!({"type": "ping", "correlationId": "p"}));
    assert_eq!(next(&mut bob, "the pong")["type"], "pong");
}

// --- faults between one hub and Redis, Redis keeping its data -------------

/// A TCP proxy to Redis that can be cut (every connection dropped, new ones
/// refused) and restored: a hub cut off from Redis while Redis keeps its data.
/// It can also stall Redis's answers on one connection
/// ([`hold_answers_after`](Proxy::hold_answers_after)): Redis slow to answer
/// one hub's command while the bus goes on.
struct Proxy {
    port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    live: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
    hold: std::sync::Arc<Hold>,
}

/// What [`Proxy::hold_answers_after`] waits on.
#[derive(Default)]
struct Hold {
    /// Bytes that, sent by the hub, stall what comes back on that connection.
    trigger: std::sync::Mutex<Option<Vec<u8>>>,
    /// Whether a connection stalls (until released).
    state: std::sync::Mutex<HoldState>,
    changed: std::sync::Condvar,
}

#[derive(Default, PartialEq)]
enum HoldState {
    #[default]
    Off,
    Holding,
    Released,
}

impl Proxy {
    fn start(redis: &Redis) -> Proxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = std::sync::Arc::new(AtomicBool::new(false));
        let live = std::sync::Arc::new(std::sync::Mutex::new(Vec::<TcpStream>::new()));
        let hold = std::sync::Arc::new(Hold::default());
        let (d, l, h, target) = (down.clone(), live.clone(), hold.clone(), redis.port);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                l.lock().unwrap().push(client.try_clone().unwrap());
                l.lock().unwrap().push(server.try_clone().unwrap());
                let (mut c1, mut s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut c2, mut s2) = (client, server);
                // This connection's answers stall once it sent the trigger.
                let tripped = std::sync::Arc::new(AtomicBool::new(false));
                let (h1, t1) = (h.clone(), tripped.clone());
                let (h2, t2) = (h.clone(), tripped);
                std::thread::spawn(move || {
                    let mut buf = vec![0; 64 << 10];
                    while let Ok(n) = c1.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let mut trigger = h1.trigger.lock().unwrap();
                        if trigger
                            .as_ref()
                            .is_some_and(|t| buf[..n].windows(t.len()).any(|w| w == t))
                        {
                            *trigger = None;
                            *h1.state.lock().unwrap() = HoldState::Holding;
                            t1.store(true, Ordering::SeqCst);
                            h1.changed.notify_all();
                        }
                        drop(trigger);
                        if s1.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s1.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let mut buf = vec![0; 64 << 10];
                    while let Ok(n) = s2.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if t2.load(Ordering::SeqCst) {
                            let state = h2.state.lock().unwrap();
                            let _released = h2
                                .changed
                                .wait_while(state, |s| *s == HoldState::Holding)
                                .unwrap();
                        }
                        if c2.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = c2.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Proxy {
            port,
            down,
            live,
            hold,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// The next connection to send `bytes` gets no more answers until
    /// [`release`](Proxy::release).
    fn hold_answers_after(&self, bytes: &str) {
        *self.hold.trigger.lock().unwrap() = Some(bytes.as_bytes().to_vec());
    }

    /// Waits, up to [`DEADLINE`], until a connection is held.
    fn wait_held(&self) {
        let state = self.hold.state.lock().unwrap();
        let (state, _) = self
            .hold
            .changed
            .wait_timeout_while(state, DEADLINE, |s| *s == HoldState::Off)
            .unwrap();
        assert!(
            *state == HoldState::Holding,
            "no connection sent the trigger"
        );
    }

    /// What was held goes on.
    fn release(&self) {
        *self.hold.state.lock().unwrap() = HoldState::Released;
        self.hold.changed.notify_all();
    }
}

fn redis_cli(redis: &Redis, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A hub that reaches Redis through `proxy`.
fn behind(proxy: &Proxy, config: Config) -> TestHub {
    hub_on(config.redis(Some(proxy.url())))
}

/// A client of `near` following channel `c`, which has had `n`
/// publications from `far`.
fn following_c(near: &TestHub, far: &TestHub, n: u64) -> Client {
    let mut client = near.client("/ws");
    subscribe(&mut client, json!({"channel": "c"}), None);
    for n in 1..=n {
        far.handle()
            .publish(Target::channel("c"), "old", json!({ "n": n }))
            .unwrap();
    }
    for _ in 1..=n {
        expect(&mut client, "old");
    }
    client
}

fn wait_up(hub: &TestHub, up: bool) {
    hub.wait_stats("redis_up to change", |s| {
        s.cluster.as_ref().is_some_and(|c| c.redis_up == up)
    });
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_lost_script_cache_costs_no_publication() {
    let redis = Redis::start();
    let hubs = hubs(&redis, 2);
    let mut near = hubs[0].client("/ws");
    subscribe(&mut near, json!({"channel": "c"}), None);
    hubs[0]
        .handle()
        .publish(Target::channel("c"), "before", json!({}))
        .unwrap();
    expect(&mut near, "before");
    // An operator's SCRIPT FLUSH, or a failover behind a proxy: the
    // connections stay up, the scripts are gone.
    redis_cli(&redis, &["SCRIPT", "FLUSH"]);
    hubs[0]
        .handle()
        .publish(Target::channel("c"), "after", json!({}))
        .unwrap();
    // The publishing hub's own subscriber gets it.
    expect(&mut near, "after");
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_redis_refusing_writes_refuses_the_publication_to_its_publisher() {
    let redis = Redis::start();
    let hubs = hubs(&redis, 2);
    let mut near = hubs[0].client("/ws");
    subscribe(&mut near, json!({"channel": "c"}), None);
    let mut far = hubs[1].client("/ws");
    subscribe(&mut far, json!({"channel": "c"}), None);
    // Out of memory under the default policy, noeviction: writes refused.
    redis_cli(&redis, &["CONFIG", "SET", "maxmemory", "1"]);
    // Delivered on its own hub alone, it would leave the other hub's
    // subscribers a gap they cannot see: it is refused, and says why.
    let err = hubs[0]
        .handle()
        .publish(Target::channel("c"), "after", json!({}))
        .unwrap_err();
    assert!(matches!(err, wshub::Error::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("OOM"), "{err}");
    let (status, answer) = admin(&hubs[0], "POST", "/api/publish", r#"{"channel":"c"}"#);
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["code"], "unavailable", "{answer}");
    let mut publisher = hubs[0].client("/ws");
    let refused = publisher.request(json!({"type": "publish", "channel": "c"}), "p");
    assert_eq!(refused["data"]["code"], "busy", "{refused}");
    near.expect_nothing_pending();
    far.expect_nothing_pending();
    // Writes taken again: publications flow again.
    redis_cli(&redis, &["CONFIG", "SET", "maxmemory", "0"]);
    hubs[0]
        .handle()
        .publish(Target::channel("c"), "again", json!({}))
        .unwrap();
    assert_eq!(expect(&mut near, "again")["seq"], 1);
    assert_eq!(expect(&mut far, "again")["seq"], 1);
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_user_who_leaves_during_a_short_cut_off_goes_offline_everywhere() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let cut_hub = behind(&proxy, config(&redis));
    let other = hub_on(config(&redis));
    let mut watcher = other.client("/ws?userId=watcher");
    assert_eq!(watcher.expect("user_presence")["data"]["userId"], "watcher");
    let alice = cut_hub.client("/ws?userId=alice");
    assert_eq!(
        watcher.expect("user_presence")["data"],
        json!({"userId": "alice", "status": "online"})
    );
    proxy.cut();
    wait_up(&cut_hub, false);
    drop(alice);
    cut_hub.wait_stats("alice gone", |s| s.users == 0);
    proxy.restore();
    wait_up(&cut_hub, true);
    // Well past the lease: alice has no connection anywhere.
    let got = support::read_json(&mut watcher.ws, Duration::from_secs(15));
    let list = watcher.request(json!({"type": "presence"}), "who");
    println!("presence list on the other hub: {}", list["data"]);
    println!(
        "redis p:alice = {:?}",
        redis_cli(&redis, &["SMEMBERS", "wshub:p:alice"])
    );
    assert!(
        matches!(&got, Ok(m) if m["data"] == json!({"userId": "alice", "status": "offline"})),
        "alice was never told offline: {got:?}"
    );
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_request_whose_answer_was_lost_in_a_short_cut_off_is_answered_busy() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let service_hub = behind(&proxy, config(&redis));
    let client_hub = hub_on(config(&redis));
    let mut service = service_hub.client(&format!("/ws?token={ADMIN}"));
    client_hub.wait_stats("the service to be known", |s| {
        s.cluster
            .as_ref()
            .is_some_and(|c| c.hubs.iter().any(|h| h.services == 1))
    });
    let mut client = client_hub.client("/ws");
    client.send(json!({"type": "agent:start", "correlationId": "r1"}));
    expect(&mut service, "client_message");
    proxy.cut();
    wait_up(&service_hub, false);
    let ack = service.request(
        json!({"type": "send", "clientId": client.id(),
               "message": {"type": "agent:started", "correlationId": "r1"}}),
        "a1",
    );
    println!("service's ack while cut off: {ack}");
    proxy.restore();
    wait_up(&service_hub, true);
    let got = support::read_json(&mut client.ws, Duration::from_secs(20));
    assert!(
        got.is_ok(),
        "request r1 neither answered nor told busy after 20 s: {got:?}"
    );
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn resuming_on_another_hub_under_load_has_no_gap_and_no_duplicate() {
    let redis = Redis::start();
    let hubs = hubs(&redis, 2);
    let publisher = hubs[1].handle().clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let flood = std::thread::spawn(move || {
        let mut n = 0u64;
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            n += 1;
            publisher
                .publish(Target::channel("feed"), "tick", json!({ "n": n }))
                .unwrap();
            if n.is_multiple_of(5) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let mut watcher = hubs[0].client("/ws");
    subscribe(&mut watcher, json!({"channel": "feed"}), None);
    let mut problems = Vec::new();
    for round in 0..20 {
        // Where a live client is now...
        let seen = expect(&mut watcher, "tick");
        let since = json!({"seq": seen["seq"], "epoch": seen["epoch"]});
        // ...a new one resumes from there, on the hub that did not publish.
        let mut resumed = hubs[0].client("/ws");
        let reply = subscribe(
            &mut resumed,
            json!({"channel": "feed"}),
            Some(since.clone()),
        );
        let first = seen["seq"].as_u64().unwrap() + 1;
        for want in first..first + 100 {
            let tick = expect(&mut resumed, "tick");
            let seq = tick["seq"].as_u64().unwrap();
            if seq != want {
                problems.push(format!(
                    "round {round}: since {since} answered {}, expected seq {want}, got {seq}",
                    reply["data"]
                ));
                break;
            }
        }
        // Drain the watcher (some) so it stays near the head.
        for _ in 0..2_000 {
            if support::read_json(&mut watcher.ws, Duration::from_millis(1)).is_err() {
                break;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_hub_cut_off_while_redis_restarted_empty_catches_up_on_the_new_epoch() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let cut_hub = behind(&proxy, config(&redis));
    let other = hub_on(config(&redis));
    let mut near = following_c(&cut_hub, &other, 5);
    proxy.cut();
    wait_up(&cut_hub, false);
    // Redis restarts empty (FLUSHALL stands in for it), the other hub goes on.
    redis_cli(&redis, &["FLUSHALL"]);
    for n in 1..=3 {
        other
            .handle()
            .publish(Target::channel("c"), "new", json!({ "n": n }))
            .unwrap();
    }
    println!(
        "kept in Redis: {}",
        redis_cli(&redis, &["XLEN", "wshub:h:c:c"])
    );
    proxy.restore();
    wait_up(&cut_hub, true);
    let got = support::read_json(&mut near.ws, Duration::from_secs(5));
    // Either the catch-up brings what Redis kept, or (when it could not
    // be had in one piece: on a loaded machine Redis's answer may not come
    // in time) the subscriber is told to resume, and resuming says what
    // became of the stream. Never silence, never the next one alone.
    let resumed = match &got {
        Ok(m) if m["type"] == "new" => return,
        Err(why) if why.contains("Could not catch up: resume") => {
            let mut again = cut_hub.client("/ws");
            // Where it was: seq 5 of the epoch Redis lost.
            let old = json!({"seq": 5, "epoch": "0123456789ab"});
            subscribe(&mut again, json!({"channel": "c"}), Some(old))
        }
        other => panic!("what Redis kept meanwhile never reached the hub's subscriber: {other:?}"),
    };
    assert_eq!(resumed["data"]["recovered"], false, "{resumed}");
    assert_eq!(resumed["data"]["seq"], 3, "{resumed}");
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_stream_published_to_alone_during_a_cut_off_is_not_replayed_again() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let cut_hub = behind(&proxy, config(&redis));
    let other = hub_on(config(&redis));
    let mut near = following_c(&cut_hub, &other, 3);
    proxy.cut();
    wait_up(&cut_hub, false);
    // Published on the cut-off hub alone: the stream gets a new epoch when
    // it is back, and its numbering goes on.
    cut_hub
        .handle()
        .publish(Target::channel("c"), "alone", json!({}))
        .unwrap();
    expect(&mut near, "alone");
    proxy.restore();
    wait_up(&cut_hub, true);
    other
        .handle()
        .publish(Target::channel("c"), "fresh", json!({}))
        .unwrap();
    // Nothing of what it had already before the fresh one.
    assert_eq!(next(&mut near, "fresh")["type"], "fresh");
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_user_in_their_grace_period_stays_online_across_a_short_cut_off() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let cut_hub = behind(
        &proxy,
        config(&redis).presence_grace(Duration::from_secs(60)),
    );
    let other = hub_on(config(&redis));
    let mut watcher = other.client("/ws?userId=watcher");
    assert_eq!(watcher.expect("user_presence")["data"]["userId"], "watcher");
    subscribe(&mut watcher, json!({"channel": "sync"}), None);
    let alice = cut_hub.client("/ws?userId=alice");
    assert_eq!(
        watcher.expect("user_presence")["data"],
        json!({"userId": "alice", "status": "online"})
    );
    drop(alice);
    cut_hub.wait_stats("alice gone", |s| s.users == 0);
    proxy.cut();
    wait_up(&cut_hub, false);
    proxy.restore();
    wait_up(&cut_hub, true);
    // Sent after what the hub told Redis on its return: anything that
    // return said of alice reaches the watcher first.
    cut_hub
        .handle()
        .publish(Target::channel("sync"), "sync", json!({}))
        .unwrap();
    let told = watcher.recv("the sync");
    assert_eq!(told["type"], "sync", "alice is in her grace period: {told}");
}

// --- Redis stalled, slow or full: never a gap a client cannot see ---------

/// One delivery of the `feed` publications: where, and which one (`n`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    epoch: String,
    seq: u64,
    n: u64,
}

/// A subscriber of a channel on its own thread, reading as fast as it can
/// until the publication `end`: what it got, in order.
struct Follower {
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: std::thread::JoinHandle<Vec<Got>>,
}

impl Follower {
    fn start(hub: &TestHub, channel: &str) -> Follower {
        let mut client = hub.client("/ws");
        subscribe(&mut client, json!({ "channel": channel }), None);
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = count.clone();
        let thread = std::thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                let message = support::read_json(&mut client.ws, DEADLINE * 3)
                    .unwrap_or_else(|e| panic!("the follower read {} then: {e}", got.len()));
                match message["type"].as_str() {
                    Some("end") => return got,
                    Some("tick") => {
                        got.push(Got {
                            epoch: message["epoch"].as_str().unwrap_or("none").to_owned(),
                            seq: message["seq"].as_u64().unwrap_or(0),
                            n: message["data"]["n"].as_u64().expect("n"),
                        });
                        counted.store(got.len(), std::sync::atomic::Ordering::Release);
                    }
                    _ => {}
                }
            }
        });
        Follower { count, thread }
    }

    fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Acquire)
    }

    fn wait_for(&self, n: usize, what: &str) {
        let start = Instant::now();
        while self.count() < n {
            assert!(
                start.elapsed() < DEADLINE * 2,
                "{what}: only {}",
                self.count()
            );
            std::thread::yield_now();
        }
    }

    fn until_end(self) -> Vec<Got> {
        self.thread.join().expect("the follower")
    }
}

/// How a publication went, as the publisher was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Delivered,
    /// `Error::Unavailable`: nothing of it may be delivered.
    NotPublished,
    /// `Error::Unconfirmed`: it may or may not be.
    Unconfirmed,
}

/// A steady publisher on its own thread: `tick` with `n` = 1, 2, ... to a
/// channel through a handle, until stopped; what each publish returned.
struct Steady {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    told: std::sync::Arc<std::sync::Mutex<Vec<Told>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Steady {
    fn start(handle: wshub::Handle, channel: &'static str) -> Steady {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let told = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, t) = (stop.clone(), told.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let result = handle.publish(Target::channel(channel), "tick", json!({ "n": n }));
                let told = match result {
                    Ok(_) => Told::Delivered,
                    Err(wshub::Error::Unavailable(_)) => Told::NotPublished,
                    Err(wshub::Error::Unconfirmed(_)) => Told::Unconfirmed,
                    Err(other) => panic!("publish {n}: {other}"),
                };
                t.lock().unwrap().push(told);
                // About a thousand a second at most: a steady stream.
                if n.is_multiple_of(5) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        Steady { stop, told, thread }
    }

    /// How many were published (delivered) so far.
    fn delivered(&self) -> usize {
        let told = self.told.lock().unwrap();
        told.iter().filter(|t| **t == Told::Delivered).count()
    }

    fn wait_for(&self, n: usize, what: &str) {
        let start = Instant::now();
        while self.delivered() < n {
            assert!(
                start.elapsed() < DEADLINE * 2,
                "{what}: only {}",
                self.delivered()
            );
            std::thread::yield_now();
        }
    }

    fn stop(self) -> Vec<Told> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the publisher");
        std::mem::take(&mut *self.told.lock().unwrap())
    }
}

/// Publishes `end` on `channel` until a hub takes it (just after an
/// outage the first tries may be refused).
fn end(hub: &TestHub, channel: &str) {
    let start = Instant::now();
    while let Err(err) = hub
        .handle()
        .publish(Target::channel(channel), "end", json!({}))
    {
        assert!(start.elapsed() < DEADLINE, "end never published: {err}");
        std::thread::yield_now();
    }
}

/// What is wrong with what one subscriber got, given what each publish
/// was told (`told[n - 1]`): a publication twice, a `seq` missing or out
/// of order within an epoch, a publication said unpublished delivered
/// anyway, or, worst, a gap it cannot see: publications said delivered
/// missing between two it got in the same epoch.
fn problems(name: &str, got: &[Got], told: &[Told]) -> Vec<String> {
    let mut problems = Vec::new();
    let told_of = |n: u64| told.get(n as usize - 1).copied();
    let mut seen = std::collections::HashSet::new();
    let mut last_in: HashMap<&str, u64> = HashMap::new();
    for g in got {
        if !seen.insert(g.n) {
            problems.push(format!("{name}: publication {} twice ({g:?})", g.n));
        }
        if let Some(last) = last_in.insert(&g.epoch, g.seq)
            && g.seq != last + 1
        {
            problems.push(format!(
                "{name}: in epoch {} seq {last} then {} (publication {})",
                g.epoch, g.seq, g.n
            ));
        }
        if told_of(g.n) == Some(Told::NotPublished) {
            problems.push(format!(
                "{name}: publication {} was said not published, yet delivered",
                g.n
            ));
        }
    }
    let mut by_n: Vec<&Got> = got.iter().collect();
    by_n.sort_by_key(|g| g.n);
    for pair in by_n.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.epoch != b.epoch {
            continue; // A new epoch: the client is told it may have missed some.
        }
        let missing: Vec<u64> = (a.n + 1..b.n)
            .filter(|n| told_of(*n) == Some(Told::Delivered))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{name}: {} publications said delivered are missing between seq {} and {} of epoch {} (publications {}..{})",
                missing.len(),
                a.seq,
                b.seq,
                a.epoch,
                missing[0],
                missing[missing.len() - 1]
            ));
        }
    }
    problems
}

/// The same position is the same publication on every hub.
fn same_order(near: &[Got], far: &[Got]) -> Vec<String> {
    let at: HashMap<(&str, u64), u64> = near.iter().map(|g| ((&*g.epoch, g.seq), g.n)).collect();
    far.iter()
        .filter_map(|g| {
            let n = at.get(&(&*g.epoch, g.seq))?;
            (*n != g.n).then(|| {
                format!(
                    "epoch {} seq {}: publication {n} near, {} far",
                    g.epoch, g.seq, g.n
                )
            })
        })
        .collect()
}

fn wait_down_within(hub: &TestHub, within: Duration) {
    let start = Instant::now();
    loop {
        let stats = hub.handle().stats().expect("stats");
        if stats.cluster.as_ref().is_some_and(|c| !c.redis_up) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "Redis stalled for {within:?} and the hub still takes it for up"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_stalled_redis_is_taken_for_lost_within_its_deadline_on_every_hub() {
    let redis = Redis::start();
    let deadline = Duration::from_millis(500);
    let config = config(&redis).redis_timeout(deadline);
    let hubs = hubs_with(&config, 2);
    redis.pause();
    // Idle hubs too: the pubsub link is PINGed once quiet for a moment,
    // within the deadline; then a heartbeat, within it. Before, only a
    // command 5 s old gave the stall away.
    let within = (Duration::from_secs(1) + deadline) * 3;
    for hub in &hubs {
        wait_down_within(hub, within);
    }
    // Stalled is lost: a hub serves its own clients alone, at once.
    let mut near = hubs[0].client("/ws");
    subscribe(&mut near, json!({"channel": "c"}), None);
    hubs[0]
        .handle()
        .publish(Target::channel("c"), "alone", json!({}))
        .unwrap();
    expect(&mut near, "alone");
    redis.resume();
    for hub in &hubs {
        wait_up(hub, true);
    }
    let mut far = hubs[1].client("/ws");
    subscribe(&mut far, json!({"channel": "c"}), None);
    hubs[1]
        .handle()
        .publish(Target::channel("c"), "together", json!({}))
        .unwrap();
    let (a, b) = (expect(&mut near, "together"), expect(&mut far, "together"));
    assert_eq!((&a["seq"], &a["epoch"]), (&b["seq"], &b["epoch"]));
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_publication_the_queue_to_redis_cannot_take_is_refused_not_delivered_on_one_hub() {
    let redis = Redis::start();
    let config = config(&redis)
        // Long enough for the queue to Redis to fill before the stall is
        // taken for an outage.
        .redis_timeout(Duration::from_secs(30))
        .rate_limit(0)
        .max_queue(1 << 20)
        .max_queue_bytes(1 << 30);
    let hubs = hubs_with(&config, 2);
    let mut near = hubs[0].client("/ws");
    subscribe(&mut near, json!({"channel": "c"}), None);
    let mut far = hubs[1].client("/ws");
    subscribe(&mut far, json!({"channel": "c"}), None);
    let mut publisher = hubs[0].client("/ws");
    redis.pause();
    // More than the queue to Redis holds (64 Ki), without waiting.
    let total: u64 = 64 * 1024 + 2_000;
    for n in 1..=total {
        publisher
            .send(json!({"type": "publish", "channel": "c", "event": "tick", "data": {"n": n}}));
    }
    let refused = publisher.recv("a refusal once the queue to Redis is full");
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["data"]["code"], "busy", "{refused}");
    let why = refused["data"]["error"].as_str().unwrap();
    assert!(why.contains("queue to Redis is full"), "{why}");
    redis.resume();
    // Its refusals, up to a pong: by then the hub has taken (or refused)
    // every publication; then the end, behind them all.
    let mut refusals = 1 + refusals_until_pong(&mut publisher);
    end(&hubs[0], "c");
    refusals += refusals_until_pong(&mut publisher);
    // Every publication either went through Redis to both hubs, in the same
    // order, or was refused to its publisher: none on one hub alone.
    let read = |client: &mut Client| {
        let mut got = Vec::new();
        loop {
            let message = client.recv("the end");
            match message["type"].as_str() {
                Some("end") => return got,
                Some("tick") => got.push(Got {
                    epoch: message["epoch"].as_str().unwrap().to_owned(),
                    seq: message["seq"].as_u64().unwrap(),
                    n: message["data"]["n"].as_u64().unwrap(),
                }),
                _ => {}
            }
        }
    };
    let (near_got, far_got) = (read(&mut near), read(&mut far));
    assert_eq!(
        near_got.len(),
        far_got.len(),
        "near and far got different counts"
    );
    assert!(near_got == far_got, "near and far differ");
    let gaps = problems("near", &near_got, &vec![Told::Delivered; total as usize]);
    assert_eq!(
        near_got.len() as u64 + refusals,
        total,
        "every publication is delivered everywhere or refused: {} delivered, {refusals} refused; gaps seen: {gaps:?}",
        near_got.len()
    );
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_subscribe_the_queue_to_redis_cannot_take_is_refused_busy_not_answered_from_this_hub() {
    let redis = Redis::start();
    let config = config(&redis)
        // Long enough for the queue to Redis to fill before the stall is
        // taken for an outage.
        .redis_timeout(Duration::from_secs(30))
        .rate_limit(0)
        .max_queue(1 << 20)
        .max_queue_bytes(1 << 30);
    let hub = hub_on(config);
    let mut client = hub.client("/ws");
    let mut publisher = hub.client("/ws");
    redis.pause();
    for n in 1..=64 * 1024 + 2_000 {
        publisher.send(
            json!({"type": "publish", "channel": "flood", "event": "tick", "data": {"n": n}}),
        );
    }
    let refused = publisher.recv("a refusal once the queue to Redis is full");
    assert_eq!(refused["data"]["code"], "busy", "{refused}");
    // A subscribe now: refused as the publications are, not answered from
    // this hub's own history (which is not the stream's).
    let reply = client.request(
        json!({"type": "subscribe", "channel": "c", "since": {"seq": 0, "epoch": "e"}}),
        "s1",
    );
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["data"]["code"], "busy", "{reply}");
    let why = reply["data"]["error"].as_str().unwrap();
    assert!(why.contains("queue to Redis is full"), "{why}");
    // The backend's subscribe too, and a session asked for at connect.
    let refused = hub.handle().subscribe(&client.id(), Topic::channel("d"));
    assert!(
        matches!(refused, Err(wshub::Error::Unavailable(_))),
        "{refused:?}"
    );
    let mut joining = hub.client("/ws?sessionId=s1");
    let told = expect(&mut joining, "error");
    assert_eq!(told["data"]["code"], "busy", "{told}");
    let stats = hub.handle().stats().unwrap();
    for (who, id) in [("client", client.id()), ("joining", joining.id())] {
        let entry = stats.clients.iter().find(|c| c.id == id).unwrap();
        assert!(
            entry.channels.is_empty() && entry.sessions.is_empty(),
            "{who} is not subscribed: {entry:?}"
        );
    }
    redis.resume();
    refusals_until_pong(&mut publisher);
    // Once Redis takes questions again, the same subscribe is answered:
    // as soon as the 64 Ki publications queued before it have gone to
    // Redis, which on a loaded machine may be after the pong. Until then
    // it is refused `busy`, "try again", as a client would.
    let deadline = Instant::now() + DEADLINE;
    let reply = loop {
        let reply = client.request(json!({"type": "subscribe", "channel": "c"}), "again");
        if reply["type"] == "subscribed" || Instant::now() > deadline {
            break reply;
        }
        assert_eq!(reply["data"]["code"], "busy", "{reply}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(reply["type"], "subscribed", "{reply}");
    assert!(reply["data"]["epoch"].is_string(), "{reply}");
    client.expect_nothing_pending();
}

/// The `busy` refusals a client gets before the pong to a ping.
fn refusals_until_pong(client: &mut Client) -> u64 {
    client.send(json!({"type": "ping", "correlationId": "count"}));
    let mut refusals = 0;
    loop {
        let message = client.recv("the pong");
        if message["type"] == "pong" {
            return refusals;
        }
        assert_eq!(message["data"]["code"], "busy", "{message}");
        refusals += 1;
    }
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn redis_stalled_past_its_deadline_leaves_no_hidden_gap_and_no_duplicate() {
    let redis = Redis::start();
    let config = config(&redis)
        .redis_timeout(Duration::from_millis(500))
        .max_queue(1 << 20)
        .max_queue_bytes(1 << 30);
    let hubs = hubs_with(&config, 2);
    let near = Follower::start(&hubs[0], "feed");
    let far = Follower::start(&hubs[1], "feed");
    let publisher = Steady::start(hubs[0].handle().clone(), "feed");
    far.wait_for(50, "publications before the stall");
    // Stalled past the deadline: both hubs take Redis for lost, the
    // publishing hub goes on alone.
    redis.pause();
    for hub in &hubs {
        wait_up(hub, false);
    }
    let before = publisher.delivered();
    publisher.wait_for(before + 100, "publications while alone");
    redis.resume();
    for hub in &hubs {
        wait_up(hub, true);
    }
    let after = publisher.delivered();
    publisher.wait_for(after + 100, "publications after the stall");
    let told = publisher.stop();
    end(&hubs[0], "feed");
    let (near_got, far_got) = (near.until_end(), far.until_end());
    let refused = told.iter().filter(|t| **t != Told::Delivered).count();
    println!(
        "{} published, {refused} refused or unconfirmed; near got {}, far {}",
        told.len(),
        near_got.len(),
        far_got.len()
    );
    let mut all = problems("near", &near_got, &told);
    all.extend(problems("far", &far_got, &told));
    all.extend(same_order(&near_got, &far_got));
    assert!(all.is_empty(), "{}", all.join("\n"));
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_retry_with_the_same_key_on_another_hub_is_not_delivered_again() {
    let redis = Redis::start();
    let config = config(&redis).redis_timeout(Duration::from_secs(1));
    let hubs = hubs_with(&config, 2);
    let mut near = hubs[0].client("/ws");
    subscribe(&mut near, json!({"channel": "orders"}), None);
    let mut far = hubs[1].client("/ws");
    subscribe(&mut far, json!({"channel": "orders"}), None);
    let body =
        r#"{"channel":"orders","type":"order","data":{"id":42},"idempotencyKey":"order-42"}"#;
    let first = admin(&hubs[0], "POST", "/api/publish", body);
    assert_eq!(first.0, 200, "{first:?}");
    // The retry goes to the other hub (a load balancer): the first answer.
    assert_eq!(admin(&hubs[1], "POST", "/api/publish", body), first);
    let again = hubs[1]
        .handle()
        .publish_idempotent(
            Target::channel("orders"),
            "order",
            json!({"id": 42}),
            "order-42",
        )
        .unwrap();
    assert_eq!(json!(again), first.1["data"]["delivered"]);
    hubs[1]
        .handle()
        .publish(Target::channel("orders"), "marker", json!({}))
        .unwrap();
    for client in [&mut near, &mut far] {
        assert_eq!(expect(client, "order")["data"]["id"], 42);
        assert_eq!(next(client, "the marker")["type"], "marker");
    }
    // Redis away: a key cannot be checked across hubs, so it is refused.
    redis.pause();
    wait_up(&hubs[0], false);
    let err = hubs[0]
        .handle()
        .publish_idempotent(
            Target::channel("orders"),
            "order",
            json!({"id": 43}),
            "order-43",
        )
        .unwrap_err();
    assert!(matches!(err, wshub::Error::Unavailable(_)), "{err}");
    redis.resume();
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_client_that_resumed_on_a_cut_off_hub_gets_nothing_twice_when_it_catches_up() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let cut_hub = behind(&proxy, config(&redis));
    let other = hub_on(config(&redis));
    // A follower through the outage on the hub to be cut off, and a client
    // on the other hub.
    let mut through = following_c(&cut_hub, &other, 2);
    let mut mover = other.client("/ws");
    subscribe(&mut mover, json!({"channel": "c"}), None);
    proxy.cut();
    wait_up(&cut_hub, false);
    for n in 1..=3 {
        other
            .handle()
            .publish(Target::channel("c"), "meanwhile", json!({ "n": n }))
            .unwrap();
    }
    let mut last = Value::Null;
    for _ in 1..=3 {
        last = expect(&mut mover, "meanwhile");
    }
    // It moves to the cut-off hub, which cannot know where the stream is.
    let mut moved = cut_hub.client("/ws");
    let reply = subscribe(
        &mut moved,
        json!({"channel": "c"}),
        Some(json!({"seq": last["seq"], "epoch": last["epoch"]})),
    );
    assert_eq!(reply["data"]["recovered"], false, "{reply}");
    drop(mover);
    proxy.restore();
    wait_up(&cut_hub, true);
    // The follower there is caught up...
    for n in 1..=3 {
        assert_eq!(expect(&mut through, "meanwhile")["data"]["n"], n);
    }
    // ...but the one that came meanwhile gets nothing it had, only what
    // is new.
    other
        .handle()
        .publish(Target::channel("c"), "fresh", json!({}))
        .unwrap();
    let next = next(&mut moved, "the fresh one");
    assert_eq!(next["type"], "fresh", "delivered again: {next}");
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_catch_up_that_outgrows_a_clients_queue_ends_with_1013_and_resumes_from_redis() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    // A queue of 20: the catch-up holds at most 20 publications of a stream.
    let cut_hub = behind(
        &proxy,
        config(&redis)
            .max_queue(20)
            .redis_timeout(Duration::from_secs(30)),
    );
    let other = hub_on(config(&redis));
    let mut through = cut_hub.client("/ws");
    let epoch = subscribe(&mut through, json!({"channel": "c"}), None)["data"]["epoch"].clone();
    other
        .handle()
        .publish(Target::channel("c"), "before", json!({}))
        .unwrap();
    assert_eq!(expect(&mut through, "before")["seq"], 1);
    proxy.cut();
    wait_up(&cut_hub, false);
    other
        .handle()
        .publish(Target::channel("c"), "meanwhile", json!({}))
        .unwrap();
    // Back, the hub asks Redis what its client missed; Redis is slow to
    // answer it while the other hub's publications go on coming.
    proxy.hold_answers_after("wshub:m:c:c");
    proxy.restore();
    proxy.wait_held();
    for n in 1..=30 {
        other
            .handle()
            .publish(Target::channel("c"), "live", json!({ "n": n }))
            .unwrap();
    }
    // Past 20 held, the catch-up ends: the client is told, not left with a
    // gap nor the hub with an unbounded list.
    let (code, reason) = through.expect_close();
    assert_eq!(
        (code, reason.as_str()),
        (1013, "Too much to catch up: resume")
    );
    proxy.release();
    wait_up(&cut_hub, true);
    // Resuming, it is told what Redis has for it is more than its queue
    // takes (recovered: false), and goes on live from there.
    let mut back = cut_hub.client("/ws");
    let reply = subscribe(
        &mut back,
        json!({"channel": "c"}),
        Some(json!({"seq": 1, "epoch": epoch})),
    );
    assert_eq!(reply["data"]["recovered"], false, "{reply}");
    assert_eq!(reply["data"]["seq"], 32, "{reply}");
    other
        .handle()
        .publish(Target::channel("c"), "after", json!({}))
        .unwrap();
    assert_eq!(expect(&mut back, "after")["seq"], 33);
}

/// `GET /ready`'s status and body, once `status` is `want` (or panics at
/// the deadline). The pause only spaces the asks.
fn wait_ready(hub: &TestHub, want: u16) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = support::get(hub.addr, "/ready");
        if status == want {
            return body;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "/ready did not answer {want}: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn ready_is_503_while_redis_is_stalled_and_200_again_once_it_answers() {
    let redis = Redis::start();
    let hub = hub_on(config(&redis).redis_timeout(Duration::from_secs(1)));
    assert_eq!(wait_ready(&hub, 200), json!({"status": "ready"}));
    redis.pause();
    let stalled = Instant::now();
    let body = wait_ready(&hub, 503);
    assert_eq!(body["status"], "redis_down", "{body}");
    assert!(
        stalled.elapsed() < Duration::from_secs(8),
        "503 only after {:?}",
        stalled.elapsed()
    );
    // Liveness is not readiness: the hub itself is fine.
    assert_eq!(support::get(hub.addr, "/health").0, 200);
    redis.resume();
    assert_eq!(wait_ready(&hub, 200), json!({"status": "ready"}));
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn hubs_on_a_redis_over_tls_serve_one_set_of_clients() {
    let redis = Redis::start_tls();
    assert!(redis.url().starts_with("rediss://"), "{}", redis.url());
    let hubs = hubs_with(&config(&redis).redis_ca(Some(redis.ca_file())), 2);
    let (one, two) = (&hubs[0], &hubs[1]);
    let mut far = two.client("/ws?userId=bob");
    subscribe(&mut far, json!({"channel": "files"}), None);
    one.handle()
        .publish(Target::channel("files"), "file_changed", json!({"n": 1}))
        .unwrap();
    assert_eq!(expect(&mut far, "file_changed")["data"], json!({"n": 1}));
    assert_eq!(wait_ready(one, 200), json!({"status": "ready"}));
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn a_hub_that_does_not_trust_the_redis_certificate_is_not_ready_and_says_why() {
    let redis = Redis::start_tls();
    // Without --redis-ca the system's authorities are asked, and none of
    // them issued this certificate: the hub starts, but is not ready.
    let stranger = support::start(config(&redis).redis_timeout(Duration::from_secs(1)));
    let body = wait_ready(&stranger, 503);
    assert_eq!(body["status"], "redis_down", "{body}");
    // With --redis-required it does not start (its run ends at once), and
    // the error says why.
    let refused = wshub::Hub::with_config(config(&redis).redis_required(true))
        .and_then(|hub| hub.spawn())
        .and_then(|server| server.join())
        .expect_err("a Redis whose certificate is not trusted is not joined");
    let text = refused.to_string();
    assert!(
        text.contains("does not answer") && text.contains("certificate"),
        "{text}"
    );
}
