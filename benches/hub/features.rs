//! wshub with a feature against the same hub without it, under the same
//! fan-out: TLS (`fanout-tls`: every client over wss:// or over ws://, at
//! a steady rate and flat out) and permessage-deflate (`compression`: the
//! seeds' typical messages to subscribers that offer it as browsers do,
//! from a hub with `--compression` and one without).
//!
//! The hub encrypts each delivery for its client (a TLS session each), but
//! compresses each publication once for all its subscribers (no context is
//! kept between messages): TLS costs per delivery, compression per
//! publication, shared by the audience.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{CipherSuite, ClientConfig, RootCertStore};

use crate::WS_PATH;
use crate::client::{Dial, TLS_NAME};
use crate::fanout::{Feed, Pace, Payload, fanout_feed};
use crate::harness::{Bench, Outcome};
use crate::peers::{Launch, Server, wshub_capacity, wshub_has};
use crate::report::{Summary, bytes, group, percent, show_ns};

/// The labels of the two sides of each comparison.
const TLS: &str = "TLS";
const DEFLATE: &str = "deflate";
const PLAIN: &str = "plain";
/// wshub's `--compression-min-size` when not given.
const DEFAULT_MIN_SIZE: usize = 256;

impl Bench {
    /// wshub alone: the same fan-out with every client over TLS, then over
    /// plain TCP; at `rate` publications a second, then flat out.
    pub(crate) fn fanout_tls(&self, subscribers: usize, rate: u64, secs: u64) -> Vec<Summary> {
        let paced_title = format!(
            "fanout-tls: wshub, 1 publisher -> {subscribers} subscribers at {rate} \
             publications/s for {secs} s ({} deliveries/s offered), over TLS and over plain TCP",
            group(subscribers as f64 * rate as f64)
        );
        let max_title = format!(
            "fanout-tls, flat out: wshub, 1 publisher -> {subscribers} subscribers, flat out \
             for {secs} s, over TLS and over plain TCP"
        );
        let Some(launch) = self.wshub_only("fanout-tls") else {
            return Vec::new();
        };
        if !wshub_has("--tls-cert") {
            println!("  !! this wshub has no --tls-cert (built without the tls feature)");
            return Vec::new();
        }
        let pki = match Pki::new() {
            Ok(pki) => pki,
            Err(why) => {
                println!("  !! no certificate for fanout-tls: {why}");
                return Vec::new();
            }
        };
        let tls_launch = with_args(
            launch,
            &[
                "--tls-cert".to_owned(),
                pki.cert.to_string_lossy().into_owned(),
                "--tls-key".to_owned(),
                pki.key.to_string_lossy().into_owned(),
            ],
        );
        let sides = [
            (TLS, &tls_launch, &[WS_PATH][..]),
            (PLAIN, launch, &[WS_PATH][..]),
        ];
        let tls_feed = Feed {
            dial: Dial {
                tls: Some(Arc::clone(&pki.client)),
                deflate: false,
            },
            ..Feed::default()
        };
        let plain_feed = Feed::default();
        let paces = [
            (
                paced_title,
                Pace::Paced {
                    rate: rate.max(1),
                    count: rate.max(1) * secs,
                },
            ),
            (
                max_title,
                Pace::Max {
                    run_for: Duration::from_secs(secs),
                },
            ),
        ];
        paces
            .into_iter()
            .map(|(title, pace)| {
                self.compare_among(
                    &title,
                    &sides,
                    &wshub_capacity(subscribers + 1),
                    |server, label, paths| {
                        let feed = if label == TLS { &tls_feed } else { &plain_feed };
                        fanout_feed(server, subscribers, pace, paths, feed)
                    },
                )
            })
            .collect()
    }

