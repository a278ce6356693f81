//! Drives the real `burrow` binary: version and help, `dev`/`serve` on good and bad projects, log
//! formats, and the subcommands that are not available yet. A project that starts is stopped with
//! SIGTERM once it listens (see `serve.rs` for what the listeners do).

mod support;

use std::path::Path;
use std::process::Command;

use support::{burrow, command, start, stderr, stdout, text, write};

/// `burrow ARGS` with both listeners on free ports, run until it listens and then terminated;
/// returns the log after checking that it exited 0.
fn run_briefly(args: &[&str]) -> String {
    let mut command = command(args);
    command.args(["--port", "0", "--admin-address", "127.0.0.1:0"]);
    let server = start(&mut command);
    let (status, log) = server.terminate();
    assert!(status.success(), "{status}: {log}");
    log
}

#[test]
fn version_and_help() {
    let output = burrow(&["--version"]);
    assert!(output.status.success());
    assert_eq!(
        stdout(&output).trim(),
        format!("burrow {}", env!("CARGO_PKG_VERSION"))
    );

    let output = burrow(&["help"]);
    assert!(output.status.success());
    let help = stdout(&output);
    for command in [
        "dev",
        "serve",
        "workers",
        "kv",
        "queues",
        "workflows",
        "objects",
        "sql",
    ] {
        assert!(help.contains(command), "{help}");
    }
    let output = burrow(&["dev", "--help"]);
    let help = stdout(&output);
    for flag in [
        "--config",
        "--env",
        "--port",
        "--ip",
        "--persist-to",
        "--admin-address",
        "--log-format",
    ] {
        assert!(help.contains(flag), "{help}");
    }
}

#[test]
fn dev_on_a_missing_directory_or_file_fails_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-project");
    let output = burrow(&["dev", text(&missing)]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains(text(&missing)), "{message}");
    assert!(message.contains("No such file or directory"), "{message}");

    let output = burrow(&["dev", text(dir.path())]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no wrangler.json, wrangler.jsonc or wrangler.toml found in"),
        "{}",
        stderr(&output)
    );

    let missing_file = dir.path().join("wrangler.toml");
    let output = burrow(&["dev", "-c", text(&missing_file)]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(text(&missing_file)),
        "{}",
        stderr(&output)
    );
}

#[test]
fn malformed_configs_fail_with_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "toml/wrangler.toml",
        "name = \"x\"\n\n[vars\nA = 1\n",
    );
    let output = burrow(&["dev", text(&dir.path().join("toml"))]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("wrangler.toml:3:6:"), "{message}");

    write(
        dir.path(),
        "jsonc/wrangler.jsonc",
        "{\n  // comment\n  \"name\": \"x\",\n  \"main\" \"src/index.js\",\n}\n",
    );
    let output = burrow(&["dev", text(&dir.path().join("jsonc"))]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("wrangler.jsonc:4:10:"),
        "{}",
        stderr(&output)
    );

    write(
        dir.path(),
        "range/wrangler.toml",
        "name = \"x\"\n[[queues.consumers]]\nqueue = \"q\"\nmax_batch_size = 500\n",
    );
    let output = burrow(&["dev", text(&dir.path().join("range"))]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(
            "wrangler.toml: queues.consumers[0].max_batch_size = 500 is out of range (allowed 1..=100)"
        ),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_valid_project_starts_and_warns_about_unsupported_bindings() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "wrangler.toml",
        "name = \"app\"\nmain = \"src/index.js\"\ncompatibility_date = \"2025-01-01\"\n\
         [[kv_namespaces]]\nbinding = \"CACHE\"\n\
         [[d1_databases]]\nbinding = \"DB\"\ndatabase_name = \"app\"\n\
         [[r2_buckets]]\nbinding = \"FILES\"\nbucket_name = \"files\"\n\
         [dev]\nport = 9123\nip = \"localhost\"\n",
    );
    write(
        dir.path(),
        "src/index.js",
        "export default { fetch() { return new Response('hi') } }\n",
    );
    let log = run_briefly(&["dev", text(dir.path())]);
    let warning = log
        .lines()
        .find(|line| line.contains("WARN"))
        .unwrap_or_else(|| panic!("no warning in {log}"));
    assert!(
        warning.contains("bindings not supported by Burrow yet"),
        "{warning}"
    );
    assert!(
        warning.contains("d1_databases") && warning.contains("r2_buckets"),
        "{warning}"
    );
    assert_eq!(log.matches("not supported").count(), 1, "{log}");
    assert!(log.contains("env.CACHE (KV Namespace)"), "{log}");
    assert!(log.contains("Worker ingress listening"), "{log}");
    assert!(log.contains("signal=\"SIGTERM\""), "{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(dir.path().join(".burrow/state").is_dir());
}

