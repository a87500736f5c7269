//! Opening a store: options, environment, tables, format checks.

use crate::{
    error::MdbxError,
    journal::{JOURNAL_KEEP, JOURNAL_MAX},
    layout::{FORMAT_VERSION, MAGIC, META_MAGIC, META_VERSION, table},
};
use coldchain::{ColdError, ColdResult};
use signet_libmdbx::{
    Database, DatabaseFlags, Environment, EnvironmentFlags, Geometry, Mode, Rw,
    SyncMode as RawSync, WriteFlags, sys::PageSize, tx::Tx,
};
use std::{
    borrow::Cow,
    path::{Path, PathBuf},
    sync::{Arc, atomic::AtomicBool},
};

/// How durable a commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Every commit is flushed to disk before it returns (MDBX
    /// `SYNC_DURABLE`): an acknowledged write survives a power loss.
    #[default]
    Durable,
    /// Each commit flushes its data but not the meta page (MDBX
    /// `NOMETASYNC`): one flush per commit instead of two. A crash of the
    /// process loses nothing; a power loss may undo the last commit, never
    /// corrupt the store.
    NoMetaSync,
    /// Commits are not flushed; the OS writes them back later (MDBX
    /// `SAFE_NOSYNC`). A crash of the process loses nothing; a power loss or
    /// kernel crash may lose the last commits but never corrupts the store
    /// (it rolls back to the last durable commit).
    SafeNoSync,
}

/// Options of [`crate::MdbxBackend::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdbxOptions {
    /// Commit durability; [`SyncMode::Durable`] by default.
    pub sync: SyncMode,
    /// Create the store when the directory or its data file is missing
    /// (default `true`). With `false` a missing store is
    /// [`MdbxError::Missing`], and a data file that holds no coldchain
    /// tables (emptied or truncated) is [`MdbxError::ForeignFormat`] naming
    /// it: commands that only read never create an empty store in its place.
    pub create: bool,
    /// Open the store read-only (MDBX `RDONLY`; default `false`): nothing in
    /// the directory is created or changed, so a store on read-only media
    /// (a read-only mount, a snapshot) can be read, and every write answers
    /// [`coldchain::ColdError::ReadOnly`]. Implies not creating: a missing
    /// or empty store is an error as with `create: false`.
    pub read_only: bool,
    /// Largest size the data file may grow to, in bytes (default 4 TiB). The
    /// file grows as needed in steps of [`Self::growth_step`].
    pub max_size: usize,
    /// Growth step of the data file, in bytes (default 16 MiB: the file
    /// exceeds the data by less than that).
    pub growth_step: usize,
    /// Page size of a new store, in bytes: a power of two from 4,096 to
    /// 65,536 (default 8,192). An existing store keeps the page size it was
    /// created with. Receipts average ~500 bytes, so a page ends with part
    /// of one left unused: on W1, 8 KiB pages take 3% less space than 4 KiB
    /// (bulk appends a little faster, one-block durable appends a little
    /// slower; see docs/BENCHMARKS.md).
    pub page_size: usize,
    /// Most concurrent read transactions (default 256): at least the
    /// handle's read and stream permits, plus headroom.
    pub max_readers: u64,
    /// Threads that run point reads and most log queries (default: two per
    /// core, at least 4; see `pool.rs`). More only help when reads wait for
    /// the disk: on a cached store, two per core gave 4–35% more point reads
    /// a second than four (docs/BENCHMARKS.md).
    pub read_threads: usize,
    /// Newest blocks kept in the index journal after a flush (default 64):
    /// truncations of up to this many blocks never touch the index runs.
    /// See the [crate docs](crate#the-index-journal).
    pub journal_keep: u64,
    /// Journal length that triggers a flush of its oldest blocks into a new
    /// index run (default 256; at least `journal_keep + 1`).
    pub journal_max: u64,
    /// How many index runs of one level are compacted into one run of the
    /// next (default 4; at least 2). See the
    /// [crate docs](crate#index-runs).
    pub run_fanout: usize,
    /// Runs of this level are not compacted further (default 3: with the
    /// other defaults, runs of up to 12,288 blocks; at most 7). It bounds
    /// the longest compaction, which holds the writer; higher levels mean
    /// fewer runs for a whole-chain log query to probe.
    pub run_max_level: u8,
}

impl Default for MdbxOptions {
    fn default() -> Self {
        Self {
            sync: SyncMode::Durable,
            create: true,
            read_only: false,
            max_size: 4 << 40,
            growth_step: 16 << 20,
            page_size: 8192,
            max_readers: 256,
            read_threads: std::thread::available_parallelism().map_or(4, |n| 2 * n.get()).max(4),
            journal_keep: JOURNAL_KEEP,
            journal_max: JOURNAL_MAX,
            run_fanout: 4,
            run_max_level: 3,
        }
    }
}

