//! The store's chain id: the column `coldchain.meta.chain_id` (`bigint`,
//! NULL until recorded; a chain id above `i64::MAX` is stored as the `i64`
//! of the same 64 bits). The column is added on open when missing, outside
//! the versioned migrations: it is additive, servers of an older build
//! never read it and keep working on the same database, so it needs no
//! schema version.

use coldchain::{ColdError, ColdResult, Deadline};
use tokio_postgres::types::ToSql;

use crate::{
    PostgresBackend,
    conn::{Conn, write_begin},
    error::{PgError, corrupt, db_err},
    rows::col,
};

const READ: &str = "SELECT chain_id FROM coldchain.meta";
/// A compare-and-set in one statement: the row lock serializes writers, and
/// one that waited re-reads the committed row.
const SET: &str = "UPDATE coldchain.meta SET chain_id = COALESCE(chain_id, $1) RETURNING chain_id";

/// Whether `meta.chain_id` exists.
pub(crate) async fn has_column(
    client: &impl tokio_postgres::GenericClient,
) -> Result<bool, PgError> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = 'coldchain' \
             AND table_name = 'meta' AND column_name = 'chain_id'",
            &[],
        )
        .await?
        .is_some())
}

/// Adds `meta.chain_id` if the database lacks it; inside the migration
/// transaction (under its advisory lock). Looks first, so that an open
/// takes no table lock when the column is there.
pub(crate) async fn add_column(txn: &tokio_postgres::Transaction<'_>) -> Result<(), PgError> {
    if !has_column(txn).await? {
        txn.batch_execute("ALTER TABLE coldchain.meta ADD COLUMN chain_id bigint").await?;
    }
    Ok(())
}

/// The chain id of a `meta.chain_id` value.
fn of_row(rows: &[tokio_postgres::Row]) -> ColdResult<Option<u64>> {
    let Some(row) = rows.first() else { return Err(corrupt("the meta row is missing")) };
    Ok(col::<Option<i64>>(row, 0)?.map(|id| id as u64))
}

impl PostgresBackend {
    pub(crate) async fn read_chain_id(&self, deadline: &Deadline) -> ColdResult<Option<u64>> {
        of_row(&self.read1(deadline, READ, &[]).await?)
    }

    pub(crate) async fn write_chain_id(
        &self,
        chain_id: u64,
        deadline: &Deadline,
    ) -> ColdResult<()> {
        // The same 64 bits: every u64 has one i64 and back.
        let value = chain_id as i64;
        let stored = deadline
            .run(async {
                let mut conn = Conn::get(&self.inner.write_pool, deadline).await?;
                let rows = {
                    let client = conn.client();
                    let err = |e| db_err(e, deadline);
                    let set = client.prepare_cached(SET).await.map_err(err)?;
                    let begin = write_begin(deadline)?;
                    let params: [&(dyn ToSql + Sync); 1] = [&value];
                    let (_, rows, _) = futures::try_join!(
                        client.batch_execute(&begin),
                        client.query(&set, &params),
                        client.batch_execute("COMMIT"),
                    )
                    .map_err(err)?;
                    rows
                };
                conn.clean();
                of_row(&rows)
            })
            .await?;
        match stored {
            Some(stored) if stored == chain_id => Ok(()),
            Some(stored) => Err(ColdError::ChainIdMismatch { stored, given: chain_id }),
            None => Err(corrupt("the chain id was not recorded")),
        }
    }
}
