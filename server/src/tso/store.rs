//! The Raft log store and state machine of the TSO group, on disk.
//!
//! Both halves live in one redb file (conventionally `<state-dir>/raft.redb`,
//! [`FILE_NAME`]) opened once by [`open`]; redb locks the file, so a second
//! daemon on the same state directory is refused ([`StoreError::Locked`]).
//!
//! Durability is the point: the TSO must never hand out a timestamp at or
//! below one it handed out before, even after `SIGKILL` or power loss, and
//! that rests on the vote, the log and the fence surviving. So **every**
//! write — vote, append, truncate, purge, committed, applied state, snapshot
//! — is one redb write transaction committed with [`Durability::Immediate`]
//! (fsync) before the call returns; `append` reports
//! [`LogFlushed::log_io_completed`] only after that commit. The commits run
//! on tokio's blocking pool so an fsync never stalls a runtime worker;
//! redb admits one writer at a time, so writes land in call order even if a
//! caller stops waiting.
//!
//! Layout (format [`FORMAT_VERSION`], refused if different):
//! * table `log`: index (`u64`) → the entry as JSON;
//! * table `meta`: `format-version`, `vote`, `committed`, `last-purged`
//!   (log side), `applied` (state, last applied log id and membership),
//!   `snapshot-meta` and `snapshot-data` (state machine side), all JSON.
//!
//! The state machine persists its applied state on every `apply`, so a
//! restart resumes from it and the snapshot is only for catching up
//! followers. The fence it holds only rises along the log; the daemon reads
//! it through [`StateMachine::watch`].

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use redb::{
    Database, DatabaseError, Durability, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tsod_proto::Timestamp;

use super::raft::{Applied, Command, Lease, NodeId, TsoRaft, TsoState};
use super::reset::{PendingReset, ResetRecord, ResetVote, VoteOutcome};

/// The conventional name of the store inside the state directory.
pub const FILE_NAME: &str = "raft.redb";

/// The layout version this code writes and accepts.
pub const FORMAT_VERSION: u32 = 1;

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const KEY_FORMAT: &str = "format-version";
const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last-purged";
const KEY_APPLIED: &str = "applied";
const KEY_SNAPSHOT_META: &str = "snapshot-meta";
const KEY_SNAPSHOT_DATA: &str = "snapshot-data";

type RaftError = StorageError<NodeId>;
type AppliedMembership = StoredMembership<NodeId, BasicNode>;

/// Why the store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened or created (permissions, missing directory, I/O).
    #[error("cannot open or create the Raft store {path}: {source}; check the state directory and its permissions")]
    Open {
        /// The store file.
        path: PathBuf,
        /// What redb reported.
        source: DatabaseError,
    },
    /// Another process (or another open in this one) holds the file.
    #[error("the Raft store {path} is locked by another process; is another tsod running on this state directory?")]
    Locked {
        /// The store file.
        path: PathBuf,
    },
    /// The state directory could not be synced after opening the file in it.
    #[error("cannot fsync the state directory {dir}: {source}; check the file system")]
    SyncDirectory {
        /// The directory holding the store.
        dir: PathBuf,
        /// What the system reported.
        source: std::io::Error,
    },
    /// The file is not a valid store.
    #[error(
        "the Raft store {path} is corrupt ({detail}); move it aside: the site then rejoins with an empty store, which votes only once a leader has caught it up (a restored backup would bring back an old vote and log: never do that)"
    )]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The file was written with a layout this build does not know.
    #[error(
        "the Raft store {path} has format version {found}, this tsod reads version {supported}; \
         run the tsod that wrote it or migrate the store"
    )]
    UnsupportedFormat {
        /// The store file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A read or write failed after the store was opened.
    #[error("the Raft store failed: {0}")]
    Database(#[source] Box<redb::Error>),
    /// A stored record does not decode (or a record does not encode).
    #[error("a Raft store record is malformed: {0}; the store is corrupt")]
    Record(#[from] serde_json::Error),
    /// The blocking task that runs a write did not finish.
    #[error("the Raft store's write task failed: {0}")]
    Worker(String),
}

/// Maps any redb error into [`StoreError::Database`].
trait OrStoreError<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> OrStoreError<T> for Result<T, E> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Database(Box::new(e.into())))
    }
}