impl MdbxOptions {
    /// Small growth steps, for tests that open many stores.
    pub fn for_tests() -> Self {
        Self { growth_step: 1 << 20, max_size: 64 << 30, ..Self::default() }
    }

    /// [`Self::for_tests`] with a tiny index journal (flushes every few
    /// blocks) and a fanout of 2, so that tests exercise the journal, runs
    /// and compactions of several levels together.
    pub fn for_tests_small_journal() -> Self {
        Self { journal_keep: 2, journal_max: 5, run_fanout: 2, ..Self::for_tests() }
    }
}

/// Handles of every table, valid for the environment's lifetime.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tables {
    pub(crate) meta: Database,
    pub(crate) headers: Database,
    pub(crate) block_extras: Database,
    pub(crate) block_hashes: Database,
    pub(crate) block_txs: Database,
    pub(crate) tx_blocks: Database,
    pub(crate) transactions: Database,
    pub(crate) receipts: Database,
    /// By index run level.
    pub(crate) tx_hashes: [Database; table::LEVELS],
    /// By index run level.
    pub(crate) log_index: [Database; table::LEVELS],
    pub(crate) journal: Database,
    pub(crate) receipt_blooms: Database,
    pub(crate) runs: Database,
}

/// The shared state of a backend: the environment and its tables.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) env: Environment,
    pub(crate) tables: Tables,
    pub(crate) path: PathBuf,
    /// Journal blocks kept after a flush.
    pub(crate) journal_keep: u64,
    /// Journal length that triggers a flush.
    pub(crate) journal_max: u64,
    /// Runs of one level compacted together.
    pub(crate) run_fanout: usize,
    /// Level of runs that are not compacted further.
    pub(crate) run_max_level: u8,
    /// Opened read-only: writes are refused before MDBX sees them.
    pub(crate) read_only: bool,
    /// The file's growth step, in bytes: less room than this on the device
    /// means the next growth fails.
    pub(crate) growth_step: u64,
    /// Set when index maintenance may have work left (at open, and after a
    /// flush or compaction failed): the next append runs it even if the
    /// journal is not full.
    pub(crate) maintenance_due: AtomicBool,
}

const DATA_FILE: &str = "mdbx.dat";
const LOCK_FILE: &str = "mdbx.lck";

impl Store {
    /// Opens (or creates) the store at `path`.
    pub(crate) fn open(path: &Path, options: &MdbxOptions) -> Result<Arc<Self>, MdbxError> {
        // Options first: bad ones leave the file system untouched.
        if !options.page_size.is_power_of_two() || !(4096..=65536).contains(&options.page_size) {
            return Err(MdbxError::Options(format!(
                "page size {} is not a power of two from 4096 to 65536",
                options.page_size
            )));
        }
        let path = path.to_path_buf();
        let not_writable = |source| MdbxError::NotWritable { path: path.clone(), source };
        let foreign = |reason: String| MdbxError::ForeignFormat { path: path.clone(), reason };

        if path.exists() && !path.is_dir() {
            return Err(foreign("it is a file, not a directory".into()));
        }
        let data = path.join(DATA_FILE);
        let create = options.create && !options.read_only;
        if !create {
            let missing = |reason: String| MdbxError::Missing { path: path.clone(), reason };
            if !path.exists() {
                return Err(missing("the directory does not exist".into()));
            }
            match std::fs::metadata(&data) {
                Err(_) => return Err(missing(format!("the directory has no {DATA_FILE}"))),
                Ok(meta) if meta.len() == 0 => {
                    return Err(foreign(format!(
                        "{} is empty (truncated?); restore it from a backup or import again \
                         into a new directory",
                        data.display()
                    )));
                }
                Ok(_) => {}
            }
        }
        if !options.read_only {
            prepare_dir(&path, &data)?;
        }

        let mode = match options.sync {
            _ if options.read_only => Mode::ReadOnly,
            SyncMode::Durable => Mode::ReadWrite { sync_mode: RawSync::Durable },
            SyncMode::NoMetaSync => Mode::ReadWrite { sync_mode: RawSync::NoMetaSync },
            SyncMode::SafeNoSync => Mode::ReadWrite { sync_mode: RawSync::SafeNoSync },
        };
        let growth = isize::try_from(options.growth_step).unwrap_or(isize::MAX);
        let env = Environment::builder()
            .set_max_dbs(table::COUNT + 2)
            .set_max_readers(options.max_readers)
            .set_flags(EnvironmentFlags { mode, ..Default::default() })
            .set_geometry(Geometry {
                size: Some(0..options.max_size),
                growth_step: Some(growth),
                shrink_threshold: Some(growth.saturating_mul(4)),
                page_size: Some(PageSize::Set(options.page_size)),
            })
            .open(&path)
            .map_err(|e| match e {
                signet_libmdbx::MdbxError::Invalid
                | signet_libmdbx::MdbxError::VersionMismatch
                | signet_libmdbx::MdbxError::Corrupted
                | signet_libmdbx::MdbxError::BadSignature => {
                    foreign(format!("{DATA_FILE} is not a readable MDBX file ({e})"))
                }
                signet_libmdbx::MdbxError::Access | signet_libmdbx::MdbxError::Permission
                    if !options.read_only =>
                {
                    not_writable(std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))
                }
                other => MdbxError::Mdbx(other),
            })?;

