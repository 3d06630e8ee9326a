//! The files in dist/ that put wshub into production: the systemd unit is
//! verified by systemd-analyze and its command line runs; the container
//! file (no container engine here) copies what the repository has and sets
//! variables the binary knows.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_wshub");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// The unit's `ExecStart=` words.
fn exec_start() -> Vec<String> {
    let unit = read("dist/wshub.service");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart");
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_containerfile_copies_what_the_repository_has_and_sets_known_variables() {
    let file = read("dist/Containerfile");
    let mut copied = 0;
    for line in file.lines().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for source in &words[..words.len() - 1] {
            assert!(
                repo().join(source).exists(),
                "Containerfile copies {source}, which the repository lacks"
            );
            copied += 1;
        }
    }
    assert!(copied >= 3, "no COPY read");
    let help = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for variable in file
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("WSHUB_"))
    {
        assert!(
            help.contains(variable),
            "{variable} is no variable of --help"
        );
    }
}

#[test]
fn the_service_units_command_line_starts_a_hub() {
    let words = exec_start();
    assert_eq!(words[0], "/usr/local/bin/wshub");
    // Its own flags, on a free port: a later flag wins.
    let mut child = Command::new(BIN)
        .args(&words[1..])
        .args(["--port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.contains("wshub listening on") {
            break;
        }
        seen.push(line);
    }
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(running, "the unit's command line did not start: {seen:#?}");
}

#[test]
#[ignore = "needs systemd-analyze (the systemd package); .ci/run installs it"]
fn the_service_unit_passes_systemd_analyze_verify() {
    // The unit as installed, its binary where this build put it.
    let unit = read("dist/wshub.service").replace("/usr/local/bin/wshub", BIN);
    let dir: PathBuf = std::env::temp_dir().join(format!("wshub-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wshub.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.trim().is_empty(), "warnings: {stderr}");
}
