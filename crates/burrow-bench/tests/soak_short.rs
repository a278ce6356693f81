//! A short crash soak in CI: `burrow-bench soak --cycles 3` against the debug build of
//! examples/soak, which must end with a RESULT line reporting no violation.

use std::path::Path;
use std::process::Command;

#[test]
fn three_kill_restart_cycles_lose_nothing() {
    let test_binary = std::env::current_exe().expect("the test's path");
    // target/<profile>/deps/<test> → target/<profile>/examples/soak
    let app = test_binary
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps")
        .join("examples/soak");
    assert!(
        app.is_file(),
        "{} is missing: build the examples first (cargo build -p burrow-sdk --examples)",
        app.display()
    );
    let scratch = tempfile::tempdir().expect("scratch");
    let output = Command::new(env!("CARGO_BIN_EXE_burrow-bench"))
        .args(["soak", "--cycles", "3", "--app"])
        .arg(&app)
        .arg("--dir")
        .arg(scratch.path())
        .output()
        .expect("run burrow-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "burrow-bench soak failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let result = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with("RESULT soak "))
        .unwrap_or_else(|| panic!("no RESULT line:\n{stdout}"));
    let field = |name: &str| -> u64 {
        result
            .split(' ')
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from {result:?}"))
    };
    assert_eq!(field("cycles"), 3, "{result}");
    assert!(field("acked_ops") > 0, "{result}");
    for violation in [
        "lost_ops",
        "partial_txns",
        "duplicate_activations",
        "queue_lost",
        "workflow_double_steps",
    ] {
        assert_eq!(field(violation), 0, "{violation}: {result}\n{stderr}");
    }
}