/// redb's page cache (reads and the write buffer). The store holds at most
/// a few thousand small entries and one snapshot of a few bytes, and is
/// read back only to replicate recent entries, which this keeps. The cache
/// fills and then stays full, so it is memory the daemon holds for good:
/// at redb's default (1 GiB) a site's RSS grew by megabytes with every
/// snapshot and purge, at 4 MiB by 4 MB in the first minutes of a soak
/// (BENCHMARKS.md, soak).
const CACHE_BYTES: usize = 1024 * 1024;

/// Opens (creating if needed) the store at `path`, checks its format version
/// and returns its two halves. The directory holding `path` must exist; it is
/// fsynced so a newly created file survives a power loss. Blocking: call it at
/// startup, before the runtime serves anything.
pub fn open(path: &Path) -> Result<(LogStore, StateMachine), StoreError> {
    let db = Database::builder().set_cache_size(CACHE_BYTES).create(path).map_err(|source| match source {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.to_owned() },
        DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
            StoreError::Corrupt { path: path.to_owned(), detail }
        }
        DatabaseError::Storage(redb::StorageError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            StoreError::Corrupt { path: path.to_owned(), detail: format!("not a redb database: {e}") }
        }
        DatabaseError::UpgradeRequired(found) => StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!("written by an incompatible redb file format ({found})"),
        },
        source => StoreError::Open { path: path.to_owned(), source },
    })?;
    // A new file's directory entry must be durable too, or a power loss could
    // take the whole store (and the vote in it) with it.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::SyncDirectory { dir: dir.to_owned(), source })?;
    let applied = initialize(&db, path).map_err(|e| match e {
        StoreError::Record(e) => StoreError::Corrupt { path: path.to_owned(), detail: e.to_string() },
        e => e,
    })?;
    let db = Arc::new(db);
    let (view, _) = watch::channel(AppliedView::of(&applied));
    Ok((LogStore { db: Arc::clone(&db) }, StateMachine { db, applied, view, snapshots_built: 0 }))
}

/// Creates the tables and the version key of a new store, checks the version
/// of an existing one, and loads the applied state.
fn initialize(db: &Database, path: &Path) -> Result<AppliedRecord, StoreError> {
    let txn = begin_write(db)?;
    {
        let log = txn.open_table(LOG).db()?;
        let mut meta = txn.open_table(META).db()?;
        match get::<u32>(&meta, KEY_FORMAT)? {
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(StoreError::UnsupportedFormat { path: path.to_owned(), found, supported: FORMAT_VERSION });
            }
            None if log.is_empty().db()? && meta.is_empty().db()? => put(&mut meta, KEY_FORMAT, &FORMAT_VERSION)?,
            None => {
                let detail = "it holds data but no format version".to_owned();
                return Err(StoreError::Corrupt { path: path.to_owned(), detail });
            }
        }
    }
    txn.commit().db()?;
    let txn = db.begin_read().db()?;
    let meta = txn.open_table(META).db()?;
    Ok(get(&meta, KEY_APPLIED)?.unwrap_or_default())
}

/// A write transaction that fsyncs on commit.
fn begin_write(db: &Database) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write().db()?;
    txn.set_durability(Durability::Immediate);
    Ok(txn)
}

fn get<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match table.get(key).db()? {
        Some(bytes) => Ok(Some(serde_json::from_slice(bytes.value())?)),
        None => Ok(None),
    }
}

fn put<T: Serialize>(
    table: &mut redb::Table<&'static str, &'static [u8]>,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    table.insert(key, serde_json::to_vec(value)?.as_slice()).db()?;
    Ok(())
}