        let tables = if options.read_only {
            let txn = env.begin_ro_unsync()?;
            let tables = init_tables(&txn, &path, None)?;
            // A read transaction's table handles outlive it once it ends.
            txn.commit()?;
            tables
        } else {
            let txn = env.begin_rw_unsync()?;
            let fresh = |name: &str, flags| txn.create_db(Some(name), flags).map_err(Into::into);
            let tables = init_tables(&txn, &path, create.then_some(&fresh))?;
            if let Some(fresh) = tables.1 {
                txn.put(fresh.meta, META_MAGIC, MAGIC, WriteFlags::empty())?;
                txn.put(
                    fresh.meta,
                    META_VERSION,
                    FORMAT_VERSION.to_be_bytes(),
                    WriteFlags::empty(),
                )?;
            }
            txn.commit()?;
            tables
        };
        let journal_max = options.journal_max.max(options.journal_keep + 1);
        Ok(Arc::new(Self {
            env,
            tables: tables.0,
            path,
            journal_keep: options.journal_keep,
            journal_max,
            run_fanout: options.run_fanout.max(2),
            run_max_level: options.run_max_level.min(table::LEVELS as u8 - 1),
            read_only: options.read_only,
            growth_step: options.growth_step as u64,
            // A process stopped between a flush and its compactions leaves
            // them due: the first append looks.
            maintenance_due: AtomicBool::new(true),
        }))
    }

    /// The error of a failed write, as the caller should see it: an I/O
    /// failure on a full device is [`ColdError::StorageFull`] naming the
    /// store (MDBX reports `ENOSPC` as an unknown error code, and a full
    /// device can also surface as `EIO` or a failure to grow the file).
    pub(crate) fn write_failed(&self, err: ColdError) -> ColdError {
        let code = match &err {
            ColdError::Backend(source) => match source.downcast_ref::<MdbxError>() {
                Some(MdbxError::Mdbx(e)) => e.to_err_code(),
                _ => return err,
            },
            _ => return err,
        };
        let full = match code {
            ENOSPC | EDQUOT => true,
            // Other I/O failures while the device has no room for one more
            // growth step of the file.
            _ => free_bytes(&self.path).is_some_and(|free| free < self.growth_step),
        };
        if full {
            return ColdError::StorageFull { store: self.path.display().to_string() };
        }
        err
    }

    /// A write transaction, or [`ColdError::ReadOnly`] on a store opened
    /// read-only.
    pub(crate) fn begin_write(&self) -> ColdResult<Tx<Rw>> {
        if self.read_only {
            return Err(ColdError::ReadOnly { store: self.path.display().to_string() });
        }
        self.env.begin_rw_unsync().map_err(crate::error::raw)
    }
}

/// `ENOSPC`: no space left on the device.
const ENOSPC: i32 = 28;
/// `EDQUOT`: the user's disk quota is exhausted.
const EDQUOT: i32 = 122;

/// Bytes available to this user on the file system that holds `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Creates the store's directory when missing, refuses to create a store
/// among someone else's files, and checks that the directory is writable.
fn prepare_dir(path: &Path, data: &Path) -> Result<(), MdbxError> {
    let not_writable = |source| MdbxError::NotWritable { path: path.to_path_buf(), source };
    std::fs::create_dir_all(path).map_err(not_writable)?;
    if !data.exists() {
        let others: Vec<String> = std::fs::read_dir(path)
            .map_err(not_writable)?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name != LOCK_FILE)
            .take(3)
            .collect();
        if !others.is_empty() {
            return Err(MdbxError::ForeignFormat {
                path: path.to_path_buf(),
                reason: format!(
                    "the directory is not empty and has no {DATA_FILE} (found {})",
                    others.join(", ")
                ),
            });
        }
    }
    // Writability: MDBX would fail too, but with a less helpful message.
    let probe = path.join(".coldchain-write-probe");
    std::fs::write(&probe, b"").map_err(not_writable)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Whether the store directory `path` cannot be written (a read-only mount,
/// `EROFS`, or a directory this user may not write), so that a command
/// that only reads should open it read-only. A missing path is not.
pub fn on_read_only_media(path: &Path) -> bool {
    let probe = path.join(".coldchain-write-probe");
    match std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(e) => {
            e.kind() == std::io::ErrorKind::ReadOnlyFilesystem
                || (e.kind() == std::io::ErrorKind::PermissionDenied && path.is_dir())
        }
    }
}

