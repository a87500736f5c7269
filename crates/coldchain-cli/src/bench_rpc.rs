//! `coldchain bench-rpc`: a rate sweep against a running server.
//!
//! Open loop, as cross-client RPC benchmarks measure: at each step the
//! requests are due at a fixed rate whatever the server does, and a
//! request's latency counts from when it was due, so time spent queued
//! behind a slow server (on the client's connections or in the server) is
//! latency too and the sweep does not hide an overload by slowing down
//! (no coordinated omission). Each step reports the offered rate, the
//! throughput of good answers, p50 and p99 of good answers, and what the
//! server shed (HTTP 429/503, JSON-RPC overload errors) or what timed out;
//! the knee is the last step that still kept up.
//!
//! Targets come from the server itself: random 100-block windows of the
//! W1 hot contract for `eth_getLogs` (the Q1 query of WORKLOAD.md), random
//! stored blocks for `eth_getBlockReceipts`, and transaction hashes of
//! 2,000 random stored blocks for `eth_getTransactionReceipt`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use coldchain_client::{ClientConfig, ClientError, HttpClient};
use coldchain_w1::{W1, W1Params, W1Rng};
use eyre::{Result, WrapErr, bail, eyre};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{Value, json};

/// A method the sweep can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum SweepMethod {
    /// `eth_getLogs` over a random window of `--window` blocks.
    #[value(name = "eth_getLogs")]
    #[serde(rename = "eth_getLogs")]
    GetLogs,
    /// `eth_getBlockReceipts` of a random stored block.
    #[value(name = "eth_getBlockReceipts")]
    #[serde(rename = "eth_getBlockReceipts")]
    BlockReceipts,
    /// `eth_getTransactionReceipt` of a random stored transaction.
    #[value(name = "eth_getTransactionReceipt")]
    #[serde(rename = "eth_getTransactionReceipt")]
    TransactionReceipt,
}

impl SweepMethod {
    fn name(self) -> &'static str {
        match self {
            Self::GetLogs => "eth_getLogs",
            Self::BlockReceipts => "eth_getBlockReceipts",
            Self::TransactionReceipt => "eth_getTransactionReceipt",
        }
    }
}

/// Arguments of `coldchain bench-rpc`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchRpcArgs {
    /// The server's JSON-RPC HTTP endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    pub url: String,
    /// Methods to sweep, one after another.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "eth_getLogs,eth_getBlockReceipts,eth_getTransactionReceipt"
    )]
    pub methods: Vec<SweepMethod>,
    /// Offered request rates of the steps, requests per second, in order.
    #[arg(long, value_delimiter = ',', default_value = "50,100,200,400,800,1600,3200,6400")]
    pub rates: Vec<u32>,
    /// Seconds per step.
    #[arg(long, default_value_t = 10.0)]
    pub step_seconds: f64,
    /// Requests in flight at most. Below the server's
    /// `--max-connections-per-ip` (default 32): the HTTP client may open a
    /// new connection before a finished one is back in its pool, and the
    /// server answers 429 past its limit.
    #[arg(long, default_value_t = 24)]
    pub connections: usize,
    /// A request unanswered this many seconds after it was due counts as
    /// timed out.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Steps to run past the knee before moving to the next method.
    #[arg(long, default_value_t = 1)]
    pub steps_past_knee: usize,
    /// The `eth_getLogs` address (default: W1's hot contract).
    #[arg(long)]
    pub address: Option<Address>,
    /// Blocks per `eth_getLogs` window.
    #[arg(long, default_value_t = 100)]
    pub window: u64,
    /// Random blocks whose transactions are the targets of
    /// `eth_getTransactionReceipt`.
    #[arg(long, default_value_t = 2_000)]
    pub sample_blocks: u64,
    /// Seed of the target draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The figures of one step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Requests per second offered.
    pub offered: u32,
    /// Requests sent.
    pub sent: u64,
    /// Good answers (a JSON-RPC result).
    pub ok: u64,
    /// Good answers per second of the step.
    pub throughput: f64,
    /// Median latency of good answers, ms (from when each was due).
    pub p50_ms: f64,
    /// 99th percentile latency of good answers, ms.
    pub p99_ms: f64,
    /// Answers that shed load: HTTP 429 or 503, or JSON-RPC -32005.
    pub shed: u64,
    /// Other JSON-RPC errors (a deadline, a limit), by count.
    pub rpc_errors: u64,
    /// Requests unanswered within `--timeout` of when they were due.
    pub timeouts: u64,
    /// Connection and protocol failures.
    pub failures: u64,
}

/// The sweep of one method.
#[derive(Debug, Clone, Serialize)]
pub struct MethodSweep {
    /// The method.
    pub method: SweepMethod,
    /// Its steps, in order.
    pub steps: Vec<Step>,
    /// The offered rate of the last step that kept up (see [`kept_up`]).
    pub knee: Option<u32>,
}

