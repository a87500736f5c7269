//! The schema, as embedded, versioned migrations applied on open.
//!
//! Everything lives in the schema `coldchain`. `coldchain.schema_version`
//! has one row per applied migration. Opening a database migrates it in one
//! transaction under an advisory lock (two servers opening one database at
//! once apply each migration once): the missing migrations are applied in
//! order, and a database whose highest version is newer than
//! [`SCHEMA_VERSION`] is refused.
//!
//! # Version 1
//!
//! ```text
//! meta(id bool PK = true, tip_number int8 NULL, tip_hash bytea NULL)
//!     one row; the tip, and the row every writer locks (FOR UPDATE)
//! blocks(number int8 PK, timestamp int8, hash bytea, header bytea)
//!     header = coldchain::codec header value; index blocks_hash (hash)
//! txs(block_number int8, hash8 int8, tx_index int4, first_log int4,
//!     n_logs int4, tx bytea, receipt bytea)   PK (block_number, tx_index)
//!     tx = coldchain::codec transaction value (sender + EIP-2718 bytes);
//!     receipt = this crate's compact receipt row (see `rows`);
//!     hash8 = first 8 bytes of the tx hash; index txs_hash8 (hash8)
//! logs(block_number int8, log_index int4, tx_index int4, address bytea,
//!      topic0..topic3 bytea NULL, data bytea, tx_hash bytea)
//!     btree logs_block (block_number)           truncation, block reads
//!     btree logs_address (address, block_number) address filters, streams
//!     btree logs_topic0 (topic0, block_number)   event signatures
//!     gin   logs_topics (array_remove(ARRAY[topic1, topic2, topic3], NULL))
//! ```
//!
//! # Version 2
//!
//! Topic columns (`topic0`..`topic3`) hold each topic's stored form
//! ([`coldchain::codec::compact_topic`]): a topic whose first 12 bytes are
//! zero (an address: every ERC-20 and ERC-721 `Transfer` has two) is stored
//! as its last 20 bytes, any other topic as 32. Every topic has exactly one
//! stored form, so a filter compares the stored forms of its topics, and
//! indexes on topics need no change. On W1 that is 24 bytes less per log
//! row, and the GIN index's entries shrink alike. The migration rewrites
//! the topics of existing rows in place (one pass over `logs`; its old row
//! versions are reclaimed by the next VACUUM). Stop the servers of schema
//! version 1 before a newer one opens the database: a running server does
//! not re-read the schema version, and would go on writing and querying
//! topics in 32 bytes.
//!
//! # Version 3
//!
//! `blocks.extras bytea NOT NULL`: the block's ommer (uncle) headers and
//! withdrawals ([`coldchain::codec::encode_extras`]). Earlier versions kept
//! neither. The migration fills the column for every stored block whose
//! header shows there was nothing to keep (the empty ommers hash, and no
//! withdrawals root or the empty one); if any stored block had ommers or
//! withdrawals, they are lost, and the migration is refused with
//! [`PgError::LostBlockData`] (nothing changes; re-import into a new
//! database). A database of version 2 keeps working with the older build.
//!
//! Why these indexes: a log filter's cost must follow its matches. An
//! address or an event signature has few distinct values and is queried
//! over block ranges, so those are B-trees on `(value, block_number)`: a
//! range is one index range scan in block order (streams need no sort), and
//! B-tree deduplication stores a hot contract's many entries in one block as
//! one key with a list of row ids. Topics 1–3 are mostly accounts and ids:
//! high cardinality, a handful of logs each, queried by equality. One GIN
//! index over the three stores each distinct value once with a compressed
//! list of the rows holding it in any of the three positions; a query adds
//! the array condition (`@>` / `&&`) to find candidates and keeps the exact
//! column condition for the position. That is a fraction of three B-trees
//! or hash indexes (each of which stores one entry per row). After each
//! append the backend merges the GIN pending list in the background (see
//! `upkeep.rs`), so queries never scan a long pending list. `logs_block` on
//! the block number alone
//! deduplicates to ~6 bytes per log.
//!
//! # The chain id column
//!
//! `meta.chain_id bigint NULL` (the store's chain id, see `chain_id.rs`) is
//! added on open when missing, after the migrations and outside them: it is
//! additive and older servers never read it, so it bumps no version.

