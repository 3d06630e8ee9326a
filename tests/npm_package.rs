//! The npm package `@wshub/client` (`clients/js`) as its users get it:
//! `npm pack`, then the tarball installed into fresh ESM, CommonJS and
//! TypeScript projects made here in a scratch directory, each run under node
//! against the `wshub` binary cargo just built. `tsc --strict --noEmit`
//! checks the typed usage files (`clients/js/test/types/`, whose
//! `@ts-expect-error` lines must fail to compile), every TypeScript block of
//! the hub's client docs (docs/embedding.md) and of the package's README,
//! and that the package's event types are the hub's
//! (`rust-events.ts`, written from src/events.rs); tsc builds the 001
//! dashboard and 002 broadcaster
//! examples, which then run against a hub (the dashboard under react-dom on
//! jsdom), and 000's event bus bridge runs too. And 003's agent flow end to
//! end, with the example agent service killed in the middle of an answer and
//! started again.
//!
//! Needs node (20 or newer) and npm, so plain `cargo test` lists these as
//! ignored (but for the version check); `.ci/run` runs
//! `cargo test --test npm_package -- --ignored`. Nothing is installed in the
//! repository, and no lockfile is written (`.npmrc`: `package-lock=false`).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ADMIN: &str = "npm-package-admin";
const NPMRC: &str = "package-lock=false\naudit=false\nfund=false\nupdate-notifier=false\n";

fn repo_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn package_dir() -> PathBuf {
    repo_dir().join("clients/js")
}

/// A fresh scratch directory for this run, with the packed tarball in it.
fn scratch() -> &'static (PathBuf, PathBuf) {
    static SCRATCH: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("npm-package");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let out = run(
            Command::new("npm")
                .args(["pack", "--json", "--pack-destination"])
                .arg(&dir)
                .current_dir(package_dir()),
            "npm pack",
        );
        let listing: Value = serde_json::from_slice(&out.stdout).expect("npm pack --json");
        let name = listing[0]["filename"].as_str().expect("the tarball's name");
        (dir.clone(), dir.join(name))
    })
}

/// Runs a command to the end; panics with its output unless it succeeded.
fn run(command: &mut Command, what: &str) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|err| panic!("{what}: cannot start it ({err}); install node 20+ and npm"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A fresh project: its package.json, an .npmrc, and the tarball installed
/// with `packages`.
fn project(name: &str, manifest: Value, packages: &[&str]) -> PathBuf {
    let (dir, tarball) = scratch();
    let dir = dir.join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(".npmrc"), NPMRC).unwrap();
    fs::write(dir.join("package.json"), manifest.to_string()).unwrap();
    run(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund"])
            .arg(tarball)
            .args(packages)
            .current_dir(&dir),
        &format!("npm install in {name}"),
    );
    dir
}

/// Copies `clients/js/<from>` to `<dir>/<to>`.
fn copy(from: &str, dir: &Path, to: &str) {
    let target = dir.join(to);
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::copy(package_dir().join(from), &target).unwrap_or_else(|e| panic!("copy {from}: {e}"));
}

/// The wshub binary on 127.0.0.1, port 0; killed when dropped.
struct Hub {
    child: Child,
    url: String,
}

