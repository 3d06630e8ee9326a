//! TLS on the hub's port: wss:// and https:// with a certificate the test
//! makes, TLS 1.2 and 1.3, ALPN; a certificate reloaded (by the library and
//! by SIGHUP to the binary) while clients stay connected; plain HTTP,
//! garbage and silence on the TLS port; limits, slow consumers and every
//! envelope over TLS. Rust clients (rustls, tungstenite over it) run in
//! plain `cargo test`; Python's `websockets`, Node's `ws`, headless
//! Chromium, `curl` and `redis-server` are `#[ignore]`d with the reason and
//! run by `.ci/run`.

#![cfg(feature = "tls")]

mod support;
#[path = "support/tls.rs"]
mod tls;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{DEADLINE, TestHub};
use tls::{Pki, Wss};
use wshub::{Config, Endpoint, Envelope, Target};

/// A hub serving TLS with `pki`'s certificate `server`.
fn tls_hub(config: Config, issued: &tls::Issued) -> TestHub {
    support::start(config.tls(&issued.cert, &issued.key))
}

#[test]
fn wss_clients_and_the_https_api_share_the_tls_port() {
    let pki = Pki::new("basics");
    let issued = pki.issue("server", "wshub test 1", 1);
    let hub = tls_hub(support::config(), &issued);
    let config = pki.client_config();

    let mut client = Wss::connect(hub.addr, &config, "/ws");
    assert_eq!(client.welcome["type"], "connection");
    let stream = &client.ws.get_ref().conn;
    assert_eq!(stream.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        stream.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(client.certificate(), issued.der);
    let reply = client.request(
        json!({"type": "subscribe", "channel": "files"}),
        "subscribe",
    );
    assert_eq!(reply["type"], "subscribed", "{reply}");

    let (status, health) = tls::https_get(hub.addr, &config, "/health");
    assert_eq!((status, health), (200, json!({"status": "ok"})));
    let (status, published) = tls::https_post(
        hub.addr,
        &config,
        "/api/publish",
        r#"{"channel":"files","type":"event","data":{"file":"a.rs"}}"#,
    );
    assert_eq!(status, 200, "{published}");
    assert_eq!(published["data"]["delivered"], 1, "{published}");
    let event = client.expect("event");
    assert_eq!(event["data"]["file"], "a.rs", "{event}");

    // TLS 1.2 too.
    let v12 = pki.client_config_for(&[&rustls::version::TLS12]);
    let mut old = Wss::connect(hub.addr, &v12, "/ws");
    assert_eq!(
        old.ws.get_ref().conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let pong = old.request(json!({"type": "ping"}), "p12");
    assert_eq!(pong["type"], "pong");
    hub.handle()
        .publish(Target::Broadcast, "notification", json!({"n": 1}))
        .unwrap();
    assert_eq!(old.expect("notification")["data"]["n"], 1);
    assert_eq!(client.expect("notification")["data"]["n"], 1);

    // A close ends the session cleanly: the hub's Close, then its
    // close_notify (rustls reads the end of the stream only after one).
    client
        .ws
        .close(Some(tungstenite::protocol::CloseFrame {
            code: support::close_code(1000),
            reason: "done".into(),
        }))
        .unwrap();
    loop {
        match client.ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(err) => panic!("not a clean end: {err}"),
        }
    }
}

#[test]
fn every_envelope_and_endpoint_works_over_tls() {
    let pki = Pki::new("envelopes");
    let issued = pki.issue("server", "wshub test 1", 1);
    let hub = tls_hub(
        support::config().endpoints(vec![
            Endpoint::new("/flat", Envelope::Flat),
            Endpoint::new("/agents", Envelope::Payload),
        ]),
        &issued,
    );
    let config = pki.client_config();
    let mut clients = [
        Wss::connect(hub.addr, &config, "/ws"),
        Wss::connect(hub.addr, &config, "/flat?sessionId=s1"),
        Wss::connect(hub.addr, &config, "/agents"),
        Wss::connect(hub.addr, &config, "/ws?envelope=payload"),
    ];
    assert_eq!(clients[1].welcome["status"], "connected");
    assert_eq!(clients[2].welcome["type"], "connection:established");
    for (i, client) in clients.iter_mut().enumerate() {
        let reply = client.request(
            json!({"type": "subscribe", "sessionId": "s1"}),
            &format!("sub-{i}"),
        );
        assert_eq!(reply["type"], "subscribed", "{reply}");
    }
    let data = json!({"progress": {"chunksReceived": 3}, "task": "t1"});
    let reached = hub
        .handle()
        .publish(Target::session("s1"), "ai_progress", &data)
        .unwrap();
    assert_eq!(reached, 4);
    let standard = clients[0].expect_eventually("ai_progress");
    assert_eq!(standard["data"], data, "{standard}");
    let flat = clients[1].expect_eventually("ai_progress");
    assert_eq!(flat["progress"]["chunksReceived"], 3, "{flat}");
    for payload in &mut clients[2..] {
        let message = payload.expect_eventually("ai_progress");
        assert_eq!(message["payload"], data, "{message}");
    }
}

#[test]
fn big_and_many_messages_cross_tls_whole_and_in_order_through_full_sockets() {
    let pki = Pki::new("volume");
    let issued = pki.issue("server", "wshub test 1", 1);
    let hub = tls_hub(
        support::config()
            .allow_client_publish(true)
            .max_queue_bytes(64 << 20),
        &issued,
    );
    let config = pki.client_config();
    // More subscribers than the router writes itself: the writers seal.
    let mut clients: Vec<Wss> = (0..24)
        .map(|_| Wss::connect(hub.addr, &config, "/ws"))
        .collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let reply = client.request(
            json!({"type": "subscribe", "channel": "bulk"}),
            &format!("s{i}"),
        );
        assert_eq!(reply["type"], "subscribed", "{reply}");
    }
    // Nobody reads while these are published: sockets fill, the rest waits
    // sealed or queued. Sizes cross record and turn boundaries; one is far
    // larger than a turn (1 MiB).
    let sizes: Vec<usize> = (0..120)
        .map(|i| match i {
            60 => 1 << 20,
            i if i % 7 == 0 => 70_000,
            i => 1 + (i * 997) % 20_000,
        })
        .collect();
    for (i, size) in sizes.iter().enumerate() {
        let fill = char::from(b'a' + (i % 26) as u8).to_string().repeat(*size);
        hub.handle()
            .publish(
                Target::channel("bulk"),
                "chunk",
                json!({"i": i, "fill": fill}),
            )
            .unwrap();
    }
    for client in &mut clients {
        for (i, size) in sizes.iter().enumerate() {
            let chunk = client.expect("chunk");
            assert_eq!(chunk["data"]["i"], i);
            let fill = chunk["data"]["fill"].as_str().unwrap();
            assert_eq!(fill.len(), *size, "chunk {i}");
            let byte = b'a' + (i % 26) as u8;
            assert!(fill.bytes().all(|b| b == byte), "chunk {i} is intact");
        }
    }
    // And the other way: a client's big message, read through its session.
    let text = "x".repeat(60_000);
    let reply = clients[0].request(
        json!({"type": "publish", "channel": "bulk", "event": "big", "data": {"text": text}}),
        "big",
    );
    assert_eq!(reply["type"], "published", "{reply}");
    let big = clients[1].expect_eventually("big");
    assert_eq!(big["data"]["text"].as_str().map(str::len), Some(60_000));
}

