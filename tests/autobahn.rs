//! The Autobahn test suite, written by others, against the hub's WebSocket
//! layer: its fuzzing client (`wstest -m fuzzingclient`, from PyPI's
//! `autobahntestsuite`) runs the framing cases (sections 1 to 7), the
//! large-message cases (9) and the permessage-deflate cases (12 and 13)
//! against `examples/autobahn_echo.rs`, an echo service on the exact
//! reader, negotiation and compressor the hub runs. Every case's verdict
//! (`behavior`, and `behaviorClose` for how the connection ended) must be
//! the one kept in `tests/autobahn/expected.json`; a case that changes
//! either way fails the test, with the case's report named.
//!
//! The suite's client runs on Python 2.7 only, so plain `cargo test` lists
//! this as ignored; `.ci/run` sets up `wstest` in a Python 2.7 virtualenv
//! and runs `cargo test --release --test autobahn -- --ignored` (release:
//! section 9 moves 16 MiB messages). `WSTEST` names the `wstest` to run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The echo example, built beside this test.
fn echo_example() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile
        .join("examples")
        .join(format!("autobahn_echo{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is not built: `cargo test` builds the examples",
        path.display()
    );
    path
}

/// The echo service, killed when dropped.
struct Echo(Child);

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the echo service on a free port; returns it and its URL.
fn start_echo() -> (Echo, String) {
    let mut child = Command::new(echo_example())
        .arg("0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the echo example starts");
    let stdout = child.stdout.take().expect("its stdout");
    let echo = Echo(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the echo example says where it listens");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    (echo, url)
}

/// Each case's `(behavior, behaviorClose)`.
fn verdicts(results: &Value) -> BTreeMap<String, (String, String)> {
    results
        .as_object()
        .expect("cases by id")
        .iter()
        .map(|(case, result)| {
            let field = |name: &str| result[name].as_str().unwrap_or("?").to_owned();
            (case.clone(), (field("behavior"), field("behaviorClose")))
        })
        .collect()
}

#[test]
#[ignore = "needs Python 2.7 with autobahntestsuite; .ci/run sets it up and runs cargo test --release --test autobahn -- --ignored"]
fn the_autobahn_suite_sections_1_to_7_9_12_and_13_pass_as_recorded() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let wstest = std::env::var("WSTEST").unwrap_or_else(|_| "wstest".to_owned());
    let (_echo, url) = start_echo();
    let out = root.join("target/autobahn");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let spec: Value =
        serde_json::from_str(include_str!("autobahn/fuzzingclient.json")).expect("the spec");
    let mut spec = spec;
    spec["servers"][0]["url"] = Value::String(url);
    spec["outdir"] = Value::String(out.join("reports").display().to_string());
    let spec_path = out.join("fuzzingclient.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    // The suite stops by itself once every case has run.
    let status = Command::new(&wstest)
        .args(["-m", "fuzzingclient", "-s"])
        .arg(&spec_path)
        .current_dir(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|err| panic!("{wstest} runs (set WSTEST): {err}"));
    assert!(status.success(), "wstest: {status}");
    let index: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("reports/index.json")).expect("the suite's index"),
    )
    .expect("JSON");
    let got = verdicts(&index["wshub"]);
    let expected: Value =
        serde_json::from_str(include_str!("autobahn/expected.json")).expect("the expected results");
    let expected = verdicts(&expected);
    let mut differences = Vec::new();
    for (case, verdict) in &expected {
        match got.get(case) {
            Some(found) if found == verdict => {}
            found => differences.push(format!("{case}: expected {verdict:?}, got {found:?}")),
        }
    }
    for case in got.keys().filter(|case| !expected.contains_key(*case)) {
        differences.push(format!("{case}: ran, but has no expected result"));
    }
    let mut tally = BTreeMap::new();
    for (behavior, _) in got.values() {
        *tally.entry(behavior.as_str()).or_insert(0) += 1;
    }
    println!("{} cases: {tally:?}", got.len());
    assert!(
        differences.is_empty(),
        "{} cases differ from tests/autobahn/expected.json (reports in {}):\n{}",
        differences.len(),
        out.join("reports").display(),
        differences.join("\n")
    );
}