/// Reads one meta key in its own read transaction.
fn read_meta<T: DeserializeOwned>(db: &Database, key: &str) -> Result<Option<T>, StoreError> {
    let txn = db.begin_read().db()?;
    let meta = txn.open_table(META).db()?;
    get(&meta, key)
}

/// Runs `write` (which commits durably) on the blocking pool and waits for it.
async fn durably<T, F>(db: &Arc<Database>, write: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
{
    let db = Arc::clone(db);
    tokio::task::spawn_blocking(move || write(&db)).await.map_err(|e| StoreError::Worker(e.to_string()))?
}

/// Sets (or with `None` removes) one meta key, durably.
async fn write_meta<T: Serialize + Send + 'static>(
    db: &Arc<Database>,
    key: &'static str,
    value: Option<T>,
) -> Result<(), StoreError> {
    durably(db, move |db| {
        let txn = begin_write(db)?;
        {
            let mut meta = txn.open_table(META).db()?;
            match &value {
                Some(value) => put(&mut meta, key, value)?,
                None => {
                    meta.remove(key).db()?;
                }
            }
        }
        txn.commit().db()
    })
    .await
}

fn io_error(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: &StoreError) -> RaftError {
    StorageIOError::new(subject, verb, AnyError::new(e)).into()
}

/// The log half: entries, vote, committed and purged log ids. Cloning it is
/// cheap (it is also its own log reader).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    fn read_entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry<TsoRaft>>, StoreError> {
        let txn = self.db.begin_read().db()?;
        let log = txn.open_table(LOG).db()?;
        let mut entries = Vec::new();
        for item in log.range::<u64>(range).db()? {
            let (_, bytes) = item.db()?;
            entries.push(serde_json::from_slice(bytes.value())?);
        }
        Ok(entries)
    }

    fn log_state(&self) -> Result<LogState<TsoRaft>, StoreError> {
        let txn = self.db.begin_read().db()?;
        let meta = txn.open_table(META).db()?;
        let last_purged_log_id: Option<LogId<NodeId>> = get(&meta, KEY_LAST_PURGED)?;
        let log = txn.open_table(LOG).db()?;
        let last_log_id = match log.last().db()? {
            Some((_, bytes)) => Some(serde_json::from_slice::<Entry<TsoRaft>>(bytes.value())?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }
}

impl RaftLogReader<TsoRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TsoRaft>>, RaftError> {
        self.read_entries(range).map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Read, &e))
    }
}

