//! The JavaScript client (`clients/js`) against this build's hub binary: runs
//! its `node --test` suites with `WSHUB_BIN` set to the `wshub` cargo just
//! built and `WSHUB_JS_DEPS` to a scratch directory under `target/` where the
//! npm packages the tests use (`ws`, `react`, `react-dom`, `jsdom`) are
//! installed, never in the repository and without a lockfile.
//!
//! `the_js_client_suites_pass` runs every suite but `recovery.test.mjs`;
//! `the_js_client_recovers_missed_publications` runs that one, which needs the
//! hub's history and recovery (seq, epoch, `since`, `--history-size`).
//!
//! Needs node (20 or newer) and npm, so plain `cargo test` lists both as
//! ignored; `.ci/run` runs `cargo test --test js_client -- --ignored`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// What the tests import, by major version.
const PACKAGES: &str = r#"{"ws": "^8", "react": "^19", "react-dom": "^19", "jsdom": "^29"}"#;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The scratch directory with the packages installed, once per test run.
fn deps() -> &'static Path {
    static DEPS: OnceLock<PathBuf> = OnceLock::new();
    DEPS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("js-deps");
        fs::create_dir_all(&dir).unwrap();
        // No lockfile, and nothing npm would otherwise print or phone home about.
        fs::write(
            dir.join(".npmrc"),
            "package-lock=false\naudit=false\nfund=false\nupdate-notifier=false\n",
        )
        .unwrap();
        let manifest = format!(
            r#"{{"name": "wshub-js-test-deps", "private": true, "dependencies": {PACKAGES}}}"#
        );
        fs::write(dir.join("package.json"), manifest).unwrap();
        let installed = ["ws", "react", "react-dom", "jsdom"].iter().all(|name| {
            dir.join("node_modules")
                .join(name)
                .join("package.json")
                .exists()
        });
        if !installed {
            let status = Command::new("npm")
                .arg("install")
                .current_dir(&dir)
                .status()
                .expect("npm runs (install node and npm)");
            assert!(status.success(), "npm install in {} failed", dir.display());
        }
        dir
    })
}

/// The suites in `clients/js/test`, by file name.
fn suites() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(repo().join("clients/js/test"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".test.mjs"))
        .collect();
    names.sort();
    names
}

/// Runs `node --test` on these suites; the runner's report goes straight to the output.
fn node_test(files: &[String]) {
    assert!(!files.is_empty(), "no suites to run");
    let status = Command::new("node")
        .arg("--test")
        .arg("--test-timeout=60000")
        .args(files.iter().map(|name| format!("clients/js/test/{name}")))
        .current_dir(repo())
        .env("WSHUB_BIN", env!("CARGO_BIN_EXE_wshub"))
        .env("WSHUB_JS_DEPS", deps())
        .status()
        .expect("node runs (install node 20 or newer)");
    assert!(
        status.success(),
        "node --test {files:?} failed (its report is above)"
    );
}

#[test]
#[ignore = "needs node and npm; .ci/run runs it"]
fn the_js_client_suites_pass() {
    let files: Vec<String> = suites()
        .into_iter()
        .filter(|name| name != "recovery.test.mjs")
        .collect();
    node_test(&files);
}

#[test]
#[ignore = "needs node and npm, and the hub's history and recovery; .ci/run runs it"]
fn the_js_client_recovers_missed_publications() {
    node_test(&["recovery.test.mjs".to_owned()]);
}
