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
    for op in ["I1", "I2", "Q1", "Q2", "Q3", "Q4", "Q4u", "Q5", "Q6", "R1 truncate", "R1 drain"] {
        assert!(stdout.lines().any(|l| l.starts_with(op)), "{op} missing:\n{stdout}");
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["blocks"], 220);
    assert_eq!(report["results"].as_array().unwrap().len(), 11);
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
fn bench_scale_measures_at_each_size_and_writes_the_curve() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("scale.json");
    let out = coldchain()
        .args(["bench", "--store", "mem", "--scale", "200,600", "--txs-per-block", "10"])
        .args(["--runs", "1", "--seconds", "0.1", "--tasks", "4", "--ops", "I1,Q1,Q2,Q3,Q4,Q4u"])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("I2 sustained rate per tenth"), "{stdout}");
    for op in ["Q1 (ms)", "Q4 (ops/s)", "Q4u (ops/s)", "I1 (blocks/s)"] {
        assert!(stdout.lines().any(|l| l.starts_with(op)), "{op} missing:\n{stdout}");
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let tenths = report["ingest_tenths"].as_array().unwrap();
    assert_eq!(tenths.len(), 10);
    assert!(tenths.iter().all(|t| t["rate"].as_f64().unwrap() >= 0.0));
    let checkpoints = report["checkpoints"].as_array().unwrap();
    // I1 appended 200 blocks after the first size; I2 the rest to the second.
    let blocks: Vec<u64> = checkpoints.iter().map(|c| c["blocks"].as_u64().unwrap()).collect();
    assert_eq!(blocks, [200, 600]);
    assert_eq!(checkpoints[1]["ingest"]["blocks"], 200);
    for c in checkpoints {
        let ops: Vec<&str> =
            c["results"].as_array().unwrap().iter().map(|r| r["op"].as_str().unwrap()).collect();
        assert_eq!(ops, ["Q1", "Q2", "Q3", "Q4", "Q4u", "I1"]);
    }
    // Q2 finds more logs on the longer chain.
    let q2_logs = |c: &serde_json::Value| c["results"][1]["extra"]["logs (last query)"].as_f64();
    assert!(q2_logs(&checkpoints[1]) >= q2_logs(&checkpoints[0]));
}

#[test]
fn bench_refuses_bad_arguments_with_a_clear_error() {
    let out = coldchain().args(["bench", "--store", "mem", "--blocks", "10"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--blocks >= 200"));
    let out = coldchain().args(["bench", "--ops", "Q9"]).output().unwrap();
    assert!(!out.status.success());
    let out = coldchain().args(["bench", "--scale", "500,400"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("increasing sizes"));
}
