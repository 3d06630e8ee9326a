//! The event structs as TypeScript sees them, for the JavaScript package's
//! types to be checked against: `clients/js/test/types/rust-events.ts` is
//! written from the JSON these structs serialise to (each with every
//! optional field set, and without them), the variants of their enums, and
//! the hub's error codes. The test fails when that file is not current;
//! `WSHUB_BLESS=1 cargo test --lib typescript` rewrites it. `tsc --strict`
//! then checks that `clients/js/events.d.ts` declares the same types
//! (tests/npm_package.rs).
//!
//! Test-only: nothing here is built into the hub.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;
use serde_json::{Value, json};

use super::*;
use crate::protocol::ErrorCode;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/clients/js/test/types/rust-events.ts"
);

/// A TypeScript type, as far as the events need.
enum Ts {
    String,
    Number,
    Boolean,
    Unknown,
    /// A string enum: its wire names.
    Literals(Vec<String>),
    Array(Box<Ts>),
    /// Fields in order: name, optional, type.
    Object(Vec<(String, bool, Ts)>),
}

impl Ts {
    fn render(&self, out: &mut String, indent: usize) {
        match self {
            Ts::String => out.push_str("string"),
            Ts::Number => out.push_str("number"),
            Ts::Boolean => out.push_str("boolean"),
            Ts::Unknown => out.push_str("unknown"),
            Ts::Literals(names) => {
                let names: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
                out.push_str(&names.join(" | "));
            }
            Ts::Array(item) => {
                out.push_str("Array<");
                item.render(out, indent);
                out.push('>');
            }
            Ts::Object(fields) => {
                out.push_str("{\n");
                for (name, optional, ty) in fields {
                    let _ = write!(
                        out,
                        "{:indent$}{name}{}: ",
                        "",
                        if *optional { "?" } else { "" },
                        indent = indent + 2
                    );
                    ty.render(out, indent + 2);
                    out.push_str(";\n");
                }
                let _ = write!(out, "{:indent$}}}", "", indent = indent);
            }
        }
    }
}

/// One struct: its JSON with every optional field set (`full`) and without
/// them (`bare`), the paths of its enum fields with their variants, and the
/// paths of free JSON values (`a.b`, `list[]` for an array's items).
struct Sample {
    full: Value,
    bare: Value,
    enums: Vec<(&'static str, Vec<String>)>,
    free: Vec<&'static str>,
}

fn sample<T: Serialize>(full: &T, bare: &T) -> Sample {
    Sample {
        full: serde_json::to_value(full).unwrap(),
        bare: serde_json::to_value(bare).unwrap(),
        enums: Vec::new(),
        free: Vec::new(),
    }
}

impl Sample {
    fn one<T: Serialize>(value: &T) -> Sample {
        sample(value, value)
    }

    fn with_enum<T: Serialize>(mut self, path: &'static str, all: &[T]) -> Sample {
        self.enums.push((path, wire_names(all)));
        self
    }

    fn with_free(mut self, path: &'static str) -> Sample {
        self.free.push(path);
        self
    }

    fn ts(&self) -> Ts {
        self.describe(&self.full, Some(&self.bare), "")
    }