/// The whole report, as `--json` writes it.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    /// The command line.
    pub command: String,
    /// The endpoint.
    pub url: String,
    /// Stored blocks, first and last.
    pub blocks: (u64, u64),
    /// Cores of the machine (the client shares them with a local server).
    pub cores: usize,
    /// Per method.
    pub methods: Vec<MethodSweep>,
}

/// Whether a step kept up: at least 95% of the offered rate came back as
/// good answers, and p99 stayed within four times the first step's p99
/// (and at most one second).
pub fn kept_up(step: &Step, first: &Step) -> bool {
    let enough = step.throughput >= 0.95 * f64::from(step.offered);
    let baseline = first.p99_ms.max(1.0);
    enough && step.p99_ms <= (4.0 * baseline).min(1_000.0).max(baseline)
}

/// What the sweep draws its requests from.
struct Targets {
    first: u64,
    last: u64,
    address: Address,
    window: u64,
    tx_hashes: Vec<String>,
}

impl Targets {
    fn request(&self, method: SweepMethod, rng: &mut W1Rng) -> Value {
        let span = self.last - self.first + 1;
        match method {
            SweepMethod::GetLogs => {
                let window = self.window.clamp(1, span);
                let from = self.first + rng.next_u64() % (span - window + 1);
                json!([{
                    "fromBlock": format!("{from:#x}"),
                    "toBlock": format!("{:#x}", from + window - 1),
                    "address": self.address,
                }])
            }
            SweepMethod::BlockReceipts => {
                json!([format!("{:#x}", self.first + rng.next_u64() % span)])
            }
            SweepMethod::TransactionReceipt => {
                let i = (rng.next_u64() % self.tx_hashes.len() as u64) as usize;
                json!([self.tx_hashes[i]])
            }
        }
    }
}

/// Runs `coldchain bench-rpc`.
pub async fn run(args: BenchRpcArgs) -> Result<SweepReport> {
    if args.rates.is_empty() || args.rates.contains(&0) {
        bail!("--rates needs positive request rates");
    }
    if !(args.step_seconds > 0.0 && args.timeout > 0.0) {
        bail!("--step-seconds and --timeout must be positive");
    }
    let config = ClientConfig {
        timeout: Duration::from_secs_f64(args.timeout),
        concurrency: args.connections.max(1),
        max_response_bytes: 256 << 20,
        ..ClientConfig::default()
    };
    let client = Arc::new(HttpClient::with_config(&args.url, &config)?);
    let targets = Arc::new(discover(&client, &args).await?);
    eprintln!(
        "{}: blocks {}..={}, {} transaction hashes drawn",
        args.url,
        targets.first,
        targets.last,
        targets.tx_hashes.len()
    );
    let mut rng = W1Rng::new(args.seed);
    let mut methods = Vec::new();
    for &method in &args.methods {
        let mut steps: Vec<Step> = Vec::new();
        let mut past_knee = 0;
        for &rate in &args.rates {
            let step = run_step(&client, &targets, method, rate, &args, &mut rng).await;
            print_step(method, &step);
            let kept = steps.first().is_none_or(|first| kept_up(&step, first));
            steps.push(step);
            if !kept {
                past_knee += 1;
                if past_knee > args.steps_past_knee {
                    break;
                }
            }
        }
        let knee = knee_of(&steps);
        match knee {
            Some(k) => eprintln!("{}: knee at {k} requests/s", method.name()),
            None => eprintln!("{}: did not keep up even at the first step", method.name()),
        }
        methods.push(MethodSweep { method, steps, knee });
    }
    let report = SweepReport {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        url: args.url.clone(),
        blocks: (targets.first, targets.last),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        methods,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .wrap_err_with(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(report)
}

/// The offered rate of the last step before the first that did not keep
/// up.
pub fn knee_of(steps: &[Step]) -> Option<u32> {
    let first = steps.first()?;
    if !kept_up(first, first) {
        return None;
    }
    steps.iter().take_while(|s| kept_up(s, first)).last().map(|s| s.offered)
}

async fn discover(client: &HttpClient, args: &BenchRpcArgs) -> Result<Targets> {
    let number = |v: &Value| -> Result<u64> {
        v.as_str()
            .and_then(|s| s.strip_prefix("0x"))
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .ok_or_else(|| eyre!("not a quantity: {v}"))
    };
    let last = number(&client.call::<Value>("eth_blockNumber", json!([])).await?)?;
    let earliest: Value = client.call("eth_getBlockByNumber", json!(["earliest", false])).await?;
    let first = number(&earliest["number"]).wrap_err("the earliest block")?;
    if last < first {
        bail!("{} stores no blocks", args.url);
    }
    // Transactions of many blocks, so that receipts by hash are not all
    // served from a few hot blocks (the handle caches 128 blocks' receipts).
    let mut rng = W1Rng::new(args.seed ^ 0x5eed);
    let numbers: Vec<u64> = (0..args.sample_blocks.max(1))
        .map(|_| first + rng.next_u64() % (last - first + 1))
        .collect();
    let blocks: Vec<Value> = futures::stream::iter(numbers)
        .map(|n| client.call::<Value>("eth_getBlockByNumber", json!([format!("{n:#x}"), false])))
        .buffer_unordered(args.connections.clamp(1, 8))
        .try_collect()
        .await?;
    let tx_hashes: Vec<String> = blocks
        .iter()
        .filter_map(|b| b["transactions"].as_array())
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    if tx_hashes.is_empty() && args.methods.contains(&SweepMethod::TransactionReceipt) {
        bail!(
            "{} random blocks of {} hold no transaction to ask receipts of",
            args.sample_blocks,
            args.url
        );
    }
    let address = args.address.unwrap_or_else(|| W1::new(W1Params::default()).hot_contract());
    Ok(Targets { first, last, address, window: args.window, tx_hashes })
}

/// How one request ended.
enum Outcome {
    Ok(Duration),
    Shed,
    RpcError,
    Timeout,
    Failure,
}

async fn run_step(
    client: &Arc<HttpClient>,
    targets: &Arc<Targets>,
    method: SweepMethod,
    rate: u32,
    args: &BenchRpcArgs,
    rng: &mut W1Rng,
) -> Step {
    let count = (f64::from(rate) * args.step_seconds).ceil().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let timeout = Duration::from_secs_f64(args.timeout);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let params = targets.request(method, rng);
        let client = Arc::clone(client);
        tasks.spawn(async move {
            let due = due.into_std();
            let call = client.call::<Value>(method.name(), params);
            match tokio::time::timeout_at((due + timeout).into(), call).await {
                Ok(Ok(_)) => Outcome::Ok(due.elapsed()),
                Ok(Err(e)) => classify(&e),
                Err(_) => Outcome::Timeout,
            }
        });
    }
    let mut latencies = Vec::with_capacity(count as usize);
    let (mut shed, mut rpc_errors, mut timeouts, mut failures) = (0, 0, 0, 0);
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Outcome::Ok(latency)) => latencies.push(latency),
            Ok(Outcome::Shed) => shed += 1,
            Ok(Outcome::RpcError) => rpc_errors += 1,
            Ok(Outcome::Timeout) => timeouts += 1,
            Ok(Outcome::Failure) | Err(_) => failures += 1,
        }
    }
    // Good answers over the step's length: a server that falls behind
    // answers the step's requests after it, which lowers this.
    let elapsed = start.elapsed().as_secs_f64().max(args.step_seconds);
    latencies.sort_unstable();
    Step {
        offered: rate,
        sent: count,
        ok: latencies.len() as u64,
        throughput: latencies.len() as f64 / elapsed,
        p50_ms: percentile_ms(&latencies, 0.50),
        p99_ms: percentile_ms(&latencies, 0.99),
        shed,
        rpc_errors,
        timeouts,
        failures,
    }
}