impl RaftLogStorage<TsoRaft> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TsoRaft>, RaftError> {
        self.log_state().map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Read, &e))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), RaftError> {
        write_meta(&self.db, KEY_VOTE, Some(*vote))
            .await
            .map_err(|e| io_error(ErrorSubject::Vote, ErrorVerb::Write, &e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, RaftError> {
        read_meta(&self.db, KEY_VOTE).map_err(|e| io_error(ErrorSubject::Vote, ErrorVerb::Read, &e))
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), RaftError> {
        write_meta(&self.db, KEY_COMMITTED, committed)
            .await
            .map_err(|e| io_error(ErrorSubject::Store, ErrorVerb::Write, &e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, RaftError> {
        read_meta(&self.db, KEY_COMMITTED).map_err(|e| io_error(ErrorSubject::Store, ErrorVerb::Read, &e))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TsoRaft>) -> Result<(), RaftError>
    where
        I: IntoIterator<Item = Entry<TsoRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TsoRaft>> = entries.into_iter().collect();
        let written = durably(&self.db, move |db| {
            let txn = begin_write(db)?;
            {
                let mut log = txn.open_table(LOG).db()?;
                for entry in &entries {
                    log.insert(entry.log_id.index, serde_json::to_vec(entry)?.as_slice()).db()?;
                }
            }
            txn.commit().db()
        })
        .await;
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(io_error(ErrorSubject::Logs, ErrorVerb::Write, &e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), RaftError> {
        durably(&self.db, move |db| {
            let txn = begin_write(db)?;
            txn.open_table(LOG).db()?.retain_in::<u64, _>(log_id.index.., |_, _| false).db()?;
            txn.commit().db()
        })
        .await
        .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Delete, &e))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), RaftError> {
        durably(&self.db, move |db| {
            let txn = begin_write(db)?;
            {
                let mut meta = txn.open_table(META).db()?;
                let previous: Option<LogId<NodeId>> = get(&meta, KEY_LAST_PURGED)?;
                // The purged id never goes back, so no hole can open.
                if previous < Some(log_id) {
                    put(&mut meta, KEY_LAST_PURGED, &log_id)?;
                }
                txn.open_table(LOG).db()?.retain_in::<u64, _>(..=log_id.index, |_, _| false).db()?;
            }
            txn.commit().db()
        })
        .await
        .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Delete, &e))
    }
}

/// What the state machine persists under `applied`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct AppliedRecord {
    state: TsoState,
    last_applied: Option<LogId<NodeId>>,
    membership: AppliedMembership,
}

/// The applied state as the daemon sees it: what [`StateMachine::watch`] carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppliedView {
    /// The largest lease end ever committed: no timestamp was issued above it.
    pub fence: Timestamp,
    /// The last lease applied.
    pub last_lease: Option<Lease>,
    /// The last log entry applied (or covered by an installed snapshot).
    pub last_applied: Option<LogId<NodeId>>,
    /// Fence resets applied so far.
    pub resets: u64,
    /// Votes for the next fence reset.
    pub pending_reset: Option<PendingReset>,
    /// The last fence reset.
    pub last_reset: Option<ResetRecord>,
}

impl AppliedView {
    fn of(record: &AppliedRecord) -> Self {
        Self {
            fence: Timestamp::from_nanos(record.state.fence_ns),
            last_lease: record.state.last_lease,
            last_applied: record.last_applied,
            resets: record.state.resets,
            pending_reset: record.state.pending_reset.clone(),
            last_reset: record.state.last_reset.clone(),
        }
    }
}

/// The state machine half: the TSO state, last applied log id and membership,
/// persisted on every apply, and the current snapshot.
pub struct StateMachine {
    db: Arc<Database>,
    applied: AppliedRecord,
    view: watch::Sender<AppliedView>,
    snapshots_built: u64,
}

impl StateMachine {
    /// A receiver of the applied state, updated on every apply and snapshot
    /// install; `borrow()` on it is a cheap read of the current fence.
    pub fn watch(&self) -> watch::Receiver<AppliedView> {
        self.view.subscribe()
    }

    /// Persists `record` durably, then makes it the current state.
    async fn commit(
        &mut self,
        record: AppliedRecord,
        snapshot: Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let persisted = record.clone();
        durably(&self.db, move |db| {
            let txn = begin_write(db)?;
            {
                let mut meta = txn.open_table(META).db()?;
                put(&mut meta, KEY_APPLIED, &persisted)?;
                if let Some((snapshot_meta, data)) = &snapshot {
                    put(&mut meta, KEY_SNAPSHOT_META, snapshot_meta)?;
                    meta.insert(KEY_SNAPSHOT_DATA, data.as_slice()).db()?;
                }
            }
            txn.commit().db()
        })
        .await?;
        self.view.send_replace(AppliedView::of(&record));
        self.applied = record;
        Ok(())
    }
}