#[test]
fn plain_http_on_the_tls_port_is_told_to_use_tls() {
    let pki = Pki::new("plain");
    let issued = pki.issue("server", "wshub test 1", 1);
    let hub = tls_hub(support::config(), &issued);
    let (status, health) = support::get(hub.addr, "/health");
    assert_eq!(status, 400);
    assert_eq!(health["code"], "bad_request", "{health}");
    assert!(
        health["error"]
            .as_str()
            .unwrap()
            .contains("https:// or wss://"),
        "{health}"
    );
    let err = support::Client::open(hub.addr, "/ws").expect_err("no plain WebSocket");
    assert!(err.to_string().contains("400"), "{err}");
    // The hub is none the worse.
    let mut client = Wss::connect(hub.addr, &pki.client_config(), "/ws");
    assert_eq!(client.request(json!({"type": "ping"}), "p")["type"], "pong");
}

/// Reads until the hub closes the connection; panics past the deadline.
fn read_to_close(stream: &mut TcpStream, within: Duration) {
    let start = Instant::now();
    stream.set_read_timeout(Some(within)).unwrap();
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(err) => panic!("not closed after {:?}: {err}", start.elapsed()),
        }
    }
}

#[test]
fn garbage_half_handshakes_and_silence_on_the_tls_port_cost_nothing() {
    let pki = Pki::new("garbage");
    let issued = pki.issue("server", "wshub test 1", 1);
    let hub = tls_hub(
        support::config().handshake_timeout(Duration::from_secs(1)),
        &issued,
    );
    let config = pki.client_config();
    let idle = hub.handle().stats().unwrap().threads;

    // A TLS record header, then garbage: rustls refuses it at once.
    let mut bad = TcpStream::connect(hub.addr).unwrap();
    let mut record = vec![0x16, 0x03, 0x01, 0x01, 0x00];
    record.extend((0..256u32).map(|i| (i * 37 % 251) as u8));
    bad.write_all(&record).unwrap();
    read_to_close(&mut bad, DEADLINE);

    // Bytes that are neither TLS nor HTTP: closed at once.
    let mut binary = TcpStream::connect(hub.addr).unwrap();
    binary.write_all(&[0u8, 1, 2, 3, 0xff, 0xfe]).unwrap();
    read_to_close(&mut binary, DEADLINE);

    // Silence, and a handshake left half done: closed by the deadline.
    let mut silent = TcpStream::connect(hub.addr).unwrap();
    let mut half = TcpStream::connect(hub.addr).unwrap();
    let mut hello = rustls::ClientConnection::new(
        config.clone(),
        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    hello.write_tls(&mut half).unwrap();
    read_to_close(&mut silent, DEADLINE);
    read_to_close(&mut half, DEADLINE);

    // Every connection thread is gone, and clients are served.
    hub.wait_stats("the connection threads to end", |s| s.threads == idle);
    let mut client = Wss::connect(hub.addr, &config, "/ws");
    assert_eq!(client.request(json!({"type": "ping"}), "p")["type"], "pong");
    let stats = hub.handle().stats().unwrap();
    assert_eq!(stats.active_connections, 1);
}

#[test]
fn a_reload_serves_new_connections_the_new_certificate_and_keeps_the_old_ones() {
    let pki = Pki::new("reload");
    let first = pki.issue("server", "wshub test 1", 1);
    let hub = tls_hub(support::config(), &first);
    // Each client has its own configuration, and so its own session
    // cache: a client that resumes a session keeps the certificate that
    // session was made with.
    let mut old = Wss::connect(hub.addr, &pki.client_config(), "/ws");
    assert_eq!(old.certificate(), first.der);
    old.request(json!({"type": "subscribe", "channel": "c"}), "s");

    // Renewed in place, as certbot does, then reloaded.
    let second = pki.issue("server", "wshub test 2", 2);
    assert_ne!(second.der, first.der);
    hub.handle()
        .reload_tls()
        .expect("the new certificate is good");
    let mut new = Wss::connect(hub.addr, &pki.client_config(), "/ws");
    assert_eq!(
        new.certificate(),
        second.der,
        "a new connection gets the new one"
    );
    let (_, _, _, cert) = tls::https(
        hub.addr,
        &pki.client_config(),
        b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(cert, second.der);
    // The old connection goes on, on its session.
    assert_eq!(old.request(json!({"type": "ping"}), "p")["type"], "pong");
    hub.handle()
        .publish(Target::channel("c"), "after", json!({}))
        .unwrap();
    old.expect("after");

    // A bad renewal is refused, and the good one stays.
    std::fs::write(&second.cert, "not a certificate").unwrap();
    match hub.handle().reload_tls() {
        Err(wshub::Error::Tls(wshub::TlsError::NoCertificate { path })) => {
            assert_eq!(path, second.cert);
        }
        other => panic!("{other:?}"),
    }
    let other_key = pki.issue("other", "wshub test 3", 3);
    tls::write_atomically(
        &second.cert,
        &std::fs::read_to_string(&other_key.cert).unwrap(),
    );
    assert!(matches!(
        hub.handle().reload_tls(),
        Err(wshub::Error::Tls(wshub::TlsError::KeyMismatch { .. }))
    ));
    let mut third = Wss::connect(hub.addr, &pki.client_config(), "/ws");
    assert_eq!(third.certificate(), second.der, "still the last good one");
    assert_eq!(third.request(json!({"type": "ping"}), "p3")["type"], "pong");
    assert_eq!(old.request(json!({"type": "ping"}), "p4")["type"], "pong");
    assert_eq!(new.request(json!({"type": "ping"}), "p5")["type"], "pong");

    // A hub without TLS has nothing to reload.
    let plain = support::start_default();
    assert!(matches!(
        plain.handle().reload_tls(),
        Err(wshub::Error::Tls(wshub::TlsError::NotConfigured))
    ));
}

#[test]
fn certificate_and_key_files_that_cannot_serve_are_refused_at_start_by_name() {
    let pki = Pki::new("files");
    let good = pki.issue("good", "wshub test 1", 1);
    let other = pki.issue("other", "wshub test 2", 2);
    let start = |cert: &std::path::Path, key: &std::path::Path| {
        wshub::Hub::with_config(support::config().tls(cert, key)).map(|_| ())
    };
    let missing = pki.dir.join("missing.pem");
    match start(&missing, &good.key) {
        Err(wshub::Error::Tls(wshub::TlsError::Read { path, .. })) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
    let empty = pki.dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    assert!(matches!(
        start(&empty, &good.key),
        Err(wshub::Error::Tls(wshub::TlsError::NoCertificate { .. }))
    ));
    // A certificate file is no key file.
    assert!(matches!(
        start(&good.cert, &good.cert),
        Err(wshub::Error::Tls(wshub::TlsError::NoKey { .. }))
    ));
    assert!(matches!(
        start(&good.cert, &other.key),
        Err(wshub::Error::Tls(wshub::TlsError::KeyMismatch { .. }))
    ));
    let broken = pki.dir.join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = start(&broken, &good.key).unwrap_err();
    assert!(
        matches!(err, wshub::Error::Tls(wshub::TlsError::Invalid { .. })),
        "{err}"
    );
    // Half a pair is a configuration error.
    let half = support::config().tls_cert(Some(good.cert.clone()));
    assert!(matches!(
        wshub::Hub::with_config(half),
        Err(wshub::Error::Config {
            field: "tls_key",
            ..
        })
    ));
    // Other curves serve too (RSA and SEC1 keys: see the openssl test).
    for (name, alg) in [
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("ed25519", &rcgen::PKCS_ED25519),
    ] {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let issued = pki.issue_with(name, name, 9, key);
        let hub = tls_hub(support::config(), &issued);
        let client = Wss::connect(hub.addr, &pki.client_config(), "/ws");
        assert_eq!(client.certificate(), issued.der, "{name}");
    }
}

#[test]
fn a_key_update_keeps_the_session_going_both_ways() {
    let pki = Pki::new("keyupdate");
    let issued = pki.issue("server", "wshub test 1", 1);
    let hub = tls_hub(support::config(), &issued);
    let mut client = Wss::connect(hub.addr, &pki.client_config(), "/ws");
    assert_eq!(
        client.request(json!({"type": "ping"}), "p1")["type"],
        "pong"
    );
    // The client renews its keys and asks the hub to renew its own (TLS
    // 1.3 KeyUpdate, update_requested): the hub's reader takes it, and its
    // writer sends the hub's KeyUpdate before the next message, sealed
    // with the new keys.
    for round in 0..3 {
        client.ws.get_mut().conn.refresh_traffic_keys().unwrap();
        let pong = client.request(json!({"type": "ping"}), &format!("k{round}"));
        assert_eq!(pong["type"], "pong");
        hub.handle()
            .publish(Target::Broadcast, "after", json!({"round": round}))
            .unwrap();
        assert_eq!(client.expect("after")["data"]["round"], round);
    }
}

#[test]
fn a_client_that_stops_reading_is_a_slow_consumer_and_its_stream_stays_well_formed() {
    let pki = Pki::new("slow");
    let issued = pki.issue("server", "wshub test 1", 1);
    let hub = tls_hub(
        support::config().max_queue(64).max_queue_bytes(1 << 20),
        &issued,
    );
    let config = pki.client_config();
    let mut slow = Wss::connect(hub.addr, &config, "/ws");
    let mut fast = Wss::connect(hub.addr, &config, "/ws");
    for (i, client) in [&mut slow, &mut fast].into_iter().enumerate() {
        let reply = client.request(
            json!({"type": "subscribe", "channel": "flood"}),
            &format!("s{i}"),
        );
        assert_eq!(reply["type"], "subscribed");
    }
    let fill = "z".repeat(4000);
    let mut published = 0;
    // Until the hub gives up on the slow one; the fast one keeps up.
    while hub.handle().stats().unwrap().slow_consumers == 0 {
        assert!(published < 20_000, "never a slow consumer");
        for _ in 0..16 {
            hub.handle()
                .publish(
                    Target::channel("flood"),
                    "flood",
                    json!({"n": published, "fill": fill}),
                )
                .unwrap();
            published += 1;
        }
        for _ in 0..16 {
            fast.expect("flood");
        }
    }
    // Every record of what it does get decrypts; then the Close comes.
    let (code, reason) = slow.expect_close();
    assert_eq!(code, 1013, "{reason}");
    assert_eq!(fast.request(json!({"type": "ping"}), "p")["type"], "pong");
    assert_eq!(hub.handle().stats().unwrap().active_connections, 1);
}

#[test]
fn handshake_and_address_limits_hold_over_tls() {
    let pki = Pki::new("limits");
    let issued = pki.issue("server", "wshub test 1", 1);
    let hub = tls_hub(
        support::config()
            .trusted_proxies(Vec::new())
            .max_handshakes_per_ip(1)
            .max_connections_per_ip(1),
        &issued,
    );
    let config = pki.client_config();
    // A socket that says nothing holds the address's one handshake: the
    // next is refused at once with a TLS alert (a 503 would need the
    // handshake there is no room for), never left hanging.
    let silent = TcpStream::connect(hub.addr).unwrap();
    let mut refused = false;
    let start = Instant::now();
    while !refused {
        assert!(start.elapsed() < DEADLINE, "never refused");
        refused = tls::connect(hub.addr, &config).is_err();
    }
    drop(silent);
    // Its slot is back once its thread saw it go.
    let start = Instant::now();
    let mut first = loop {
        match Wss::open(hub.addr, &config, "/ws") {
            Ok(ws) => break ws,
            Err(err) => assert!(start.elapsed() < DEADLINE, "{err}"),
        }
    };
    let welcome = tls::read_json(&mut first, DEADLINE).unwrap();
    assert_eq!(welcome["type"], "connection", "{welcome}");
    // One client per address: the second is told so, through its session.
    let ws = Wss::open(hub.addr, &config, "/ws").unwrap();
    let mut second = Wss {
        ws,
        welcome: json!(null),
    };
    let (code, reason) = second.expect_close();
    assert_eq!(code, 1013, "{reason}");
    assert_eq!(hub.handle().stats().unwrap().rejected_connections, 1);
}

#[test]
fn the_rust_client_speaks_wss_trusting_a_ca_file_and_refuses_an_untrusted_hub() {
    use wshub::client::{Client, Error, Options, Update};

    let pki = Pki::new("client");
    let issued = pki.issue("server", "wshub test 1", 1);
    let hub = tls_hub(support::config(), &issued);
    let url = format!("wss://localhost:{}/ws", hub.addr.port());

    let mut client = Client::connect(&url, Options::new().ca_file(pki.ca_file())).expect("wss");
    client
        .subscribe(wshub::Topic::channel("news"))
        .expect("subscribe");
    hub.handle()
        .publish(Target::channel("news"), "said", json!({"n": 1}))
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no message over wss within {DEADLINE:?}");
        if let Some(Update::Message(message)) = client.next_update(left).expect("next update") {
            assert_eq!(message.raw["data"]["n"], 1, "{}", message.raw);
            break;
        }
    }
    client.close();

    // The system's authorities do not know the test's: a typed TLS error.
    match Client::connect(&url, Options::new().reconnect(false)) {
        Err(Error::Tls { reason, .. }) => assert!(reason.contains("certificate"), "{reason}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    // Nor does a file holding no authority load.
    let empty = pki.dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    assert!(matches!(
        Client::connect(&url, Options::new().ca_file(&empty)),
        Err(Error::Certificates { .. })
    ));
}

/// The `wshub` binary, its log lines on a channel.
struct Binary {
    child: std::process::Child,
    lines: crossbeam_channel::Receiver<String>,
    seen: Vec<String>,
}

impl Binary {
    fn start(args: &[&str]) -> Binary {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wshub"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        Binary {
            child,
            lines,
            seen: Vec::new(),
        }
    }

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

    /// Where the hub listens, from its start line.
    fn addr(&mut self) -> std::net::SocketAddr {
        let line = self.wait_line("listening on wss://");
        let url = line.split("wss://").nth(1).unwrap();
        url.split('/').next().unwrap().parse().unwrap()
    }

    fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + DEADLINE;
        while let Ok(line) = self.lines.recv_deadline(deadline) {
            self.seen.push(line);
        }
        self.child.wait().unwrap().code().expect("exited")
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sighup_makes_the_binary_serve_a_renewed_certificate_while_clients_stay() {
    let pki = Pki::new("sighup");
    let first = pki.issue("server", "wshub test 1", 1);
    let (cert, key) = (first.cert.to_str().unwrap(), first.key.to_str().unwrap());
    let mut hub = Binary::start(&["--port", "0", "--tls-cert", cert, "--tls-key", key]);
    let addr = hub.addr();
    let mut old = Wss::connect(addr, &pki.client_config(), "/ws");
    assert_eq!(old.certificate(), first.der);
    let (status, _) = tls::https_get(addr, &pki.client_config(), "/health");
    assert_eq!(status, 200);

    let second = pki.issue("server", "wshub test 2", 2);
    hub.signal("HUP");
    hub.wait_line("TLS certificate reloaded");
    let new = Wss::connect(addr, &pki.client_config(), "/ws");
    assert_eq!(new.certificate(), second.der);
    assert_eq!(old.request(json!({"type": "ping"}), "p1")["type"], "pong");

    // A broken renewal: logged, and the hub goes on with the good one.
    std::fs::write(&second.key, "garbage").unwrap();
    hub.signal("HUP");
    hub.wait_line("TLS certificate not reloaded");
    let third = Wss::connect(addr, &pki.client_config(), "/ws");
    assert_eq!(third.certificate(), second.der);
    assert_eq!(old.request(json!({"type": "ping"}), "p2")["type"], "pong");

    hub.signal("TERM");
    assert_eq!(hub.wait_exit(), 0, "{:#?}", hub.seen);
}

#[test]
fn the_binary_refuses_certificate_files_it_cannot_use_with_exit_code_2() {
    let pki = Pki::new("binary-files");
    let good = pki.issue("server", "wshub test 1", 1);
    let missing = pki.dir.join("missing.pem");
    let mut hub = Binary::start(&[
        "--port",
        "0",
        "--tls-cert",
        missing.to_str().unwrap(),
        "--tls-key",
        good.key.to_str().unwrap(),
    ]);
    assert_eq!(hub.wait_exit(), 2);
    assert!(
        hub.seen.iter().any(|l| l.contains("missing.pem")),
        "{:#?}",
        hub.seen
    );
    let mut half = Binary::start(&["--port", "0", "--tls-cert", good.cert.to_str().unwrap()]);
    assert_eq!(half.wait_exit(), 2);
    assert!(
        half.seen.iter().any(|l| l.contains("tls_key")),
        "{:#?}",
        half.seen
    );
}

// Real clients of other makers over wss:// and https://: Node's `ws`,
// Python's `websockets`, headless Chromium and `curl`, each trusting the
// test's authority the way its users do (a CA file, or Chromium a pinned
// key). Each client subscribes to `news`, publishes a 50 kB message there
// (several TLS records) and reports what came back on `results`, where a
// Rust client over TLS listens.

/// The scenario every JavaScript client runs, as a function of a connected
/// WebSocket and the client's name; the caller adds how it ends.
const SCENARIO_JS: &str = r#"
function scenario(ws, name, extra, finished) {
  const big = "é✓".repeat(10000);
  ws.onmessage = (event) => {
    const m = JSON.parse(event.data);
    if (m.type === "connection") {
      ws.send(JSON.stringify({type: "subscribe", channel: "news", correlationId: "s"}));
    } else if (m.type === "subscribed") {
      ws.send(JSON.stringify({type: "publish", channel: "news", event: "said", data: {text: big}}));
    } else if (m.type === "said") {
      const data = Object.assign({client: name, ok: m.data.text === big, length: m.data.text.length}, extra(ws));
      ws.send(JSON.stringify({type: "publish", channel: "results", event: "result", data}));
      ws.send(JSON.stringify({type: "ping", correlationId: "done"}));
    } else if (m.type === "pong") {
      ws.close(1000, "done");
    }
  };
  ws.onclose = (event) => finished(event.code);
  ws.onerror = (event) => console.error("websocket error", event.message || event);
}
"#;

/// A hub serving TLS with clients allowed to publish, a Rust client over
/// TLS subscribed to `results`, and the authority's files.
fn results_hub(name: &str) -> (Pki, tls::Issued, TestHub, Wss) {
    let pki = Pki::new(name);
    let issued = pki.issue("server", "wshub test 1", 1);
    let hub = tls_hub(support::config().allow_client_publish(true), &issued);
    let mut results = Wss::connect(hub.addr, &pki.client_config(), "/ws");
    let reply = results.request(
        json!({"type": "subscribe", "channel": "results"}),
        "results",
    );
    assert_eq!(reply["type"], "subscribed", "{reply}");
    (pki, issued, hub, results)
}

/// Runs `command` to its end within a minute; its exit status and output.
fn run_within(mut command: std::process::Command, what: &str) -> (bool, String) {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{what} starts: {err}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            return (status.success(), text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{what} did not finish within a minute: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        // Polls a child process's end (no message to wait on), each
        // pause bounded by the minute above.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `tests/seeds/node_modules`, where `.ci/run` installs `ws`.
fn node_modules() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seeds/node_modules");
    assert!(
        dir.join("ws/package.json").exists(),
        "{} is missing: cd tests/seeds && npm install",
        dir.join("ws").display()
    );
    dir
}

#[test]
#[ignore = "needs node and the npm ws package: .ci/run installs them and runs cargo test --test tls -- --ignored"]
fn node_ws_speaks_wss_trusting_the_hubs_authority() {
    let (pki, _issued, hub, mut results) = results_hub("node");
    let script = format!(
        r#"{SCENARIO_JS}
const fs = require("fs");
const WebSocket = require("ws");
const ws = new WebSocket("wss://127.0.0.1:{port}/ws", {{ca: fs.readFileSync({ca:?})}});
scenario(ws, "node ws", (ws) => ({{tls: ws._socket.getProtocol(), alpn: ws._socket.alpnProtocol}}),
  (code) => process.exit(code === 1000 ? 0 : 1));
"#,
        port = hub.addr.port(),
        ca = pki.ca_file().display().to_string(),
    );
    let path = pki.dir.join("client.js");
    std::fs::write(&path, script).unwrap();
    let mut node = std::process::Command::new("node");
    node.arg(&path).env("NODE_PATH", node_modules());
    let (ok, output) = run_within(node, "node");
    assert!(ok, "node failed: {output}");
    let result = results.expect("result")["data"].clone();
    assert_eq!(result["client"], "node ws", "{result}");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["length"], 20_000, "{result}");
    assert_eq!(result["tls"], "TLSv1.3", "{result}");

    // Without the authority, node refuses the hub's certificate.
    let untrusting = format!(
        r#"const WebSocket = require("ws");
const ws = new WebSocket("wss://localhost:{}/ws");
ws.on("open", () => process.exit(3));
ws.on("error", (err) => {{ console.log(err.code); process.exit(0); }});
"#,
        hub.addr.port()
    );
    let path = pki.dir.join("untrusting.js");
    std::fs::write(&path, untrusting).unwrap();
    let mut node = std::process::Command::new("node");
    node.arg(&path).env("NODE_PATH", node_modules());
    let (ok, output) = run_within(node, "node");
    assert!(ok, "an untrusted certificate was accepted: {output}");
    assert!(
        output.contains("UNABLE_TO_VERIFY_LEAF_SIGNATURE") || output.contains("CERT"),
        "{output}"
    );
}

#[test]
#[ignore = "needs python3 and websockets: .ci/run installs them and runs cargo test --test tls -- --ignored"]
fn python_websockets_speaks_wss_trusting_the_hubs_authority() {
    let (pki, _issued, hub, mut results) = results_hub("python");
    let script = r#"
import json, ssl, sys
from websockets.sync.client import connect

port, ca = sys.argv[1], sys.argv[2]
context = ssl.create_default_context(cafile=ca)
big = "é✓" * 10000
# 127.0.0.1, which the certificate names too: "localhost" may resolve to
# ::1 first, where another program on this machine may be listening.
with connect(f"wss://127.0.0.1:{port}/ws", ssl=context, max_size=2**20) as ws:
    for raw in ws:
        m = json.loads(raw)
        if m["type"] == "connection":
            ws.send(json.dumps({"type": "subscribe", "channel": "news", "correlationId": "s"}))
        elif m["type"] == "subscribed":
            ws.send(json.dumps({"type": "publish", "channel": "news", "event": "said", "data": {"text": big}}, ensure_ascii=False))
        elif m["type"] == "said":
            data = {"client": "python websockets", "ok": m["data"]["text"] == big,
                    "length": len(m["data"]["text"]), "tls": ws.socket.version(),
                    "alpn": ws.socket.selected_alpn_protocol()}
            ws.send(json.dumps({"type": "publish", "channel": "results", "event": "result", "data": data}))
            break
"#;
    let path = pki.dir.join("client.py");
    std::fs::write(&path, script).unwrap();
    let mut python = std::process::Command::new("python3");
    python
        .arg(&path)
        .arg(hub.addr.port().to_string())
        .arg(pki.ca_file());
    let (ok, output) = run_within(python, "python3");
    assert!(ok, "python failed: {output}");
    let result = results.expect("result")["data"].clone();
    assert_eq!(result["client"], "python websockets", "{result}");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["length"], 20_000, "{result}");
    assert_eq!(result["tls"], "TLSv1.3", "{result}");
}

/// Answers every request on `pages` with `page` (HTML), until the test ends.
fn serve_page(pages: &std::net::TcpListener, page: &str) {
    for stream in pages.incoming() {
        let Ok(mut stream) = stream else { continue };
        stream.set_read_timeout(Some(DEADLINE)).ok();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
    }
}

#[test]
#[ignore = "needs Chromium: .ci/run installs it and runs cargo test --test tls -- --ignored"]
fn headless_chromium_speaks_wss_to_a_pinned_certificate() {
    use base64::Engine as _;

    let (pki, issued, hub, mut results) = results_hub("chromium");
    let page = format!(
        r#"<!doctype html><script>{SCENARIO_JS}
scenario(new WebSocket("wss://localhost:{}/ws"), "chromium", () => ({{}}), () => {{}});
</script>"#,
        hub.addr.port()
    );
    // Served over http:// (Chromium opens no WebSocket from a file:// page).
    let pages = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let page_url = format!("http://{}/", pages.local_addr().unwrap());
    std::thread::spawn(move || serve_page(&pages, &page));
    // Chromium trusts the hub's certificate by its public key, for this
    // run only (no authority is installed anywhere).
    let pin = base64::engine::general_purpose::STANDARD
        .encode(ring::digest::digest(&ring::digest::SHA256, &issued.spki));
    let profile = pki.dir.join("chromium-profile");
    let log_path = pki.dir.join("chromium.log");
    let mut browser = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
        ])
        .arg(format!("--ignore-certificate-errors-spki-list={pin}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(page_url)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("chromium starts (install it: apt-get install chromium)");
    let result = tls::read_json(&mut results.ws, Duration::from_secs(60));
    let _ = browser.kill();
    let _ = browser.wait();
    let result = result.unwrap_or_else(|err| {
        let console: Vec<String> = std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("CONSOLE") || l.contains("SSL") || l.contains("cert"))
            .map(str::to_owned)
            .collect();
        panic!("no result from the page: {err}; log: {console:#?}")
    });
    assert_eq!(result["type"], "result", "{result}");
    let data = &result["data"];
    assert_eq!(data["client"], "chromium", "{result}");
    assert_eq!(data["ok"], true, "{result}");
    assert_eq!(data["length"], 20_000, "{result}");
}

#[test]
#[ignore = "needs curl: .ci/run installs it and runs cargo test --test tls -- --ignored"]
fn curl_reaches_health_and_publish_over_https_with_the_authority() {
    let (pki, _issued, hub, mut results) = results_hub("curl");
    let url = |path: &str| format!("https://localhost:{}{path}", hub.addr.port());
    let curl = |args: &[&str]| {
        let mut command = std::process::Command::new("curl");
        command
            .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
            .args(args);
        run_within(command, "curl")
    };
    let ca = pki.ca_file().display().to_string();

    let (ok, output) = curl(&["--cacert", &ca, &url("/health")]);
    assert!(ok, "{output}");
    assert_eq!(output, "{\"status\":\"ok\"}\n200");

    let (ok, output) = curl(&[
        "--cacert",
        &ca,
        "-H",
        "Content-Type: application/json",
        "--data",
        r#"{"channel":"results","type":"result","data":{"via":"curl"}}"#,
        &url("/api/publish"),
    ]);
    assert!(ok, "{output}");
    assert!(output.ends_with("\n200"), "{output}");
    assert!(output.contains(r#""delivered":1"#), "{output}");
    assert_eq!(results.expect("result")["data"]["via"], "curl");

    // Without the authority curl refuses the certificate (exit 60), and
    // plain http:// on the TLS port is answered 400, saying why.
    let (ok, output) = curl(&[&url("/health")]);
    assert!(!ok, "{output}");
    let plain = format!("http://localhost:{}/health", hub.addr.port());
    let (ok, output) = curl(&[&plain]);
    assert!(ok, "{output}");
    assert!(output.ends_with("\n400"), "{output}");
    assert!(output.contains("TLS only"), "{output}");
}
