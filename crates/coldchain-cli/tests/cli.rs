//! End-to-end runs of the `coldchain` binary on tiny chains.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

fn coldchain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_coldchain"))
}

#[test]
fn bench_runs_end_to_end_on_a_tiny_chain_and_compares() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let args = [
        "bench",
        "--store",
        "mem",
        "--blocks",
        "220",
        "--txs-per-block",
        "10",
        "--runs",
        "1",
        "--seconds",
        "0.2",
        "--tasks",
        "4",
    ];
    let out = coldchain().args(args).arg("--json").arg(&json).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for op in ["I1", "I2", "Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "R1 truncate", "R1 drain"] {
        assert!(stdout.lines().any(|l| l.starts_with(op)), "{op} missing:\n{stdout}");
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["blocks"], 220);
    assert_eq!(report["results"].as_array().unwrap().len(), 10);
    // --compare prints a ratio per figure.
    let out = coldchain()
        .args(args)
        .arg("--ops")
        .arg("Q2,Q3")
        .arg("--compare")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("ratios to the earlier run"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("Q2") && l.contains("median") && l.contains('x')));
}

#[test]
fn bench_refuses_bad_arguments_with_a_clear_error() {
    let out = coldchain().args(["bench", "--store", "mem", "--blocks", "10"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--blocks >= 200"));
    let out = coldchain().args(["bench", "--ops", "Q9"]).output().unwrap();
    assert!(!out.status.success());
}