#[test]
fn the_dev_table_sets_the_listener_when_no_flag_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = support::free_port();
    write(
        dir.path(),
        "wrangler.toml",
        &format!("name = \"app\"\n[dev]\nport = {port}\nip = \"localhost\"\n"),
    );
    // wrangler's `[dev] port` and `ip` apply when --port and --ip are not given.
    let mut command = command(&["dev", text(dir.path()), "--admin-address", "127.0.0.1:0"]);
    let server = start(&mut command);
    assert_eq!(server.ingress.to_string(), format!("127.0.0.1:{port}"));
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains(&format!("listen=127.0.0.1:{port}")), "{log}");
    assert!(dir.path().join(".burrow/state").is_dir());
}

#[test]
fn the_hello_example_is_accepted() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello");
    let state = tempfile::tempdir().expect("tempdir");
    let persist = state.path().join("state");
    let log = run_briefly(&["dev", text(&example), "--persist-to", text(&persist)]);
    assert!(!log.contains("WARN"), "{log}");
    assert!(
        log.contains("env.VISITS (KV Namespace): hello-visits"),
        "{log}"
    );
    assert!(persist.is_dir());
}

#[test]
fn several_configs_environments_and_json_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = write(
        dir.path(),
        "api/wrangler.toml",
        "name = \"api\"\n[[services]]\nbinding = \"AUTH\"\nservice = \"auth\"\n\
         [env.staging]\nservices = [{ binding = \"AUTH\", service = \"auth\" }]\n",
    );
    let auth = write(dir.path(), "auth/wrangler.json", "{ \"name\": \"auth\" }");
    let log = run_briefly(&[
        "--log-format",
        "json",
        "dev",
        "-c",
        text(&api),
        "-c",
        text(&auth),
        "--env",
        "staging",
        "--persist-to",
        text(&dir.path().join("state")),
    ]);
    for line in log.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
    assert!(log.contains("api-staging"), "{log}");
    // auth has no env.staging and no environments at all: a warning, not an error.
    assert!(log.contains("no environment named"), "{log}");

    let output = burrow(&["dev", "-c", text(&api), "--env", "prod"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no environment named \"prod\""),
        "{}",
        stderr(&output)
    );
}

#[test]
fn serve_needs_a_config_and_a_token_for_a_public_admin_listener() {
    let output = burrow(&["serve"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--config"), "{}", stderr(&output));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        "wrangler.toml",
        "name = \"prod\"\n[burrow]\nadmin_address = \"0.0.0.0:8788\"\ndata_dir = \"data\"\n",
    );
    let output = burrow(&["serve", "--config", text(&config)]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("BURROW_API_TOKEN"),
        "{}",
        stderr(&output)
    );

    let message = stderr(&output);
    assert!(
        message.contains("0.0.0.0:8788 is not a loopback address"),
        "{message}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "refused before creating anything"
    );

    // `dev` keeps the same rule: an admin API open to the network needs a token.
    let output = burrow(&["dev", "-c", text(&config)]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("BURROW_API_TOKEN"),
        "{}",
        stderr(&output)
    );

    // With a token it starts. Port 0 keeps the test off fixed ports; nothing is sent to the
    // wildcard address.
    let mut command = Command::new(env!("CARGO_BIN_EXE_burrow"));
    command
        .args(["serve", "--config", text(&config), "--port", "0"])
        .args(["--admin-address", "0.0.0.0:0"])
        .env("BURROW_API_TOKEN", "a-long-enough-secret-token")
        .env("RUST_LOG", "warn,burrow=info");
    let server = start(&mut command);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(dir.path().join("data").is_dir());
}

#[test]
fn later_subcommands_say_they_are_not_available() {
    let output = burrow(&["sql", "--object", "x", "SELECT 1"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output).trim(),
        "burrow sql: not yet available in this build"
    );
}
