//! `coldchain verify`: checks that every index entry of an embedded store
//! agrees with the data.

use crate::store::{Access, StoreSpec};
use eyre::{Result, bail};

/// Arguments of `coldchain verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The embedded store to check.
    #[arg(long, default_value = "./coldchain-data")]
    pub store: StoreSpec,
    /// Open the store read-only (chosen by itself when its directory
    /// cannot be written).
    #[arg(long)]
    pub read_only: bool,
}

/// Runs `coldchain verify`; fails when the store is inconsistent.
pub async fn run(args: VerifyArgs) -> Result<()> {
    let StoreSpec::Path(path) = &args.store else {
        bail!("verify checks an embedded store (a path); {} is not one", args.store);
    };
    let access = if args.read_only || crate::store::read_only_media(path).await {
        Access::ReadOnly
    } else {
        Access::Open
    };
    let backend = crate::store::open_embedded(path, access).await?;
    eprintln!("verifying {} (reads every block and index entry)...", path.display());
    let (report, usage, tables) = tokio::task::spawn_blocking(move || {
        Ok::<_, coldchain_mdbx::MdbxError>((
            backend.verify()?,
            backend.disk_usage()?,
            backend.table_sizes()?,
        ))
    })
    .await??;
    println!("{report}");
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    println!(
        "space: file {:.1} MiB, pages in use {:.1} MiB (page size {} B)",
        mib(usage.file_bytes),
        mib(usage.used_bytes),
        usage.page_size
    );
    for table in tables {
        println!(
            "  {:<15} {:>12} entries {:>10.1} MiB",
            table.name,
            table.entries,
            mib(table.bytes)
        );
    }
    if !report.is_ok() {
        bail!("{} problems found in {}", report.problem_count, path.display());
    }
    Ok(())
}
