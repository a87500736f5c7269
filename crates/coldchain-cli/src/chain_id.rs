//! The store's chain id: where it comes from, and `coldchain chain-id`.
//!
//! A store records one chain id, at its first write by a command that
//! knows it, and keeps it for good:
//!
//! | writer | the chain id |
//! |---|---|
//! | `import rpc`, `serve --import-rpc` | the node's `eth_chainId` |
//! | `import era1` | the archives' network: the `<network>` of `<network>-<epoch>-<hash>.era1` (`mainnet` 1, `sepolia` 11155111; block 0's hash must be that network's genesis), or `--chain-id` |
//! | `import jsonl` | `--chain-id`; without it, the store keeps what it has (a store without one stays without) |
//! | `synth`, `serve --dev` | W1's, 1 |
//! | `chain-id --set N` | N |
//!
//! Offering another chain's id to a store that records one is refused
//! before anything is written, naming both ids. `serve` answers the
//! recorded id for `eth_chainId` and `net_version`; its `--chain-id` must
//! agree with it. An id is never changed: a store holds one chain's blocks,
//! so another chain needs another store. A store written before chain ids
//! were recorded gets one from the next import that knows it, or from
//! `coldchain chain-id --set N`.

use crate::{
    import::ImportError,
    store::{OnBackend, StoreSpec, run_on},
};
use coldchain::{ColdBackend, ColdStorage};
use eyre::Result;

/// Arguments of `coldchain chain-id`.
#[derive(Debug, clap::Args)]
pub struct ChainIdArgs {
    /// The store: a path (embedded), `postgres://...`, or `mem`.
    #[arg(long, default_value = "./coldchain-data")]
    pub store: StoreSpec,
    /// Record this chain id in a store that has none (a store written
    /// before chain ids were recorded). A store that records another id is
    /// left unchanged and the command fails: an id is never changed.
    #[arg(long)]
    pub set: Option<u64>,
}

/// Runs `coldchain chain-id`: prints the store's chain id (`none` when it
/// records none), after recording `--set`.
pub async fn run(args: ChainIdArgs) -> Result<()> {
    let store = args.store.clone();
    let id = run_on(&store, ChainId(args.set)).await?;
    match id {
        Some(id) => println!("{id}"),
        None => println!("none"),
    }
    Ok(())
}

struct ChainId(Option<u64>);

impl OnBackend for ChainId {
    type Output = Option<u64>;

    async fn run<B: ColdBackend>(self, backend: B, store: &StoreSpec) -> Result<Option<u64>> {
        let handle = ColdStorage::new(backend).await?;
        let result = async {
            if let Some(id) = self.0 {
                claim(&handle, id, "--set").await?;
                tracing::info!(%store, chain_id = id, "chain id recorded");
            }
            Ok(handle.chain_id().await?)
        }
        .await;
        handle.shutdown().await;
        result
    }
}

/// Records `id` (taken from `source`, e.g. `the node's eth_chainId`) as the
/// store's chain id, or checks it against the recorded one; a mismatch is
/// an error naming both ids and the source.
pub async fn claim<B: ColdBackend>(
    handle: &ColdStorage<B>,
    id: u64,
    source: &str,
) -> Result<(), ImportError> {
    handle
        .set_chain_id(id)
        .await
        .map_err(|e| ImportError::store(format!("chain id {id} ({source})"), e))
}

/// Refuses a `--chain-id` of `serve` that disagrees with the store's.
pub fn check_flag(stored: Option<u64>, flag: Option<u64>, store: &StoreSpec) -> Result<()> {
    match (stored, flag) {
        (Some(stored), Some(flag)) if stored != flag => eyre::bail!(
            "--chain-id {flag} disagrees with the store {store}, which holds chain {stored}; \
             drop --chain-id (the store's id is served) or serve another store"
        ),
        _ => Ok(()),
    }
}

/// The chain id `serve` answers: the store's; a `--chain-id` that disagrees
/// is an error. A store that records none answers `--chain-id`, else 1,
/// with a warning that says how to record it.
pub fn served(stored: Option<u64>, flag: Option<u64>, store: &StoreSpec) -> Result<u64> {
    check_flag(stored, flag, store)?;
    match (stored, flag) {
        (Some(stored), _) => Ok(stored),
        (None, flag) => {
            let id = flag.unwrap_or(1);
            tracing::warn!(
                %store,
                "the store records no chain id (written before chain ids were recorded, or \
                 only by `import jsonl` without --chain-id); serving chain id {id}{}. Record \
                 it with `coldchain chain-id --store {store} --set <ID>`",
                if flag.is_some() { " from --chain-id" } else { " (the default)" }
            );
            Ok(id)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn served_chain_id() {
        let store = StoreSpec::Mem;
        assert_eq!(served(Some(5), None, &store).unwrap(), 5);
        assert_eq!(served(Some(5), Some(5), &store).unwrap(), 5);
        let err = served(Some(5), Some(1), &store).unwrap_err().to_string();
        assert!(err.contains("--chain-id 1") && err.contains("holds chain 5"), "{err}");
        assert_eq!(served(None, Some(7), &store).unwrap(), 7);
        assert_eq!(served(None, None, &store).unwrap(), 1);
    }
}