    fn describe(&self, full: &Value, bare: Option<&Value>, path: &str) -> Ts {
        if let Some((_, names)) = self.enums.iter().find(|(p, _)| *p == path) {
            return Ts::Literals(names.clone());
        }
        if self.free.contains(&path) {
            return Ts::Unknown;
        }
        match full {
            Value::String(_) => Ts::String,
            Value::Number(_) => Ts::Number,
            Value::Bool(_) => Ts::Boolean,
            Value::Array(items) => {
                let item = items.first().expect("a sample array has an item");
                Ts::Array(Box::new(self.describe(item, None, &format!("{path}[]"))))
            }
            Value::Object(fields) => Ts::Object(
                fields
                    .iter()
                    .map(|(name, value)| {
                        let inner = bare.and_then(|b| b.get(name));
                        let optional = bare.is_some() && inner.is_none();
                        let path = if path.is_empty() {
                            name.clone()
                        } else {
                            format!("{path}.{name}")
                        };
                        (name.clone(), optional, self.describe(value, inner, &path))
                    })
                    .collect(),
            ),
            Value::Null => panic!("a null at {path}: set it in the sample"),
        }
    }
}

fn wire_names<T: Serialize>(all: &[T]) -> Vec<String> {
    all.iter()
        .map(|v| match serde_json::to_value(v).unwrap() {
            Value::String(name) => name,
            other => panic!("not a string enum: {other}"),
        })
        .collect()
}

// Every variant, each list checked by a match: a new variant does not compile
// until it is listed here.

fn agent_states() -> Vec<AgentState> {
    let all = vec![AgentState::Idle, AgentState::Working, AgentState::Stopped];
    for s in &all {
        match s {
            AgentState::Idle | AgentState::Working | AgentState::Stopped => {}
        }
    }
    all
}

fn notification_levels() -> Vec<NotificationLevel> {
    use NotificationLevel::*;
    let all = vec![Info, Success, Warning, Error];
    for l in &all {
        match l {
            Info | Success | Warning | Error => {}
        }
    }
    all
}

fn session_statuses() -> Vec<SessionStatus> {
    use SessionStatus::*;
    let all = vec![Idle, Thinking, Streaming, Error];
    for s in &all {
        match s {
            Idle | Thinking | Streaming | Error => {}
        }
    }
    all
}

fn severities() -> Vec<Severity> {
    use Severity::*;
    let all = vec![Error, Warning, Info, Hint];
    for s in &all {
        match s {
            Error | Warning | Info | Hint => {}
        }
    }
    all
}

/// Every event by wire type, and every channel event by channel.
fn samples() -> (
    BTreeMap<&'static str, Sample>,
    BTreeMap<&'static str, Sample>,
) {
    let mut events = BTreeMap::new();
    let mut add = |ty: &'static str, s: Sample| assert!(events.insert(ty, s).is_none(), "{ty}");
    add(
        AgentStatus::TYPE,
        sample(
            &AgentStatus::new("A", AgentState::Working)
                .task("t")
                .progress(5),
            &AgentStatus::new("A", AgentState::Idle),
        )
        .with_enum("state", &agent_states()),
    );
    add(
        ChatMessage::TYPE,
        Sample::one(&ChatMessage::new("c", "m", "x", "s")),
    );
    add(
        Notification::TYPE,
        Sample::one(&Notification::info("m")).with_enum("level", &notification_levels()),
    );
    add(
        UserPresence::TYPE,
        Sample::one(&UserPresence::new("u", Status::Online)).with_enum("status", Status::ALL),
    );
    add(
        AiStart::TYPE,
        sample(
            &AiStart::new("p", "generate").target_file("f"),
            &AiStart::new("p", "generate"),
        ),
    );
    add(AiProgress::TYPE, Sample::one(&AiProgress::new(1, 2)));
    add(
        AiComplete::TYPE,
        sample(
            &AiComplete::new("generate", 1, 2).target_file("f"),
            &AiComplete::new("generate", 1, 2),
        ),
    );
    add(AiError::TYPE, Sample::one(&AiError::new("m", "k")));
    add(StreamChunk::TYPE, Sample::one(&StreamChunk::new("s", "c")));
    add(StreamComplete::TYPE, Sample::one(&StreamComplete::new("s")));
    add(StreamError::TYPE, Sample::one(&StreamError::new("s", "m")));
    add(
        StatusUpdate::TYPE,
        Sample::one(&StatusUpdate::new("s", SessionStatus::Idle))
            .with_enum("status", &session_statuses()),
    );
    add(AgentStarted::TYPE, Sample::one(&AgentStarted::new("s")));
    add(AgentCancelled::TYPE, Sample::one(&AgentCancelled::new("s")));
    add(
        MessageReceived::TYPE,
        sample(
            &MessageReceived::new("i", "c").kind("user"),
            &MessageReceived::new("i", "c"),
        ),
    );
    add(
        IdeStatusChanged::TYPE,
        Sample::one(&IdeStatusChanged::new(1, "active", "/w")),
    );
    add(
        ConnectionStatus::TYPE,
        sample(
            &ConnectionStatus::new(true, 1)
                .active_now()
                .available_ports([1, 2]),
            &ConnectionStatus::new(true, 1),
        ),
    );
    add(
        UserAppDetected::TYPE,
        Sample::one(&UserAppDetected::new("u", "/w")),
    );
    add(
        WorkspaceChanged::TYPE,
        Sample::one(&WorkspaceChanged::new("/w", 1)),
    );
    add(Heartbeat::TYPE, Sample::one(&Heartbeat::now()));

    let mut channels = BTreeMap::new();
    let mut on = |channel: &'static str, s: Sample| {
        assert!(channels.insert(channel, s).is_none(), "{channel}")
    };
    on(
        FileChanged::CHANNEL,
        Sample::one(&FileChanged::new("f", "change")),
    );
    on(
        DiagnosticsUpdated::CHANNEL,
        Sample::one(&DiagnosticsUpdated::new(vec![Diagnostic::new(
            "f",
            1,
            2,
            Severity::Error,
            "m",
        )]))
        .with_enum("diagnostics[].severity", &severities()),
    );
    on(
        AiChunk::CHANNEL,
        Sample::one(&AiChunk::new("i", "c", 0, false)),
    );
    on(
        SearchProgress::CHANNEL,
        Sample::one(&SearchProgress::new("q", 1, 2, vec![json!({"a": 1})])).with_free("results[]"),
    );
    on(
        ValidationComplete::CHANNEL,
        Sample::one(&ValidationComplete::new(json!({"valid": true}))).with_free("result"),
    );
    on(
        GitEvent::CHANNEL,
        Sample::one(&GitEvent::new("commit", "m")),
    );
    (events, channels)
}