/// The tables of a new store's file, created by `create`: the second
/// element of [`init_tables`]'s answer.
type Created = Option<Tables>;

/// Creates a table in a new store's file.
type CreateTable<'a> = &'a dyn Fn(&str, DatabaseFlags) -> Result<Database, MdbxError>;

/// Checks the format of the store in `txn` and opens its tables; in an
/// empty file, creates them with `create` (`None`: an empty file is an
/// error). Returns the tables, and them again when they were just created
/// (the caller then writes the magic and version).
fn init_tables<K: signet_libmdbx::TransactionKind>(
    txn: &Tx<K>,
    path: &Path,
    create: Option<CreateTable<'_>>,
) -> Result<(Tables, Created), MdbxError> {
    let foreign = |reason: String| MdbxError::ForeignFormat { path: path.to_path_buf(), reason };
    let main = txn.open_db(None)?;
    // The main table lists the named tables.
    let mut names = Vec::new();
    {
        let mut cursor = txn.cursor(main)?;
        let mut item = cursor.first::<Cow<'_, [u8]>, ()>()?;
        while let Some((name, ())) = item {
            names.push(String::from_utf8_lossy(&name).into_owned());
            item = cursor.next::<Cow<'_, [u8]>, ()>()?;
        }
    }
    let fresh = names.is_empty();
    let create = match create {
        Some(create) if fresh => Some(create),
        _ if fresh => {
            // MDBX set up a new database in a file too short to hold one.
            return Err(foreign(format!(
                "{} holds no coldchain tables (truncated or damaged); restore it from a \
                 backup or import again into a new directory",
                path.join(DATA_FILE).display()
            )));
        }
        _ => None,
    };
    if !fresh {
        if !names.iter().any(|n| n == table::META) {
            return Err(foreign(format!(
                "it is an MDBX store of another application (tables {})",
                names.join(", ")
            )));
        }
        let meta = txn.open_db(Some(table::META))?;
        let magic: Option<Vec<u8>> = txn.get(meta.dbi(), META_MAGIC)?;
        if magic.as_deref() != Some(MAGIC) {
            return Err(foreign("its meta table has no coldchain magic".into()));
        }
        let version: Option<[u8; 4]> = txn
            .get(meta.dbi(), META_VERSION)
            .map_err(|_| foreign("its format version is malformed".into()))?;
        let Some(version) = version.map(u32::from_be_bytes) else {
            return Err(foreign("its meta table has no format version".into()));
        };
        if version > FORMAT_VERSION {
            return Err(MdbxError::NewerVersion {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if version < FORMAT_VERSION {
            return Err(MdbxError::OlderVersion {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
    }
    let open = |name: &str| -> Result<Database, MdbxError> {
        let flags = if table::TX_HASHES.contains(&name) {
            DatabaseFlags::DUP_SORT | DatabaseFlags::DUP_FIXED
        } else {
            DatabaseFlags::empty()
        };
        match create {
            Some(create) => create(name, flags),
            None => txn.open_db(Some(name)).map_err(|e| match e {
                signet_libmdbx::MdbxError::NotFound => {
                    foreign(format!("table `{name}` is missing"))
                }
                other => MdbxError::Mdbx(other),
            }),
        }
    };
    let per_level =
        |names: &[&str; table::LEVELS]| -> Result<[Database; table::LEVELS], MdbxError> {
            let mut out = Vec::with_capacity(table::LEVELS);
            for name in names {
                out.push(open(name)?);
            }
            out.try_into().map_err(|_| MdbxError::Corrupt("table count".into()))
        };
    let tables = Tables {
        meta: open(table::META)?,
        headers: open(table::HEADERS)?,
        block_extras: open(table::BLOCK_EXTRAS)?,
        block_hashes: open(table::BLOCK_HASHES)?,
        block_txs: open(table::BLOCK_TXS)?,
        tx_blocks: open(table::TX_BLOCKS)?,
        transactions: open(table::TRANSACTIONS)?,
        receipts: open(table::RECEIPTS)?,
        tx_hashes: per_level(&table::TX_HASHES)?,
        log_index: per_level(&table::LOG_INDEX)?,
        journal: open(table::JOURNAL)?,
        receipt_blooms: open(table::RECEIPT_BLOOMS)?,
        runs: open(table::RUNS)?,
    };
    Ok((tables, create.is_some().then_some(tables)))
}