    /// wshub alone: each of the seeds' typical messages fanned out at
    /// `rate` publications a second to subscribers that offer
    /// permessage-deflate, from a hub with `--compression` and one without.
    pub(crate) fn compression(&self, subscribers: usize, rate: u64, secs: u64) -> Summary {
        let min_size = compression_min_size(&self.wshub_args);
        let title = format!(
            "compression: wshub, 1 publisher -> {subscribers} subscribers offering \
             permessage-deflate at {rate} publications/s for {secs} s, for each of {} typical \
             messages, with --compression (messages of {min_size} bytes or more) and without",
            MESSAGES.len()
        );
        let Some(launch) = self.wshub_only("compression") else {
            return Summary::new(&title, self.runs, Vec::new(), Vec::new());
        };
        if !wshub_has("--compression") {
            println!(
                "  !! this wshub has no --compression (built without the compression feature)"
            );
            return Summary::new(&title, self.runs, Vec::new(), Vec::new());
        }
        for message in &MESSAGES {
            let data = Payload::Object(message.data).data(0, 0);
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&data) {
                println!("  !! the {} template is not JSON: {e}", message.name);
                return Summary::new(&title, self.runs, Vec::new(), Vec::new());
            }
        }
        let deflate_launch = with_args(launch, &["--compression".to_owned()]);
        let sides = [
            (DEFLATE, &deflate_launch, &[WS_PATH][..]),
            (PLAIN, launch, &[WS_PATH][..]),
        ];
        let pace = Pace::Paced {
            rate: rate.max(1),
            count: rate.max(1) * secs,
        };
        self.compare_among(
            &title,
            &sides,
            &wshub_capacity(subscribers + 1),
            |server, label, _| {
                let mut out = Outcome::default();
                for message in &MESSAGES {
                    message.fan_out(
                        server,
                        subscribers,
                        pace,
                        label == DEFLATE,
                        min_size,
                        &mut out,
                    );
                }
                out
            },
        )
    }
}

/// A launch of wshub with `extra` after its own arguments.
fn with_args(launch: &Launch, extra: &[String]) -> Launch {
    Launch {
        kind: launch.kind,
        program: launch.program.clone(),
        args: launch.args.iter().chain(extra).cloned().collect(),
    }
}

/// `--compression-min-size` as the `--wshub-arg`s set it, or its default.
fn compression_min_size(args: &[String]) -> usize {
    let mut size = DEFAULT_MIN_SIZE;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--compression-min-size") {
            Some("") => args.next().map(String::as_str),
            Some(rest) => rest.strip_prefix('='),
            None => None,
        };
        if let Some(value) = value.and_then(|v| v.parse().ok()) {
            size = value;
        }
    }
    size
}

/// One of the seeds' typical messages: where and as what it is published,
/// its `data` (the bench's `Kseq` and `Ksent` go first), and the names of
/// its figures in the summary.
struct Message {
    name: &'static str,
    /// Where its shape comes from.
    source: &'static str,
    channel: &'static str,
    event: Option<&'static str>,
    data: &'static str,
    size: &'static str,
    compressed: &'static str,
    wire: &'static str,
    cpu: &'static str,
    complete: &'static str,
}

macro_rules! message {
    ($name:literal, $source:literal, $channel:literal, $event:expr, $data:expr $(,)?) => {
        Message {
            name: $name,
            source: $source,
            channel: $channel,
            event: $event,
            data: $data,
            size: concat!($name, ": message bytes"),
            compressed: concat!($name, ": sent compressed"),
            wire: concat!($name, ": wire bytes/delivery"),
            cpu: concat!($name, ": server CPU/delivery"),
            complete: concat!($name, ": complete & in order"),
        }
    };
}

/// What the seeds' hubs push most: an agent's state and a chat message
/// (seed 001), an AI job's completion (seed 004), a file watcher's event
/// (seed 002), and an assistant's answer of a few KB of markdown with code.
const MESSAGES: [Message; 5] = [
    message!(
        "agent_status",
        "seed 001, `agent_status`",
        "agents",
        Some("agent_status"),
        r#"{"agentName":"CLOUD_ASSISTANT","state":"working","currentTask":"Processing webhook event","progress":45}"#,
    ),
    message!(
        "chat_message",
        "seed 001, `chat_message`",
        "chat:conv-123",
        Some("chat_message"),
        concat!(
            r#"{"conversationId":"conv-123","messageId":"msg-456","content":"I reviewed the "#,
            r#"failing webhook handler. The signature check hashed the body after JSON parsing, "#,
            r#"so every retry was rejected; it now hashes the raw bytes, and a regression test "#,
            r#"covers it.","sender":"ENGINEERING_LEAD_SUPERVISOR","#,
            r#""timestamp":"2025-12-26T13:00:00.000Z"}"#,
        ),
    ),
    message!(
        "ai_complete",
        "seed 004, `ai_complete`",
        "session_123",
        Some("ai_complete"),
        r#"{"sessionId":"session_123","result":{"mode":"generate","contentLength":5000,"chunks":100,"targetFile":"src/Component.tsx"}}"#,
    ),
    message!(
        "file_changed",
        "seed 002, `files` channel",
        "files",
        None,
        r#"{"file":"src/components/editor/Toolbar.tsx","event":"change","timestamp":"2024-12-09T15:30:45.123Z"}"#,
    ),
    message!(
        "assistant_answer",
        "an assistant's answer, markdown with code",
        "ai-response",
        None,
        ASSISTANT_ANSWER,
    ),
];