fn classify(e: &ClientError) -> Outcome {
    match e {
        ClientError::Http { status: 429 | 503, .. } => Outcome::Shed,
        ClientError::Rpc { code: -32005, .. } => Outcome::Shed,
        ClientError::Rpc { .. } => Outcome::RpcError,
        ClientError::Timeout { .. } => Outcome::Timeout,
        _ => Outcome::Failure,
    }
}

/// The `q` quantile of sorted latencies, in ms (nearest rank); 0 if none.
fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

fn print_step(method: SweepMethod, s: &Step) {
    eprintln!(
        "{:<26} offered {:>6}/s  ok {:>8.1}/s  p50 {:>8.2} ms  p99 {:>8.2} ms  shed {:>5}  errors {:>4}  timeouts {:>5}  failures {:>4}",
        method.name(),
        s.offered,
        s.throughput,
        s.p50_ms,
        s.p99_ms,
        s.shed,
        s.rpc_errors,
        s.timeouts,
        s.failures
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(offered: u32, throughput: f64, p99_ms: f64) -> Step {
        Step {
            offered,
            sent: 0,
            ok: 0,
            throughput,
            p50_ms: 0.0,
            p99_ms,
            shed: 0,
            rpc_errors: 0,
            timeouts: 0,
            failures: 0,
        }
    }

    #[test]
    fn the_knee_is_the_last_step_that_kept_up() {
        let steps = [
            step(100, 100.0, 5.0),
            step(200, 199.0, 6.0),
            step(400, 396.0, 19.0),
            step(800, 500.0, 900.0),
            step(1600, 600.0, 2_000.0),
        ];
        assert_eq!(knee_of(&steps), Some(400));
        // Latency alone marks the knee too: all answered, p99 up 5x.
        let steps = [step(100, 100.0, 5.0), step(200, 200.0, 25.0)];
        assert_eq!(knee_of(&steps), Some(100));
        // Throughput alone too: fast answers, a third shed.
        let steps = [step(100, 100.0, 5.0), step(200, 130.0, 5.0)];
        assert_eq!(knee_of(&steps), Some(100));
        assert_eq!(knee_of(&[step(100, 50.0, 5.0)]), None);
        assert_eq!(knee_of(&[]), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&ms, 0.5), 50.0);
        assert_eq!(percentile_ms(&ms, 0.99), 99.0);
        assert_eq!(percentile_ms(&ms[..1], 0.99), 1.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }
}
