//! Crash safety: a child process appends blocks (and now and then truncates
//! a few) in a loop with durable commits and is killed with SIGKILL at random
//! moments. After every kill the store must reopen holding exactly a prefix
//! of the deterministic chain: every acknowledged write is there, the write
//! in flight is either wholly there or wholly absent, and `verify` finds
//! every index consistent with the data.
//!
//! The child is this test binary itself, re-executed with
//! `COLDCHAIN_MDBX_CRASH_CHILD=<dir>` to run only [`crash_child`]; it prints
//! `BEGIN_*` before each write and `ACK_*` after the write transaction has
//! committed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::B256;
use coldchain::{
    BlockData, ColdRead, ColdWrite, Deadline, HeaderSpec,
    testing::{ChainShape, TestRng, test_block},
};
use coldchain_mdbx::{MdbxBackend, MdbxOptions};
use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tempfile::TempDir;

const CHILD_ENV: &str = "COLDCHAIN_MDBX_CRASH_CHILD";
const SEED: u64 = 0x0C4A_54ED;
const SHAPE: ChainShape = ChainShape { max_txs: 12, max_logs: 4, addresses: 8, topics: 12 };
const KILLS: u32 = 24;

fn d() -> Deadline {
    Deadline::after("crash-test", Duration::from_secs(60))
}

/// The deterministic chain, generated lazily.
#[derive(Default)]
struct Chain(Vec<BlockData>);

impl Chain {
    fn block(&mut self, n: u64) -> &BlockData {
        while self.0.len() as u64 <= n {
            let parent = self.0.last().map_or(B256::ZERO, BlockData::hash);
            let next = self.0.len() as u64;
            self.0.push(test_block(next, parent, SEED, SHAPE));
        }
        &self.0[n as usize]
    }
}

/// The child: appends (and sometimes truncates) until it is killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        // A short journal and a fanout of 2: flushes into index runs and
        // compactions happen every few writes, so kills land in them too.
        let options = MdbxOptions {
            journal_keep: 6,
            journal_max: 20,
            run_fanout: 2,
            ..MdbxOptions::for_tests()
        };
        let mut backend = MdbxBackend::open(&dir, options).unwrap();
        let mut rng = TestRng::new(u64::from(std::process::id()));
        let mut out = std::io::stdout();
        loop {
            let tip = backend.tip(d()).await.unwrap();
            match tip {
                Some(tip) if tip.number >= 8 && rng.below(8) == 0 => {
                    let cut = tip.number - 1 - rng.below(4);
                    writeln!(out, "BEGIN_TRUNCATE {cut}").unwrap();
                    out.flush().unwrap();
                    backend.truncate_above(cut, d()).await.unwrap();
                    writeln!(out, "ACK_TRUNCATE {cut}").unwrap();
                }
                _ => {
                    let (mut next, mut parent) =
                        tip.map_or((0, B256::ZERO), |t| (t.number + 1, t.hash));
                    let count = 1 + rng.below(6);
                    let mut blocks = Vec::new();
                    for _ in 0..count {
                        let b = test_block(next, parent, SEED, SHAPE);
                        parent = b.hash();
                        next += 1;
                        blocks.push(b);
                    }
                    let (first, last) = (next - count, next - 1);
                    writeln!(out, "BEGIN_APPEND {first} {last}").unwrap();
                    out.flush().unwrap();
                    backend.append_blocks(blocks, d()).await.unwrap();
                    writeln!(out, "ACK_APPEND {last}").unwrap();
                }
            }
            out.flush().unwrap();
        }
    });
}

/// What the child's output says about the store: the acknowledged tip and
/// the tip the write in flight (if any) would leave.
#[derive(Debug, Clone, Copy)]
struct Expect {
    acked: Option<u64>,
    in_flight: Option<Option<u64>>,
}