impl RaftStateMachine<TsoRaft> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, AppliedMembership), RaftError> {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, RaftError>
    where
        I: IntoIterator<Item = Entry<TsoRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut next = self.applied.clone();
        let mut answers = Vec::new();
        for entry in entries {
            next.last_applied = Some(entry.log_id);
            answers.push(match entry.payload {
                EntryPayload::Blank => next.state.unchanged(),
                EntryPayload::Normal(command) => {
                    let applied = next.state.apply(&command);
                    if let (Some(vote), Command::FenceResetVote(v)) = (applied.vote, &command) {
                        audit_vote(&next.state, &vote, v, applied.previous_end_ns);
                    }
                    applied
                }
                EntryPayload::Membership(membership) => {
                    next.membership = StoredMembership::new(Some(entry.log_id), membership);
                    next.state.unchanged()
                }
            });
        }
        if answers.is_empty() {
            return Ok(answers);
        }
        self.commit(next, None).await.map_err(|e| io_error(ErrorSubject::StateMachine, ErrorVerb::Write, &e))?;
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshots_built += 1;
        SnapshotBuilder { db: Arc::clone(&self.db), record: self.applied.clone(), sequence: self.snapshots_built }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, RaftError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), RaftError> {
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let data = snapshot.into_inner();
        let state: TsoState =
            serde_json::from_slice(&data).map_err(|e| io_error(subject.clone(), ErrorVerb::Read, &e.into()))?;
        let mut state = state;
        if state.fence_ns < self.applied.state.fence_ns && state.resets <= self.applied.state.resets {
            // Raft only installs a snapshot of a longer committed prefix, whose
            // fence cannot be lower (and a one-chunk one that does is refused
            // before it gets here, `network::answer`): say so loudly, and keep
            // the higher fence, as no timestamp below it may be issued again.
            tracing::error!(
                installed = state.fence_ns,
                current = self.applied.state.fence_ns,
                "an installed Raft snapshot would lower the TSO fence; keeping ours"
            );
            state.fence_ns = self.applied.state.fence_ns;
        }
        let record = AppliedRecord { state, last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
        self.commit(record, Some((meta.clone(), data))).await.map_err(|e| io_error(subject, ErrorVerb::Write, &e))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TsoRaft>>, RaftError> {
        read_snapshot(&self.db).map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, &e))
    }
}

/// Logs a fence-reset vote as every site applies it: loudly when it takes
/// effect (the audit trail beside the record `tsod status` shows).
fn audit_vote(state: &TsoState, outcome: &VoteOutcome, vote: &ResetVote, fence_before_ns: u64) {
    if outcome.applied {
        let voters: Vec<String> = state
            .last_reset
            .iter()
            .flat_map(|r| r.votes.iter())
            .map(|v| format!("node {:016x}: {:?}", v.site, v.reason))
            .collect();
        tracing::error!(
            reset = outcome.reset,
            fence_before_ns,
            fence_after_ns = state.fence_ns,
            voters = %voters.join("; "),
            "TSO FENCE RESET by a majority of the sites' operators: timestamps issued above the new fence before \
             it may be repeated or overtaken"
        );
    } else if outcome.reset == 0 {
        tracing::warn!(
            site = format!("{:016x}", vote.site),
            reset = vote.reset,
            "a fence-reset vote for another reset than the next did not count"
        );
    } else {
        tracing::warn!(
            site = format!("{:016x}", vote.site),
            reset = outcome.reset,
            votes = outcome.votes,
            needed = outcome.needed,
            reason = %vote.reason,
            "a site's operator voted to reset the TSO fence"
        );
    }
}

