//! `coldchain bench --scale`: how ingest and reads change as the store grows.
//!
//! One chain is ingested as I2 (100 blocks per write) up to the largest
//! size. At each size of `--scale` the ingest stops and the query ops of
//! `--ops` run on the store as it is then (see [`measure`]), followed, when
//! `--ops` holds I1, by [`SCALE_I1_BLOCKS`] blocks appended one per write.
//! Q5 and R1 and I1 append blocks too, so a later size is reached with a
//! few hundred fewer I2 blocks; ingest rates count I2's writes only.
//!
//! The report holds the curve: the sustained I2 rate in each tenth of the
//! ingest (by the store's size when the write started) and since the
//! previous size, and at each size the bytes on disk per block, the load
//! average and the op figures. Memory stays bounded: blocks are generated
//! per write, and [`Targets`] keeps block hashes (32 bytes per block) and a
//! bounded sample of tx hashes.

use super::{
    BatchWrite, BenchArgs, OnBackend, Op, OpResult, Shared, Targets, append_batches, append_singly,
    bench_handle, flush_page_cache, machine, measure, store_kind, w1_params,
};
use crate::store::{StoreSpec, disk_usage, run_on, settle};
use coldchain::{ColdBackend, ColdStorage};
use coldchain_w1::W1;
use eyre::{Result, WrapErr, bail};
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, sync::Arc};

/// Blocks appended one per write (I1) at each size.
pub const SCALE_I1_BLOCKS: u64 = 200;

/// A stretch of the ingest: the I2 writes that started while the store held
/// `from..to` blocks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IngestSlice {
    /// Blocks in the store at the start of the stretch.
    pub from: u64,
    /// Blocks in the store at its end (exclusive).
    pub to: u64,
    /// I2 blocks written in it.
    pub blocks: u64,
    /// Time of those writes, seconds.
    pub seconds: f64,
    /// Sustained rate: `blocks / seconds` (0 without writes).
    pub rate: f64,
}

/// The figures at one store size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Blocks in the store when the ops started.
    pub blocks: u64,
    /// Bytes on disk per block, where measurable.
    pub bytes_per_block: Option<f64>,
    /// Load average (1, 5, 15 min) when the ops started.
    pub loadavg: String,
    /// I2 since the previous size.
    pub ingest: IngestSlice,
    /// Figures per op at this size.
    pub results: Vec<OpResult>,
}

/// The whole scale report, as `--json` writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleReport {
    /// The command line.
    pub command: String,
    /// The store kind.
    pub store: String,
    /// Transactions per block.
    pub txs_per_block: u64,
    /// The sizes asked for.
    pub sizes: Vec<u64>,
    /// Cores, build and load when the run started.
    pub machine: BTreeMap<String, String>,
    /// Load average when the run ended.
    pub loadavg_end: String,
    /// The sustained I2 rate per tenth of the ingest up to the largest size.
    pub ingest_tenths: Vec<IngestSlice>,
    /// Figures at each size.
    pub checkpoints: Vec<Checkpoint>,
}