impl Hub {
    fn start(args: &[&str]) -> Hub {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wshub"))
            .args(["--host", "127.0.0.1", "--port", "0", "--rate-limit", "0"])
            .args(["--admin-token", ADMIN])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the wshub binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    // Keep draining, so the hub never blocks on its log.
                    continue;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        let url = loop {
            let line = rx
                .recv_deadline(deadline)
                .expect("the hub says where it listens");
            if let Some(at) = line.find("wshub listening on ws://") {
                let rest = &line[at + "wshub listening on ".len()..];
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        Hub { child, url }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a node script in `dir` against `hub`; its last line of stdout, as JSON.
fn node(dir: &Path, args: &[&str], hub: &Hub) -> Value {
    let out = run(
        Command::new("node")
            .args(args)
            .current_dir(dir)
            .env("WSHUB_URL", &hub.url)
            .env("WSHUB_ADMIN_TOKEN", ADMIN),
        &format!("node {args:?}"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|_| panic!("node {args:?} printed {stdout}"))
}

#[test]
fn the_package_version_is_the_hubs() {
    let manifest: Value =
        serde_json::from_str(&fs::read_to_string(package_dir().join("package.json")).unwrap())
            .unwrap();
    assert_eq!(
        manifest["version"],
        env!("CARGO_PKG_VERSION"),
        "@wshub/client follows the hub's protocol: its version is the hub's"
    );
    assert!(
        manifest.get("dependencies").is_none(),
        "no runtime dependencies"
    );
    assert_eq!(manifest["peerDependenciesMeta"]["react"]["optional"], true);
}

#[test]
fn the_types_reserve_the_hubs_own_message_types() {
    // The hub's list: `Kind` in src/protocol/codes.rs, its wire names.
    let codes = fs::read_to_string(repo_dir().join("src/protocol/codes.rs")).unwrap();
    let kinds = &codes[codes.find("enum Kind {").expect("the Kind enum")..];
    let kinds = &kinds[..kinds.find('}').unwrap()];
    let mut hub: Vec<&str> = kinds
        .lines()
        .filter_map(|line| line.split('"').nth(1))
        .collect();
    // The package's: `HubReservedType` in wshub.d.ts.
    let types = fs::read_to_string(package_dir().join("wshub.d.ts")).unwrap();
    let union = &types[types
        .find("export type HubReservedType =")
        .expect("HubReservedType")..];
    let union = &union[..union.find(';').unwrap()];
    let mut package: Vec<&str> = union
        .split('|')
        .skip(1)
        .filter_map(|member| member.split('\'').nth(1))
        .collect();
    hub.sort_unstable();
    package.sort_unstable();
    assert!(hub.len() > 10, "{hub:?}");
    assert_eq!(
        package, hub,
        "wshub.d.ts's HubReservedType is the hub's Kind list"
    );
}

#[test]
#[ignore = "needs node and npm; .ci/run runs it"]
fn the_commonjs_copies_are_generated_from_the_sources() {
    run(
        Command::new("node")
            .args(["scripts/build-cjs.mjs", "--check"])
            .current_dir(package_dir()),
        "the CommonJS copies are current (node scripts/build-cjs.mjs --check)",
    );
}

#[test]
#[ignore = "needs node and npm; .ci/run runs it"]
fn the_tarball_holds_the_package_and_nothing_else() {
    let (_, tarball) = scratch();
    let out = run(Command::new("tar").arg("tzf").arg(tarball), "tar tzf");
    let mut files: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("package/").to_owned())
        .collect();
    files.sort();
    for wanted in [
        "package.json",
        "README.md",
        "LICENSE",
        "wshub.js",
        "wshub.d.ts",
        "events.d.ts",
        "react.js",
        "react.d.ts",
        "server.js",
        "server.d.ts",
        "cjs/wshub.cjs",
        "cjs/wshub.d.cts",
        "cjs/events.d.cts",
        "cjs/react.cjs",
        "cjs/react.d.cts",
        "cjs/server.cjs",
        "cjs/server.d.cts",
    ] {
        assert!(files.iter().any(|f| f == wanted), "{wanted} in {files:?}");
    }
    assert!(
        !files.iter().any(|f| f.starts_with("test")
            || f.starts_with("scripts")
            || f.starts_with("examples")),
        "only what users need: {files:?}"
    );
    let shipped = |file: &str| {
        let out = run(
            Command::new("tar")
                .arg("xzOf")
                .arg(tarball)
                .arg(format!("package/{file}")),
            "tar xzOf",
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        shipped("LICENSE"),
        fs::read_to_string(repo_dir().join("LICENSE")).unwrap(),
        "the repository's license"
    );
    // The README is read on its own, away from the repository: no link into it.
    let readme = shipped("README.md");
    assert!(
        !readme.contains("](../"),
        "a relative link out of the package"
    );
    let manifest: Value = serde_json::from_str(&shipped("package.json")).unwrap();
    assert_eq!(
        manifest["repository"],
        json!({"type": "git", "directory": "clients/js"})
    );
}

#[test]
#[ignore = "needs node and npm; .ci/run runs it"]
fn installed_from_the_repository_with_install_links_the_hooks_find_the_projects_react() {
    // As both READMEs say: a copy, not a symlink, so `react` resolves from
    // the project (a symlinked package would look beside the repository).
    let (dir, _) = scratch();
    let dir = dir.join("install-links");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(".npmrc"), NPMRC).unwrap();
    fs::write(
        dir.join("package.json"),
        json!({"name": "fresh-install-links", "private": true, "type": "module"}).to_string(),
    )
    .unwrap();
    run(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--install-links"])
            .arg(package_dir())
            .args(["react@19"])
            .current_dir(&dir),
        "npm install --install-links clients/js",
    );
    let installed = dir.join("node_modules/@wshub/client");
    assert!(
        !fs::symlink_metadata(&installed)
            .unwrap()
            .file_type()
            .is_symlink(),
        "a copy"
    );
    let out = run(
        Command::new("node")
            .args([
                "--input-type=module",
                "-e",
                "const hooks = await import('@wshub/client/react'); console.log(typeof hooks.useChannel);",
            ])
            .current_dir(&dir),
        "import '@wshub/client/react'",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "function");
}

/// What esm.mjs and cjs.cjs print, for either.
fn check_module_run(result: &Value, module: &str) {
    assert_eq!(result["module"], module, "{result}");
    assert!(result["subscribed"]["seq"].is_number(), "{result}");
    assert!(result["subscribed"]["epoch"].is_string(), "{result}");
    assert_eq!(result["delivered"], 1, "{result}");
    assert_eq!(result["event"]["channel"], "files", "{result}");
    assert_eq!(result["event"]["data"]["file"], "a.ts", "{result}");
    assert_eq!(
        result["reply"],
        json!({"type": "greeted", "data": {"hello": module, "user": format!("{module}-user")}})
    );
    assert_eq!(
        result["refused"],
        json!({"isWshubError": true, "code": "unknown_type"})
    );
}

#[test]
#[ignore = "needs node and npm; .ci/run runs it"]
fn the_packed_package_works_in_fresh_esm_and_commonjs_projects() {
    let hub = Hub::start(&[]);
    let esm = project(
        "esm",
        json!({"name": "fresh-esm", "private": true, "type": "module"}),
        &["ws@8"],
    );
    copy("test/package/esm.mjs", &esm, "esm.mjs");
    check_module_run(&node(&esm, &["esm.mjs"], &hub), "esm");

    // 000's event bus bridge, a few lines on the SDK.
    copy(
        "examples/event-bus-bridge.mjs",
        &esm,
        "event-bus-bridge.mjs",
    );
    copy("test/package/bridge-run.mjs", &esm, "bridge-run.mjs");
    let bridged = node(&esm, &["bridge-run.mjs"], &hub);
    assert_eq!(
        bridged["got"],
        json!([
            {"type": "messageReceived", "data": {"id": "msg-123", "content": "Hello, Cursor!", "timestamp": "t"}},
            {"type": "ideStatusChanged", "data": {"port": 9223, "status": "active", "workspacePath": "/w"}}
        ])
    );
    assert_eq!(bridged["code"], 0, "the bridge ends with its input");

    // `npm init -y` makes a CommonJS project: no "type".
    let cjs = project(
        "cjs",
        json!({"name": "fresh-cjs", "private": true}),
        &["ws@8"],
    );
    copy("test/package/cjs.cjs", &cjs, "index.js");
    let result = node(&cjs, &["index.js"], &hub);
    check_module_run(&result, "cjs");
    assert_eq!(result["defaultIsClient"], true);
}

/// The TypeScript project: strict, Node's ESM resolution, JSX for React.
fn typescript_project() -> PathBuf {
    let dir = project(
        "typescript",
        json!({"name": "fresh-typescript", "private": true, "type": "module"}),
        &[
            "typescript@5",
            "@types/node@20",
            "@types/ws@8",
            "ws@8",
            "react@19",
            "react-dom@19",
            "@types/react@19",
            "jsdom@29",
        ],
    );
    for file in [
        "agree.ts",
        "rust-events.ts",
        "client-usage.ts",
        "server-usage.ts",
        "react-usage.tsx",
    ] {
        copy(&format!("test/types/{file}"), &dir, &format!("src/{file}"));
    }
    copy(
        "test/types/readme-globals.d.ts",
        &dir,
        "src/readme-globals.d.ts",
    );
    let snippets = readme_snippets(&dir.join("src/readme"));
    assert!(
        snippets >= 10,
        "only {snippets} TypeScript blocks in the READMEs"
    );
    copy("test/package/cjs-usage.cts", &dir, "src/cjs-usage.cts");
    copy("test/package/typed-run.ts", &dir, "src/typed-run.ts");
    copy(
        "examples/typed-broadcaster.ts",
        &dir,
        "src/examples/typed-broadcaster.ts",
    );
    copy(
        "examples/dashboard/Dashboard.tsx",
        &dir,
        "src/examples/Dashboard.tsx",
    );
    copy(
        "test/package/render-dashboard.mjs",
        &dir,
        "render-dashboard.mjs",
    );
    let options = json!({
        "strict": true,
        "module": "nodenext",
        "moduleResolution": "nodenext",
        "target": "es2022",
        "lib": ["es2022", "dom"],
        "jsx": "react-jsx",
        "types": ["node"],
        "rootDir": "src",
        "outDir": "dist",
    });
    fs::write(
        dir.join("tsconfig.json"),
        json!({"compilerOptions": options, "include": ["src"]}).to_string(),
    )
    .unwrap();
    dir
}

/// Every ```ts and ```tsx block of the hub's client docs and the package's
/// README, each in a file of its own in `dir`: its imports first, the rest
/// inside an async function (so blocks do not clash, and may `await`).
/// `readme-globals.d.ts` declares what they take as given. Returns how many.
fn readme_snippets(dir: &Path) -> usize {
    fs::create_dir_all(dir).unwrap();
    let mut count = 0;
    for (name, readme) in [
        ("main", repo_dir().join("docs/embedding.md")),
        ("package", package_dir().join("README.md")),
    ] {
        let text = fs::read_to_string(&readme).unwrap();
        let mut lines = text.lines().enumerate();
        while let Some((at, line)) = lines.next() {
            let ext = match line.trim_end() {
                "```ts" => "ts",
                "```tsx" => "tsx",
                _ => continue,
            };
            let (mut imports, mut body) = (Vec::new(), Vec::new());
            let mut in_import = false;
            for (_, line) in lines.by_ref() {
                if line.starts_with("```") {
                    break;
                }
                if in_import || line.starts_with("import ") {
                    imports.push(line);
                    // An import ends with its `from '...'` (or is `import '...'`).
                    in_import = !(line.contains(" from ") || line.starts_with("import '"));
                } else {
                    body.push(line);
                }
            }
            let file = format!(
                "// {} line {}\n{}\nexport async function snippet(): Promise<void> {{\n{}\n}}\n",
                readme.strip_prefix(repo_dir()).unwrap_or(&readme).display(),
                at + 1,
                imports.join("\n"),
                body.join("\n")
            );
            fs::write(dir.join(format!("{name}-{:04}.{ext}", at + 1)), file).unwrap();
            count += 1;
        }
    }
    count
}

#[test]
#[ignore = "needs node and npm; .ci/run runs it"]
fn typescript_checks_the_types_then_builds_and_runs_the_examples() {
    let dir = typescript_project();
    let tsc = |args: &[&str], what: &str| {
        run(
            Command::new("node")
                .arg("node_modules/typescript/bin/tsc")
                .args(args)
                .current_dir(&dir),
            what,
        )
    };
    // Every typed usage file, the `@ts-expect-error` lines failing as they
    // must, and the READMEs' TypeScript.
    tsc(
        &["-p", ".", "--noEmit"],
        "tsc --strict --noEmit on the typed usage files and the READMEs' blocks",
    );
    // Then the examples, built.
    tsc(&["-p", "."], "tsc builds the examples");

    let hub = Hub::start(&[]);
    let typed = node(&dir, &["dist/typed-run.js"], &hub);
    let seen = typed["seen"].as_array().unwrap();
    let channels: Vec<&str> = seen
        .iter()
        .map(|s| s["channel"].as_str().unwrap())
        .collect();
    assert_eq!(
        channels,
        [
            "files",
            "diagnostics",
            "ai-response",
            "search",
            "validation",
            "git"
        ]
    );
    assert_eq!(seen[0]["data"]["file"], "src/main.ts");
    assert_eq!(seen[1]["data"]["diagnostics"][0]["severity"], "error");

    let dashboard = node(&dir, &["render-dashboard.mjs"], &hub);
    assert_eq!(dashboard["status"], "Status: Connected", "{dashboard}");
    assert_eq!(dashboard["agent"], "Agent: working", "{dashboard}");
    assert!(
        dashboard["online"]
            .as_str()
            .unwrap()
            .contains("dash-user: online"),
        "{dashboard}"
    );
    assert_eq!(dashboard["files"], "change src/main.ts", "{dashboard}");
}

#[test]
#[ignore = "needs node and npm; .ci/run runs it"]
fn the_agent_flow_streams_to_the_session_and_survives_a_backend_restart() {
    let dir = project(
        "agent-flow",
        json!({"name": "fresh-agent-flow", "private": true, "type": "module"}),
        &["ws@8"],
    );
    copy("examples/agent-service.mjs", &dir, "agent-service.mjs");
    copy("test/package/agent-flow.mjs", &dir, "agent-flow.mjs");
    // As the agent service's clients expect their hub (README, Drop-in).
    let hub = Hub::start(&["--envelope", "payload"]);
    let service = dir.join("agent-service.mjs");
    let out = run(
        Command::new("node")
            .arg("agent-flow.mjs")
            .current_dir(&dir)
            .env("WSHUB_URL", &hub.url)
            .env("WSHUB_ADMIN_TOKEN", ADMIN)
            .env("AGENT_SERVICE", &service),
        "the agent flow",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|_| panic!("the agent flow printed {stdout}"));

    assert_eq!(
        r["started"],
        json!({"type": "agent:started", "data": {"sessionId": "agent-session"}})
    );
    assert_eq!(
        r["complete"],
        json!({"type": "stream:complete", "data": {"sessionId": "agent-session"}})
    );
    let answered = r["answered"].as_array().unwrap();
    let words: Vec<&str> = answered
        .iter()
        .map(|c| c["content"].as_str().unwrap())
        .collect();
    assert_eq!(words, ["hello ", "there ", "world "]);
    let seqs: Vec<u64> = answered
        .iter()
        .map(|c| c["seq"].as_u64().expect("a chunk to the session has a seq"))
        .collect();
    assert_eq!(
        seqs,
        [seqs[0], seqs[0] + 1, seqs[0] + 2],
        "in order, none lost"
    );
    assert!(answered.iter().all(|c| c["sessionId"] == "agent-session"));

    assert_eq!(r["busy"]["code"], "busy", "{r}");
    let cut = r["cutAfter"].as_u64().unwrap();
    assert!(
        (2..2000).contains(&cut),
        "killed in the middle of the answer: {cut} chunks"
    );
    assert_eq!(r["nobody"], "unknown_type", "{r}");
    assert_eq!(r["again"]["type"], "stream:complete", "{r}");
    let again: Vec<&str> = r["afterRestart"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["content"].as_str().unwrap())
        .collect();
    assert_eq!(again, ["back ", "again "]);
}