use crate::error::PgError;
use alloy::consensus::{EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH};
use coldchain::{BlockExtras, codec};
use tokio_postgres::{Client, Transaction};

/// The newest schema version this build applies and reads.
pub const SCHEMA_VERSION: i32 = 3;

/// The embedded migrations, in order: (version, SQL).
pub const MIGRATIONS: &[(i32, &str)] = &[(1, V1), (2, V2), (3, V3)];

/// Advisory lock key serializing migrations ("coldchai" in ASCII).
const MIGRATION_LOCK: i64 = 0x636f_6c64_6368_6169;

const V1: &str = r#"
CREATE TABLE coldchain.meta (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    tip_number bigint,
    tip_hash bytea,
    CHECK ((tip_number IS NULL) = (tip_hash IS NULL))
);
INSERT INTO coldchain.meta (id) VALUES (true);

CREATE TABLE coldchain.blocks (
    number bigint PRIMARY KEY,
    timestamp bigint NOT NULL,
    hash bytea NOT NULL,
    header bytea NOT NULL
);
CREATE INDEX blocks_hash ON coldchain.blocks (hash);

CREATE TABLE coldchain.txs (
    block_number bigint NOT NULL,
    hash8 bigint NOT NULL,
    tx_index integer NOT NULL,
    first_log integer NOT NULL,
    n_logs integer NOT NULL,
    tx bytea NOT NULL,
    receipt bytea NOT NULL,
    PRIMARY KEY (block_number, tx_index)
);
CREATE INDEX txs_hash8 ON coldchain.txs (hash8);

CREATE TABLE coldchain.logs (
    block_number bigint NOT NULL,
    log_index integer NOT NULL,
    tx_index integer NOT NULL,
    address bytea NOT NULL,
    topic0 bytea,
    topic1 bytea,
    topic2 bytea,
    topic3 bytea,
    data bytea NOT NULL,
    tx_hash bytea NOT NULL
);
CREATE INDEX logs_block ON coldchain.logs (block_number);
CREATE INDEX logs_address ON coldchain.logs (address, block_number);
CREATE INDEX logs_topic0 ON coldchain.logs (topic0, block_number);
CREATE INDEX logs_topics ON coldchain.logs
    USING gin ((array_remove(ARRAY[topic1, topic2, topic3], NULL)));
"#;