/// An assistant's answer: 2.5 KB of markdown with two code blocks.
const ASSISTANT_ANSWER: &str = concat!(
    r#"{"id":"msg_01HZX4K7Q2","conversationId":"conv-123","role":"assistant","content":""#,
    r#"The reconnect loop never stops because `useEffect` re-runs on every render: `connect` "#,
    r#"is a new function each time, so the cleanup closes the socket and the effect opens "#,
    r#"another one. Two changes fix it:\n"#,
    r#"\n"#,
    r#"1. Keep the socket in a ref and create it once per `url`.\n"#,
    r#"2. Back off between attempts, and stop retrying after an intentional close.\n"#,
    r#"\n"#,
    r#"```tsx\n"#,
    r#"import { useEffect, useRef, useState } from 'react';\n"#,
    r#"\n"#,
    r#"export function useAgentSocket(url: string, onEvent: (e: AgentEvent) => void) {\n"#,
    r#"  const socket = useRef<WebSocket | null>(null);\n"#,
    r#"  const handler = useRef(onEvent);\n"#,
    r#"  const [connected, setConnected] = useState(false);\n"#,
    r#"  handler.current = onEvent;\n"#,
    r#"\n"#,
    r#"  useEffect(() => {\n"#,
    r#"    let attempt = 0;\n"#,
    r#"    let closed = false;\n"#,
    r#"    let timer: ReturnType<typeof setTimeout> | undefined;\n"#,
    r#"\n"#,
    r#"    const open = () => {\n"#,
    r#"      const ws = new WebSocket(url);\n"#,
    r#"      socket.current = ws;\n"#,
    r#"      ws.onopen = () => {\n"#,
    r#"        attempt = 0;\n"#,
    r#"        setConnected(true);\n"#,
    r#"        ws.send(JSON.stringify({ type: 'subscribe', channel: 'agents' }));\n"#,
    r#"      };\n"#,
    r#"      ws.onmessage = (message) => handler.current(JSON.parse(message.data));\n"#,
    r#"      ws.onclose = () => {\n"#,
    r#"        setConnected(false);\n"#,
    r#"        if (closed) return;\n"#,
    r#"        const delay = Math.min(30_000, 500 * 2 ** attempt++);\n"#,
    r#"        timer = setTimeout(open, delay + Math.random() * 250);\n"#,
    r#"      };\n"#,
    r#"    };\n"#,
    r#"\n"#,
    r#"    open();\n"#,
    r#"    return () => {\n"#,
    r#"      closed = true;\n"#,
    r#"      clearTimeout(timer);\n"#,
    r#"      socket.current?.close(1000, 'unmounted');\n"#,
    r#"    };\n"#,
    r#"  }, [url]);\n"#,
    r#"\n"#,
    r#"  return connected;\n"#,
    r#"}\n"#,
    r#"```\n"#,
    r#"\n"#,
    r#"The handler goes through a ref so a parent that passes an inline callback does not "#,
    r#"reconnect the socket either. I ran `npm test -- useAgentSocket`: the 12 existing "#,
    r#"tests pass, and the new one (`reconnects with backoff after a server restart`) covers "#,
    r#"the loop you saw.\n"#,
    r#"\n"#,
    r#"The new test, in `src/hooks/useAgentSocket.test.tsx`:\n"#,
    r#"\n"#,
    r#"```tsx\n"#,
    r#"it('reconnects with backoff after a server restart', async () => {\n"#,
    r#"  const server = new MockServer('ws://localhost:3000/ws');\n"#,
    r#"  const { result } = renderHook(() => useAgentSocket('ws://localhost:3000/ws', "#,
    r#"vi.fn()));\n"#,
    r#"  await server.connected;\n"#,
    r#"  expect(result.current).toBe(true);\n"#,
    r#"  server.close();\n"#,
    r#"  await waitFor(() => expect(result.current).toBe(false));\n"#,
    r#"  vi.advanceTimersByTime(800);\n"#,
    r#"  await server.connected;\n"#,
    r#"  expect(server.clients()).toHaveLength(1);\n"#,
    r#"});\n"#,
    r#"```\n"#,
    r#"\n"#,
    r#"Want me to apply the same change to `useChatSocket`?"#,
    r#"","finished":true,"createdAt":"2025-12-26T13:00:04.512Z"}"#,
);