/// The fixture's text.
fn fixture() -> String {
    let (events, channels) = samples();
    let listed: Vec<&str> = events.keys().copied().collect();
    let mut wanted: Vec<&str> = super::TYPES.to_vec();
    wanted.sort_unstable();
    assert_eq!(listed, wanted, "every event type has a sample");
    let mut listed: Vec<&str> = channels.keys().copied().collect();
    listed.sort_unstable();
    let mut wanted: Vec<&str> = super::CHANNELS.to_vec();
    wanted.sort_unstable();
    assert_eq!(listed, wanted, "every channel event has a sample");

    let mut out = String::from(
        "// Generated by `cargo test` from the hub's event structs (src/events/typescript.rs):\n\
         // WSHUB_BLESS=1 cargo test --lib typescript rewrites it. tsc checks\n\
         // clients/js/events.d.ts against it (test/types/agree.ts).\n\n",
    );
    let mut section = |name: &str, map: &BTreeMap<&str, Sample>| {
        let _ = writeln!(out, "export interface {name} {{");
        for (key, sample) in map {
            let _ = write!(out, "  '{key}': ");
            sample.ts().render(&mut out, 2);
            out.push_str(";\n");
        }
        out.push_str("}\n\n");
    };
    section("RustEvents", &events);
    section("RustChannelEvents", &channels);
    let codes: Vec<String> = ErrorCode::ALL
        .iter()
        .map(|c| format!("'{}'", c.as_str()))
        .collect();
    let _ = writeln!(out, "export type RustErrorCode = {};", codes.join(" | "));
    out
}

#[test]
fn the_typescript_fixture_is_current() {
    let text = fixture();
    if std::env::var_os("WSHUB_BLESS").is_some() {
        std::fs::write(FIXTURE, &text).unwrap();
        return;
    }
    let current = std::fs::read_to_string(FIXTURE).unwrap_or_default();
    assert!(
        current == text,
        "{FIXTURE} is not what the event structs serialise to: \
         WSHUB_BLESS=1 cargo test --lib typescript rewrites it, then make \
         clients/js/events.d.ts agree (tsc checks it in tests/npm_package.rs)"
    );
}