/// Runs `coldchain bench --scale`.
pub async fn run(args: BenchArgs) -> Result<()> {
    if args.scale.first().is_none_or(|&s| s < 200) || args.scale.windows(2).any(|w| w[0] >= w[1]) {
        bail!("--scale needs increasing sizes of at least 200 blocks, e.g. 5000,50000,250000");
    }
    let store = args.store.clone();
    let json = args.json.clone();
    let report = run_on(&store, Scale(args)).await?;
    print_report(&report);
    if let Some(path) = &json {
        write_json(path, &report)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Writes `report` to `path` (after each size too, so that a run stopped
/// early, or failing for want of disk, leaves the curve measured so far).
fn write_json(path: &std::path::Path, report: &ScaleReport) -> Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(report)?)
        .wrap_err_with(|| format!("writing {}", path.display()))
}

struct Scale(BenchArgs);

impl OnBackend for Scale {
    type Output = ScaleReport;

    fn creates(&self) -> bool {
        true
    }

    async fn run<B: ColdBackend>(self, backend: B, store: &StoreSpec) -> Result<ScaleReport> {
        let args = self.0;
        let largest = args.scale.last().copied().unwrap_or_default();
        let handle = bench_handle(backend, store).await?;
        let w1 = W1::try_new(w1_params(&args, largest))?;
        handle.set_chain_id(w1.params().chain_id).await?;
        let start = w1.numbers().start;
        let targets = Arc::new(Shared::new(Targets::new(start, args.seed)));
        let machine = machine();
        flush_page_cache().await;
        let mut writes = Vec::new();
        let mut report = ScaleReport {
            command: std::env::args().collect::<Vec<_>>().join(" "),
            store: store_kind(store),
            txs_per_block: args.txs_per_block,
            sizes: args.scale.clone(),
            machine,
            loadavg_end: String::new(),
            ingest_tenths: Vec::new(),
            checkpoints: Vec::new(),
        };
        for &size in &args.scale {
            let before = targets.lock().len();
            eprintln!("bench --scale: appending W1 blocks {before}..{size}, 100 per write");
            append_batches(&handle, &w1, &targets, start + size, &mut writes).await?;
            let at = checkpoint(&handle, store, &targets, &args, before, &writes).await?;
            report.checkpoints.push(at);
            report.loadavg_end = loadavg();
            report.ingest_tenths = tenths(&writes, largest);
            if let Some(path) = &args.json {
                write_json(path, &report)?;
            }
        }
        handle.shutdown().await;
        report.loadavg_end = loadavg();
        Ok(report)
    }
}

/// Measures the store at its current size; the ingest since `since` blocks
/// is reported with it.
async fn checkpoint<B: ColdBackend>(
    handle: &ColdStorage<B>,
    store: &StoreSpec,
    targets: &Arc<Shared<Targets>>,
    args: &BenchArgs,
    since: u64,
    writes: &[BatchWrite],
) -> Result<Checkpoint> {
    let blocks = targets.lock().len();
    settle(store).await;
    let bytes_per_block = disk_usage(store).await.map(|b| b as f64 / blocks as f64);
    let ingest = slice(writes, since, blocks);
    let loadavg = loadavg();
    eprintln!(
        "bench --scale: {blocks} blocks, I2 {:.0} blocks/s since {since}, load {loadavg}; measuring",
        ingest.rate
    );
    // A generator of this length, for the queries that depend on it (Q3's
    // topic is in the middle block); blocks do not depend on the length.
    let sized = Arc::new(W1::try_new(w1_params(args, blocks))?);
    let mut results = measure(handle, &sized, targets, args).await?;
    if args.ops.contains(&Op::I1) {
        results.push(append_singly(handle, &sized, targets, SCALE_I1_BLOCKS).await?);
    }
    Ok(Checkpoint { blocks, bytes_per_block, loadavg, ingest, results })
}

/// The I2 writes that started while the store held `from..to` blocks.
fn slice(writes: &[BatchWrite], from: u64, to: u64) -> IngestSlice {
    let (blocks, seconds) = writes
        .iter()
        .filter(|w| (from..to).contains(&w.offset))
        .fold((0, 0.0), |(b, s), w| (b + w.blocks, s + w.elapsed.as_secs_f64()));
    let rate = if seconds > 0.0 { blocks as f64 / seconds } else { 0.0 };
    IngestSlice { from, to, blocks, seconds, rate }
}

/// [`slice`]s of the ten tenths of `0..total`.
fn tenths(writes: &[BatchWrite], total: u64) -> Vec<IngestSlice> {
    (0..10).map(|i| slice(writes, total * i / 10, total * (i + 1) / 10)).collect()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The headline figure of a result: its rate, or else its median latency.
fn headline(r: &OpResult) -> String {
    match r.rate {
        Some(rate) => format!("{rate:.0}"),
        None => format!("{:.3}", r.median_ms),
    }
}

fn print_report(report: &ScaleReport) {
    println!(
        "W1 bench --scale: store={} txs/block={} machine={:?} load at end {}",
        report.store, report.txs_per_block, report.machine, report.loadavg_end
    );
    println!("\nI2 sustained rate per tenth of the ingest:");
    println!("{:>10} {:>10} {:>8} {:>10} {:>12}", "from", "to", "blocks", "seconds", "blocks/s");
    for t in &report.ingest_tenths {
        println!(
            "{:>10} {:>10} {:>8} {:>10.2} {:>12.0}",
            t.from, t.to, t.blocks, t.seconds, t.rate
        );
    }
    let sizes: Vec<String> = report.checkpoints.iter().map(|c| c.blocks.to_string()).collect();
    println!("\nat each size: rate (blocks/s, ops/s, logs/s) or median ms, then p99 ms:");
    print!("{:<22}", "blocks");
    sizes.iter().for_each(|s| print!(" {s:>18}"));
    println!();
    let row = |name: &str, cell: &dyn Fn(&Checkpoint) -> String| {
        print!("{name:<22}");
        report.checkpoints.iter().for_each(|c| print!(" {:>18}", cell(c)));
        println!();
    };
    row("KiB on disk per block", &|c| {
        c.bytes_per_block.map(|b| format!("{:.1}", b / 1024.0)).unwrap_or_default()
    });
    row("I2 since previous", &|c| format!("{:.0}", c.ingest.rate));
    row("load average", &|c| c.loadavg.clone());
    let mut ops: Vec<&str> = Vec::new();
    for c in &report.checkpoints {
        for r in &c.results {
            if !ops.contains(&r.op.as_str()) {
                ops.push(&r.op);
            }
        }
    }
    for op in ops {
        let unit = report
            .checkpoints
            .iter()
            .flat_map(|c| &c.results)
            .find(|r| r.op == op && r.rate.is_some())
            .map_or("ms", |r| r.unit.as_str());
        row(&format!("{op} ({unit})"), &|c| {
            c.results
                .iter()
                .find(|r| r.op == op)
                .map(|r| format!("{} {:.3}", headline(r), r.p99_ms))
                .unwrap_or_default()
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn write(offset: u64, blocks: u64, ms: u64) -> BatchWrite {
        BatchWrite { offset, blocks, elapsed: Duration::from_millis(ms) }
    }

    #[test]
    fn tenths_rate_the_writes_that_started_in_them() {
        // 1,000 blocks, 100 per write: five writes of 100 ms from 0, then 50
        // blocks appended otherwise (not counted), four writes of 200 ms
        // from 550, and a last write of 50 blocks in 50 ms at 950.
        let mut writes: Vec<BatchWrite> = (0..5).map(|i| write(i * 100, 100, 100)).collect();
        writes.extend((0..4).map(|i| write(550 + i * 100, 100, 200)));
        writes.push(write(950, 50, 50));
        let t = tenths(&writes, 1_000);
        assert_eq!(t.len(), 10);
        assert_eq!((t[0].from, t[0].to, t[0].blocks), (0, 100, 100));
        assert!((t[0].rate - 1_000.0).abs() < 1e-9, "{:?}", t[0]);
        // The write at 550 belongs to the tenth it started in.
        assert_eq!((t[5].from, t[5].to, t[5].blocks), (500, 600, 100));
        assert!((t[5].rate - 500.0).abs() < 1e-9, "{:?}", t[5]);
        assert_eq!((t[9].from, t[9].to, t[9].blocks), (900, 1_000, 50));
        assert!((t[9].rate - 1_000.0).abs() < 1e-9, "{:?}", t[9]);
        // Every I2 block is counted once, the others not at all.
        assert_eq!(t.iter().map(|t| t.blocks).sum::<u64>(), 950);
        // A stretch without writes has rate 0, not NaN.
        let empty = slice(&writes, 2_000, 3_000);
        assert_eq!((empty.blocks, empty.rate), (0, 0.0));
        // Since a previous size: the writes from 500 on.
        let s = slice(&writes, 500, 1_000);
        assert_eq!(s.blocks, 450);
        assert!((s.seconds - 0.85).abs() < 1e-9);
        assert!((s.rate - 450.0 / 0.85).abs() < 1e-9);
    }

    #[test]
    fn the_json_holds_the_curve() {
        let writes = [write(0, 100, 100), write(100, 100, 200)];
        let op = super::super::figures("Q2", &[Duration::from_millis(2)], None, "");
        let report = ScaleReport {
            command: "coldchain bench --scale 100,200".into(),
            store: "mem".into(),
            txs_per_block: 150,
            sizes: vec![100, 200],
            machine: BTreeMap::from([("cores".to_string(), "2".to_string())]),
            loadavg_end: "1.00 0.50 0.25".into(),
            ingest_tenths: tenths(&writes, 200),
            checkpoints: vec![Checkpoint {
                blocks: 200,
                bytes_per_block: Some(1024.0),
                loadavg: "1.00 0.50 0.25".into(),
                ingest: slice(&writes, 100, 200),
                results: vec![op],
            }],
        };
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        // What scripts/plot_scale.py reads.
        assert_eq!(json["sizes"], serde_json::json!([100, 200]));
        let tenths = json["ingest_tenths"].as_array().unwrap();
        assert_eq!(tenths.len(), 10);
        assert_eq!(tenths[0]["from"], 0);
        assert_eq!(tenths[0]["to"], 20);
        assert_eq!(tenths[0]["rate"], 1_000.0);
        assert_eq!(tenths[5]["rate"], 500.0);
        assert_eq!(tenths[1]["rate"], 0.0);
        let c = &json["checkpoints"][0];
        assert_eq!(c["blocks"], 200);
        assert_eq!(c["bytes_per_block"], 1024.0);
        assert_eq!(c["ingest"]["blocks"], 100);
        assert_eq!(c["results"][0]["op"], "Q2");
        assert_eq!(c["results"][0]["median_ms"], 2.0);
        assert!(c["results"][0]["rate"].is_null());
        assert_eq!(json["machine"]["cores"], "2");
        // And it reads back.
        let back: ScaleReport = serde_json::from_value(json).unwrap();
        assert_eq!(back.ingest_tenths, report.ingest_tenths);
    }
}