impl Message {
    /// Fans this message out on `server` and adds what came of it to
    /// `out`: its rows under its name, its figures under its own names.
    fn fan_out(
        &self,
        server: &mut Server,
        subscribers: usize,
        pace: Pace,
        compressing: bool,
        min_size: usize,
        out: &mut Outcome,
    ) {
        let feed = Feed {
            dial: Dial {
                tls: None,
                deflate: true,
            },
            channel: self.channel,
            event: self.event,
            payload: Payload::Object(self.data),
        };
        let fanned = fanout_feed(server, subscribers, pace, &[WS_PATH], &feed);
        out.row(
            &format!("-- {}", self.name),
            format!("({}, on channel {})", self.source, self.channel),
        );
        for (label, value) in fanned.rows {
            out.row(&format!("   {label}"), value);
        }
        for note in fanned.notes {
            out.note(format!("{}: {note}", self.name));
        }
        let figure = |name: &str| {
            fanned
                .figures
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.value)
        };
        let size = figure("message bytes per delivery");
        let compressed = figure("deliveries compressed");
        if let (true, Some(size), Some(share)) = (compressing, size, compressed)
            && share < 100.0
            && size < min_size as f64
        {
            out.note(format!(
                "{}: its messages (about {size:.0} bytes as delivered) are under \
                 --compression-min-size {min_size}: the hub sends them plain",
                self.name
            ));
        }
        let figures = [
            (self.size, size, bytes as fn(f64) -> String),
            (self.compressed, compressed, percent),
            (self.wire, figure("wire bytes per delivery"), bytes),
            (self.cpu, figure("server CPU per delivery"), show_ns),
            (self.complete, figure("complete & in order"), percent),
        ];
        for (name, value, show) in figures {
            if let Some(value) = value {
                out.figure(name, value, show);
            }
        }
    }
}

/// A certificate authority and a server certificate for `localhost` and
/// 127.0.0.1, made with rcgen at run time and written (as wshub reads
/// them) to a temporary directory, removed when dropped; and a client
/// configuration that trusts that authority.
struct Pki {
    dir: PathBuf,
    /// The server's certificate, then the authority's (a full chain).
    cert: PathBuf,
    key: PathBuf,
    client: Arc<ClientConfig>,
}

impl Pki {
    fn new() -> Result<Pki, String> {
        let made = || -> Result<_, rcgen::Error> {
            let mut ca = CertificateParams::new(Vec::<String>::new())?;
            ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca.distinguished_name
                .push(DnType::CommonName, "wshub bench CA");
            ca.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let ca_key = KeyPair::generate()?;
            let ca_cert = ca.self_signed(&ca_key)?;
            let issuer = Issuer::new(ca, ca_key);
            let mut server =
                CertificateParams::new(vec![TLS_NAME.to_owned(), "127.0.0.1".to_owned()])?;
            server
                .distinguished_name
                .push(DnType::CommonName, "wshub bench");
            server.use_authority_key_identifier_extension = true;
            server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let key = KeyPair::generate()?;
            let cert = server.signed_by(&key, &issuer)?;
            Ok((ca_cert, cert.pem(), key.serialize_pem()))
        };
        let (ca, cert_pem, key_pem) = made().map_err(|e| format!("rcgen: {e}"))?;
        let dir = std::env::temp_dir().join(format!("wshub-bench-tls-{}", std::process::id()));
        let pki = Pki {
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            client: client_config(ca.der().clone())?,
            dir,
        };
        fs::create_dir_all(&pki.dir)
            .and_then(|()| fs::write(&pki.cert, format!("{cert_pem}{}", ca.pem())))
            .and_then(|()| fs::write(&pki.key, key_pem))
            .map_err(|e| format!("write to {}: {e}", pki.dir.display()))?;
        Ok(pki)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A client of TLS 1.3 and 1.2 on rustls's ring provider (the hub's),
/// trusting `ca` only, asking for ALPN `http/1.1`, and preferring
/// AES-128-GCM as browsers do.
fn client_config(
    ca: rustls::pki_types::CertificateDer<'static>,
) -> Result<Arc<ClientConfig>, String> {
    // rustls deprecates ring's provider only for lacking post-quantum key
    // exchange; it is the hub's.
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != CipherSuite::TLS13_AES_128_GCM_SHA256);
    let mut roots = RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|e| format!("trust the bench's CA: {e}"))?;
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