const V2: &str = r#"
CREATE FUNCTION pg_temp.stored_topic(t bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN length(t) = 32 AND substr(t, 1, 12) = '\x000000000000000000000000'::bytea
                THEN substr(t, 13) ELSE t END
$$;
UPDATE coldchain.logs SET
    topic0 = pg_temp.stored_topic(topic0),
    topic1 = pg_temp.stored_topic(topic1),
    topic2 = pg_temp.stored_topic(topic2),
    topic3 = pg_temp.stored_topic(topic3)
WHERE pg_temp.stored_topic(topic0) IS DISTINCT FROM topic0
   OR pg_temp.stored_topic(topic1) IS DISTINCT FROM topic1
   OR pg_temp.stored_topic(topic2) IS DISTINCT FROM topic2
   OR pg_temp.stored_topic(topic3) IS DISTINCT FROM topic3;
DROP FUNCTION pg_temp.stored_topic(bytea);
"#;

const V3: &str = "ALTER TABLE coldchain.blocks ADD COLUMN extras bytea;";

/// Runs after [`V3`]'s SQL: fills `extras` of the blocks already stored (or
/// refuses, see the module docs), then makes the column mandatory.
async fn fill_extras(txn: &Transaction<'_>, found: i32) -> Result<(), PgError> {
    const BATCH: i32 = 10_000;
    let select = txn
        .prepare("SELECT number, header FROM coldchain.blocks WHERE extras IS NULL ORDER BY number")
        .await?;
    let portal = txn.bind(&select, &[]).await?;
    let update = "UPDATE coldchain.blocks b SET extras = v.e \
                  FROM unnest($1::int8[], $2::bytea[]) AS v(n, e) WHERE b.number = v.n";
    let (mut lost, mut first_lost) = (0u64, None);
    loop {
        let rows = txn.query_portal(&portal, BATCH).await?;
        if rows.is_empty() {
            break;
        }
        let mut numbers = Vec::with_capacity(rows.len());
        let mut values = Vec::with_capacity(rows.len());
        for row in &rows {
            let number: i64 = row.try_get(0)?;
            let header = codec::decode_header(row.try_get::<_, &[u8]>(1)?)
                .map_err(|e| PgError::Corrupt(format!("header of block {number}: {e}")))?;
            let no_ommers = header.ommers_hash == EMPTY_OMMER_ROOT_HASH;
            let no_withdrawals = header.withdrawals_root.is_none_or(|r| r == EMPTY_ROOT_HASH);
            if !(no_ommers && no_withdrawals) {
                lost += 1;
                first_lost.get_or_insert(header.number);
                continue;
            }
            numbers.push(number);
            values.push(codec::encode_extras(&BlockExtras::empty_for(&header)));
        }
        if first_lost.is_none() {
            txn.execute(update, &[&numbers, &values]).await?;
        }
    }
    // The open portal keeps `blocks` in use: close it before altering it.
    drop(portal);
    if let Some(first) = first_lost {
        return Err(PgError::LostBlockData { found, blocks: lost, first });
    }
    txn.batch_execute("ALTER TABLE coldchain.blocks ALTER COLUMN extras SET NOT NULL;").await?;
    Ok(())
}

/// Checks, without changing anything, that the schema is the one this
/// build reads (for a read-only open); returns its version.
pub(crate) async fn check(client: &Client) -> Result<i32, PgError> {
    let exists = client
        .query_one("SELECT to_regclass('coldchain.schema_version') IS NOT NULL", &[])
        .await?
        .try_get::<_, bool>(0)?;
    let current = if exists {
        let row =
            client.query_one("SELECT max(version) FROM coldchain.schema_version", &[]).await?;
        row.try_get::<_, Option<i32>>(0)?.unwrap_or(0)
    } else {
        0
    };
    if current > SCHEMA_VERSION {
        return Err(PgError::NewerSchema { found: current, supported: SCHEMA_VERSION });
    }
    if current < SCHEMA_VERSION || !crate::chain_id::has_column(client).await? {
        return Err(PgError::NeedsMigration { found: current, supported: SCHEMA_VERSION });
    }
    Ok(current)
}

/// Creates or upgrades the schema; returns the version now in force.
pub(crate) async fn migrate(client: &mut Client) -> Result<i32, PgError> {
    let txn = client.transaction().await?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    txn.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS coldchain;
         CREATE TABLE IF NOT EXISTS coldchain.schema_version (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now(),
             by_version text NOT NULL
         );",
    )
    .await?;
    let row = txn.query_one("SELECT max(version) FROM coldchain.schema_version", &[]).await?;
    let current: i32 = row.try_get::<_, Option<i32>>(0)?.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(PgError::NewerSchema { found: current, supported: SCHEMA_VERSION });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        txn.batch_execute(sql).await?;
        if *version == 3 {
            fill_extras(&txn, current).await?;
        }
        txn.execute(
            "INSERT INTO coldchain.schema_version (version, by_version) VALUES ($1, $2)",
            &[version, &env!("CARGO_PKG_VERSION")],
        )
        .await?;
        tracing::info!(version, "coldchain-postgres: applied schema migration");
    }
    crate::chain_id::add_column(&txn).await?;
    txn.commit().await?;
    Ok(SCHEMA_VERSION)
}
