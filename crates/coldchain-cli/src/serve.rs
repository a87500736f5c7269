//! `coldchain serve`: Ethereum JSON-RPC over the store.

use crate::store::StoreSpec;
use eyre::Result;

/// Arguments of `coldchain serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The store: a path (embedded), `postgres://...`, or `mem`.
    #[arg(long, default_value = "./coldchain-data")]
    pub store: StoreSpec,
}

/// Runs `coldchain serve`.
pub async fn run(args: ServeArgs) -> Result<()> {
    eyre::bail!("serve is not implemented yet (store {})", args.store)
}