fn read_snapshot(db: &Database) -> Result<Option<Snapshot<TsoRaft>>, StoreError> {
    let txn = db.begin_read().db()?;
    let meta_table = txn.open_table(META).db()?;
    let Some(meta) = get::<SnapshotMeta<NodeId, BasicNode>>(&meta_table, KEY_SNAPSHOT_META)? else {
        return Ok(None);
    };
    let data = meta_table.get(KEY_SNAPSHOT_DATA).db()?.map(|bytes| bytes.value().to_vec()).unwrap_or_default();
    Ok(Some(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
}

/// Builds a snapshot of the state as it was when the builder was made.
pub struct SnapshotBuilder {
    db: Arc<Database>,
    record: AppliedRecord,
    sequence: u64,
}

impl RaftSnapshotBuilder<TsoRaft> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TsoRaft>, RaftError> {
        let snapshot_id = match self.record.last_applied {
            Some(last) => format!("{}-{}-{}", last.leader_id, last.index, self.sequence),
            None => format!("none-{}", self.sequence),
        };
        let meta = SnapshotMeta {
            last_log_id: self.record.last_applied,
            last_membership: self.record.membership.clone(),
            snapshot_id,
        };
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let data = serde_json::to_vec(&self.record.state)
            .map_err(|e| io_error(subject.clone(), ErrorVerb::Write, &e.into()))?;
        let (stored_meta, stored_data) = (meta.clone(), data.clone());
        durably(&self.db, move |db| {
            let txn = begin_write(db)?;
            {
                let mut table = txn.open_table(META).db()?;
                let current: Option<SnapshotMeta<NodeId, BasicNode>> = get(&table, KEY_SNAPSHOT_META)?;
                // A slow build never replaces a newer snapshot (e.g. one installed meanwhile).
                if current.is_none_or(|current| current.last_log_id <= stored_meta.last_log_id) {
                    put(&mut table, KEY_SNAPSHOT_META, &stored_meta)?;
                    table.insert(KEY_SNAPSHOT_DATA, stored_data.as_slice()).db()?;
                }
            }
            txn.commit().db()
        })
        .await
        .map_err(|e| io_error(subject, ErrorVerb::Write, &e))?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicU64, Ordering};

    use openraft::storage::RaftLogStorageExt;
    use openraft::testing::{StoreBuilder, Suite, log_id};

    use super::*;
    use crate::tso::raft::Command;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("tsod-store-{}-{name}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn file(&self) -> PathBuf {
            self.0.join(FILE_NAME)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    struct OnDisk;

    impl StoreBuilder<TsoRaft, LogStore, StateMachine, TempDir> for OnDisk {
        async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), RaftError> {
            let dir = TempDir::new("suite");
            let (log, sm) = open(&dir.file()).unwrap();
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn passes_the_openraft_storage_suite() {
        Suite::test_all(OnDisk).unwrap();
    }

    fn lease(term: u64, end_ns: u64) -> Command {
        Command::Lease(Lease { holder: 7, term, end_ns })
    }

    fn entry(index: u64, payload: EntryPayload<TsoRaft>) -> Entry<TsoRaft> {
        Entry { log_id: log_id(1, 7, index), payload }
    }

    fn members() -> openraft::Membership<NodeId, BasicNode> {
        openraft::Membership::new(vec![BTreeSet::from([7])], ())
    }

    #[tokio::test]
    async fn everything_survives_a_reopen() {
        let dir = TempDir::new("reopen");
        let entries = vec![
            entry(1, EntryPayload::Blank),
            entry(2, EntryPayload::Membership(members())),
            entry(3, EntryPayload::Normal(lease(1, 500))),
            entry(4, EntryPayload::Normal(lease(1, 400))),
        ];
        let built = {
            let (mut log, mut sm) = open(&dir.file()).unwrap();
            let view = sm.watch();
            log.save_vote(&Vote::new(1, 7)).await.unwrap();
            log.blocking_append(entries.clone()).await.unwrap();
            log.save_committed(Some(log_id(1, 7, 4))).await.unwrap();
            let answers = sm.apply(entries.clone()).await.unwrap();
            assert_eq!(
                answers,
                [
                    Applied { previous_end_ns: 0, end_ns: 0, vote: None },
                    Applied { previous_end_ns: 0, end_ns: 0, vote: None },
                    Applied { previous_end_ns: 0, end_ns: 500, vote: None },
                    Applied { previous_end_ns: 500, end_ns: 500, vote: None },
                ]
            );
            assert_eq!(view.borrow().fence, Timestamp::from_nanos(500));
            assert_eq!(view.borrow().last_applied, Some(log_id(1, 7, 4)));
            let built = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
            log.purge(log_id(1, 7, 1)).await.unwrap();
            built
        };

        let (mut log, mut sm) = open(&dir.file()).unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(1, 7)));
        assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 7, 4)));
        assert_eq!(
            log.get_log_state().await.unwrap(),
            LogState { last_purged_log_id: Some(log_id(1, 7, 1)), last_log_id: Some(log_id(1, 7, 4)) }
        );
        assert_eq!(log.try_get_log_entries(..).await.unwrap(), entries[1..]);
        let (last_applied, membership) = sm.applied_state().await.unwrap();
        assert_eq!(last_applied, Some(log_id(1, 7, 4)));
        assert_eq!(membership, StoredMembership::new(Some(log_id(1, 7, 2)), members()));
        let view = sm.watch().borrow().clone();
        assert_eq!(
            view,
            AppliedView {
                fence: Timestamp::from_nanos(500),
                last_lease: Some(Lease { holder: 7, term: 1, end_ns: 400 }),
                last_applied: Some(log_id(1, 7, 4)),
                ..AppliedView::default()
            }
        );
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, built.meta);
        assert_eq!(current.snapshot.into_inner(), built.snapshot.into_inner());

        // The fence resumes from disk: a lower lease after the restart does not lower it.
        let answers = sm.apply([entry(5, EntryPayload::Normal(lease(2, 450)))]).await.unwrap();
        assert_eq!(answers, [Applied { previous_end_ns: 500, end_ns: 500, vote: None }]);
    }

    #[tokio::test]
    async fn an_installed_snapshot_replaces_the_state_and_survives_a_reopen() {
        let (leader_dir, follower_dir) = (TempDir::new("leader"), TempDir::new("follower"));
        let (_leader_log, mut leader) = open(&leader_dir.file()).unwrap();
        leader
            .apply([entry(1, EntryPayload::Membership(members())), entry(2, EntryPayload::Normal(lease(1, 900)))])
            .await
            .unwrap();
        let snapshot = leader.get_snapshot_builder().await.build_snapshot().await.unwrap();
        {
            let (_log, mut follower) = open(&follower_dir.file()).unwrap();
            let view = follower.watch();
            let mut receiving = follower.begin_receiving_snapshot().await.unwrap();
            *receiving = *snapshot.snapshot.clone();
            follower.install_snapshot(&snapshot.meta, receiving).await.unwrap();
            assert_eq!(view.borrow().fence, Timestamp::from_nanos(900));
        }
        let (_log, mut follower) = open(&follower_dir.file()).unwrap();
        assert_eq!(follower.watch().borrow().fence, Timestamp::from_nanos(900));
        assert_eq!(follower.applied_state().await.unwrap().0, Some(log_id(1, 7, 2)));
        assert_eq!(follower.get_current_snapshot().await.unwrap().unwrap().meta, snapshot.meta);
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused_as_locked() {
        let dir = TempDir::new("locked");
        let first = open(&dir.file()).unwrap();
        assert!(matches!(open(&dir.file()), Err(StoreError::Locked { .. })));
        drop(first);
        open(&dir.file()).unwrap();
    }

    #[test]
    fn an_unknown_format_version_is_refused() {
        let dir = TempDir::new("version");
        drop(open(&dir.file()).unwrap());
        {
            let db = Database::create(dir.file()).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert(KEY_FORMAT, b"999".as_slice()).unwrap();
            txn.commit().unwrap();
        }
        let refused = open(&dir.file());
        assert!(
            matches!(refused, Err(StoreError::UnsupportedFormat { found: 999, supported: FORMAT_VERSION, .. })),
            "{:?}",
            refused.err()
        );
    }

    #[test]
    fn a_file_that_is_not_a_store_is_refused_as_corrupt() {
        let dir = TempDir::new("garbage");
        std::fs::write(dir.file(), vec![0x5a; 8192]).unwrap();
        let refused = open(&dir.file());
        assert!(matches!(refused, Err(StoreError::Corrupt { .. })), "{:?}", refused.err());
    }
}