fn parse(lines: &[String], mut acked: Option<u64>) -> Expect {
    let mut in_flight = None;
    for line in lines {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| parts.get(i).and_then(|s| s.parse::<u64>().ok());
        match parts.first().copied() {
            Some("BEGIN_APPEND") => in_flight = Some(num(2)),
            Some("BEGIN_TRUNCATE") => in_flight = Some(num(1)),
            Some("ACK_APPEND") | Some("ACK_TRUNCATE") => {
                acked = num(1);
                in_flight = None;
            }
            _ => {}
        }
    }
    Expect { acked, in_flight }
}

#[test]
fn crash_kill9_keeps_a_consistent_prefix() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let started = Instant::now();
    let dir = TempDir::new().unwrap();
    let exe = std::env::current_exe().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut chain = Chain::default();
    let mut rng = TestRng::new(7);
    let mut acked: Option<u64> = None;
    let mut in_flight_seen = 0;
    let mut mid_write = 0;
    let mut truncations = 0;
    for kill in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            })
        };
        // Wait for the first acknowledged write, then kill at a random moment.
        let wait_start = Instant::now();
        while !lines.lock().unwrap().iter().any(|l| l.starts_with("ACK_")) {
            assert!(wait_start.elapsed() < Duration::from_secs(30), "the child never wrote");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_micros(rng.below(60_000)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let lines = lines.lock().unwrap().clone();
        truncations += lines.iter().filter(|l| l.starts_with("ACK_TRUNCATE")).count();
        let expect = parse(&lines, acked);

        let backend = MdbxBackend::open(dir.path(), MdbxOptions::for_tests()).unwrap();
        let tip = rt.block_on(backend.tip(d())).unwrap().map(|t| t.number);
        let allowed = match expect.in_flight {
            Some(result) => vec![expect.acked, result],
            None => vec![expect.acked],
        };
        assert!(
            allowed.contains(&tip),
            "kill {kill}: store tip {tip:?}, expected one of {allowed:?} (acknowledged tip \
             {:?}, write in flight leaves {:?})",
            expect.acked,
            expect.in_flight
        );
        if expect.in_flight.is_some() {
            mid_write += 1;
            if tip != expect.acked {
                in_flight_seen += 1;
            }
        }
        // Exactly a prefix of the chain: every header, and the last blocks in
        // full.
        if let Some(tip) = tip {
            for n in 0..=tip {
                let h = rt.block_on(backend.header(HeaderSpec::Number(n), d())).unwrap();
                assert_eq!(
                    h.map(|h| h.hash()),
                    Some(chain.block(n).hash()),
                    "kill {kill}: block {n}"
                );
            }
            for n in tip.saturating_sub(2)..=tip {
                let block = chain.block(n).clone();
                let spec = HeaderSpec::Number(n);
                assert_eq!(
                    rt.block_on(backend.block_receipts(spec, d())).unwrap(),
                    Some(block.stored_receipts()),
                    "kill {kill}: receipts of block {n}"
                );
                assert_eq!(
                    rt.block_on(backend.block_transactions(spec, d())).unwrap(),
                    Some(block.transactions.clone()),
                    "kill {kill}: transactions of block {n}"
                );
            }
        }
        let above = tip.map_or(0, |t| t + 1);
        assert_eq!(
            rt.block_on(backend.header(HeaderSpec::Number(above), d())).unwrap(),
            None,
            "kill {kill}: nothing above the tip"
        );
        let report = backend.verify().unwrap();
        assert!(report.is_ok(), "kill {kill}: {report}");
        assert_eq!(report.tip, tip, "kill {kill}: verify's tip");
        acked = tip;
    }
    eprintln!(
        "crash test: {KILLS} kills, final tip {acked:?}, {mid_write} kills during a write \
         ({in_flight_seen} of them after it committed), {truncations} truncations acknowledged, \
         {:.1?}",
        started.elapsed()
    );
    assert!(acked.is_some_and(|t| t > 20), "the chain should have grown: {acked:?}");
}
