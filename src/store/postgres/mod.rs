//! The PostgreSQL backend: the same promises as the sled store, for several golive replicas on
//! one shared database.
//!
//! Positions and the hash chain: every group of appends runs in one transaction that moves the
//! single-row head (last position, last hash) from the value it continues: positions and hashes
//! are assigned from it, and the head row stays locked until the commit is visible. So
//! positions become visible in order: no reader can see position n+1 while n is still
//! uncommitted, on any replica, and the chain stays one chain with any number of writers.
//! `UNIQUE (stream, version)` backs the expected-version check. (writer.rs has the details.)
//!
//! Group commit: one writer task per replica drains every append waiting and commits them as
//! one transaction (one lock, one WAL flush), acknowledging nobody before the commit.
//!
//! Subscriptions across replicas: a commit sends `NOTIFY` on the schema's channel; each replica
//! LISTENs and then reads the log by position (the truth) to feed its live tail, so an event
//! appended through replica A reaches replica B's subscribers in position order. A slow poll
//! covers a lost notification or a dropped listener connection.
//!
//! Envelopes are stored as their exact JSON text (beside indexed columns), so a re-read event
//! hashes to the same value whatever the database does to JSON or timestamps.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, mpsc, oneshot, Notify};
use tokio_postgres::types::ToSql;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;
use uuid::Uuid;

use super::{
    AppendOutcome, AppendRequest, EventStore, Head, IdempotencyRecord, StoreCounters, StoreError, StoredEvent,
    GENESIS_HASH,
};

/// Versioned migrations, applied in order on start under a lock; never edited once released.
const MIGRATIONS: [(i32, &str); 2] = [
    (
        1,
        "CREATE TABLE golive_events (
         position bigint PRIMARY KEY,
         stream uuid NOT NULL,
         version bigint NOT NULL,
         recorded_at timestamptz NOT NULL,
         actor text NOT NULL,
         event_type text NOT NULL,
         envelope text NOT NULL,
         UNIQUE (stream, version)
     );
     CREATE TABLE golive_streams (stream uuid PRIMARY KEY, version bigint NOT NULL);
     CREATE TABLE golive_head (
         id int PRIMARY KEY CHECK (id = 1),
         position bigint NOT NULL,
         hash text NOT NULL
     );
     INSERT INTO golive_head (id, position, hash)
         VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
     CREATE TABLE golive_idempotency (
         key text PRIMARY KEY,
         record text NOT NULL
     );
     CREATE TABLE golive_aux (key text PRIMARY KEY, value bytea NOT NULL);
     CREATE TABLE golive_data_keys (integration uuid PRIMARY KEY, wrapped text NOT NULL);",
    ),
    // Counters outside the log (refused deliveries), each one row incremented in place.
    (2, "CREATE TABLE golive_counters (key text PRIMARY KEY, value bigint NOT NULL)"),
];

/// Options of [`PgStore::connect`].
#[derive(Debug, Clone)]
pub struct PgStoreOptions {
    /// Connections for reads (the writer and the listener have their own).
    pub pool_size: usize,
    /// Appends committed in one transaction at most.
    pub max_group: usize,
    /// How often the live tail looks at the log without a notification.
    pub poll_interval: Duration,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        PgStoreOptions { pool_size: 8, max_group: 512, poll_interval: Duration::from_millis(500) }
    }
}

mod tls;
mod writer;

pub use tls::{split_tls_parameters, RootCertificates, SslMode};

pub(super) struct Job {
    request: AppendRequest,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

#[derive(Default)]
pub(super) struct Counters {
    flushes: AtomicU64,
    appends: AtomicU64,
    events: AtomicU64,
}

pub struct PgStore {
    pool: Pool,
    jobs: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    live: broadcast::Sender<Arc<StoredEvent>>,
    nudge: Arc<Notify>,
    counters: Arc<Counters>,
    closed: AtomicBool,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A position, version or count as PostgreSQL's `bigint`: `as i64` would turn a caller's
/// `u64::MAX` into -1 (every event), so anything beyond `i64::MAX` stays at `i64::MAX`.
fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn storage(error: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(format!("postgres: {error}"))
}

/// An error and every cause under it: the driver's own message for a failed TLS handshake says
/// only that it failed; the cause says why (an unknown issuer, another host name, no TLS).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = inner.source();
    }
    text
}

fn corrupt(position: u64, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { position, reason: error.to_string() }
}

/// The notification channel of a schema, so several golive deployments (or test runs) can
/// share one database in separate schemas.
fn channel_of(schema: &str) -> String {
    let digest = Sha256::digest(format!("golive:{schema}").as_bytes());
    format!("golive_{}", hex::encode(&digest[..8]))
}

impl PgStore {
    /// Connects, runs the migrations and starts the writer, the listener and the live tail.
    pub async fn connect(url: &str, options: PgStoreOptions) -> Result<Arc<PgStore>, StoreError> {
        let tls::PgConnection { config, mode, tls } = tls::connection(url).map_err(storage)?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager).max_size(options.pool_size.max(1)).build().map_err(storage)?;
        let client = pool
            .get()
            .await
            .map_err(|e| storage(format!("cannot connect with sslmode={}: {}", mode.as_str(), with_causes(&e))))?;
        migrate(&client).await?;
        let schema: String = client.query_one("SELECT current_schema()", &[]).await.map_err(storage)?.get(0);
        let channel = channel_of(&schema);
        let head: i64 = client.query_one("SELECT position FROM golive_head", &[]).await.map_err(storage)?.get(0);
        drop(client);

        let (live, _) = broadcast::channel(4096);
        let nudge = Arc::new(Notify::new());
        let counters = Arc::new(Counters::default());
        let (jobs, receiver) = mpsc::unbounded_channel();
        // This replica's own commits go straight to the live tail, which reads the database
        // only for positions it has not seen (other replicas' commits).
        let (local, locals) = mpsc::unbounded_channel();
        let writer = writer::Writer::connect(config.clone(), tls.clone(), channel.clone()).await?;
        let writer = tokio::spawn(writer.run(receiver, options.max_group.max(1), counters.clone(), local.clone()));
        let announced = Arc::new(AtomicU64::new(0));
        let listener = tokio::spawn(listen_loop(config, tls, channel, nudge.clone(), announced.clone()));
        let tail = tokio::spawn(tail_loop(
            pool.clone(),
            live.clone(),
            nudge.clone(),
            announced,
            locals,
            head as u64,
            options.poll_interval,
        ));
        Ok(Arc::new(PgStore {
            pool,
            jobs: Mutex::new(Some(jobs)),
            live,
            nudge,
            counters,
            closed: AtomicBool::new(false),
            tasks: Mutex::new(vec![listener, tail]),
            writer: Mutex::new(Some(writer)),
        }))
    }

    /// The connection pool, shared with the PostgreSQL keystore.
    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        self.pool.get().await.map_err(storage)
    }

    /// Runs a read with a statement prepared once per pooled connection.
    async fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(storage)?;
        client.query(&statement, params).await.map_err(storage)
    }
}

async fn migrate(client: &tokio_postgres::Client) -> Result<(), StoreError> {
    // One starter migrates; the others wait on the lock and then find nothing to do.
    client
        .batch_execute(
            "SELECT pg_advisory_lock(7420001);
             CREATE TABLE IF NOT EXISTS golive_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());",
        )
        .await
        .map_err(storage)?;
    let result = async {
        let applied: Vec<i32> = client
            .query("SELECT version FROM golive_migrations", &[])
            .await
            .map_err(storage)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (version, sql) in MIGRATIONS {
            if applied.contains(&version) {
                continue;
            }
            let script = format!("BEGIN; {sql}; INSERT INTO golive_migrations (version) VALUES ({version}); COMMIT;");
            if let Err(error) = client.batch_execute(&script).await {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(storage(format!("migration {version} failed: {error}")));
            }
        }
        if let Some(newest) = applied.iter().max() {
            if *newest > MIGRATIONS.len() as i32 {
                return Err(storage(format!(
                    "the database was migrated by a newer golive (schema version {newest}); upgrade this one"
                )));
            }
        }
        Ok(())
    }
    .await;
    let _ = client.batch_execute("SELECT pg_advisory_unlock(7420001)").await;
    result
}

/// Waits for notifications and nudges the live tail. Reconnects after a lost connection.
async fn listen_loop(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    channel: String,
    nudge: Arc<Notify>,
    announced: Arc<AtomicU64>,
) {
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let heard = announced.clone();
                let driver = tokio::spawn(async move {
                    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(notice)) => {
                                // The payload is the committed head; the tail reads the log
                                // only when that is beyond what it has already handed out.
                                heard.fetch_max(notice.payload().parse().unwrap_or(u64::MAX), Ordering::SeqCst);
                                let _ = tx.send(());
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                });
                if client.batch_execute(&format!("LISTEN {channel}")).await.is_ok() {
                    nudge.notify_one();
                    while rx.recv().await.is_some() {
                        nudge.notify_one();
                    }
                }
                driver.abort();
            }
            Err(error) => tracing::warn!(%error, "cannot LISTEN for new events; polling until it can"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Feeds the live broadcast in position order: this replica's commits as they are made, and
/// whatever else the log holds (other replicas' commits), read by position.
async fn tail_loop(
    pool: Pool,
    live: broadcast::Sender<Arc<StoredEvent>>,
    nudge: Arc<Notify>,
    announced: Arc<AtomicU64>,
    mut locals: mpsc::UnboundedReceiver<Vec<StoredEvent>>,
    mut last: u64,
    poll_interval: Duration,
) {
    let mut pending: std::collections::BTreeMap<u64, StoredEvent> = std::collections::BTreeMap::new();
    loop {
        let mut read_log = false;
        tokio::select! {
            batch = locals.recv() => match batch {
                Some(batch) => pending.extend(batch.into_iter().map(|e| (e.position, e))),
                None => return,
            },
            _ = nudge.notified() => read_log = announced.load(Ordering::SeqCst) > last,
            _ = tokio::time::sleep(poll_interval) => read_log = true,
        }
        while let Ok(batch) = locals.try_recv() {
            pending.extend(batch.into_iter().map(|e| (e.position, e)));
        }
        // Local commits that continue the sequence go out without a query.
        while let Some(entry) = pending.first_entry() {
            if *entry.key() <= last {
                entry.remove();
            } else if *entry.key() == last + 1 {
                let event = entry.remove();
                last = event.position;
                let _ = live.send(Arc::new(event));
            } else {
                // A gap: another replica committed in between; the log has it.
                read_log = true;
                break;
            }
        }
        if !read_log {
            continue;
        }
        loop {
            let batch = match pool.get().await {
                Ok(client) => read_all_with(&client, last, 1024).await,
                Err(error) => Err(storage(error)),
            };
            match batch {
                Ok(batch) if batch.is_empty() => break,
                Ok(batch) => {
                    for event in batch {
                        last = event.position;
                        let _ = live.send(Arc::new(event));
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "the live tail could not read the log; retrying");
                    break;
                }
            }
        }
        pending.retain(|position, _| *position > last);
    }
}

fn decode_envelope(position: i64, text: &str) -> Result<StoredEvent, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(position as u64, e))
}

async fn read_all_with(
    client: &tokio_postgres::Client,
    after: u64,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = client
        .query(
            "SELECT position, envelope FROM golive_events WHERE position > $1 ORDER BY position LIMIT $2",
            &[&saturating_i64(after), &saturating_i64(limit as u64)],
        )
        .await
        .map_err(storage)?;
    rows.iter().map(|r| decode_envelope(r.get(0), r.get::<_, &str>(1))).collect()
}

#[async_trait]
impl EventStore for PgStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        {
            let jobs = self.jobs.lock().expect("jobs lock");
            let Some(jobs) = jobs.as_ref() else { return Err(StoreError::Closed) };
            jobs.send(Job { request, reply }).map_err(|_| StoreError::Closed)?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(&self, stream: Uuid, from_version: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = self
            .rows(
                "SELECT position, envelope FROM golive_events WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3",
                &[&stream, &saturating_i64(from_version), &saturating_i64(limit as u64)],
            )
            .await?;
        rows.iter().map(|r| decode_envelope(r.get(0), r.get::<_, &str>(1))).collect()
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        read_all_with(&client, after, limit).await
    }

    async fn stream_version(&self, stream: Uuid) -> Result<u64, StoreError> {
        let rows = self.rows("SELECT version FROM golive_streams WHERE stream = $1", &[&stream]).await?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0) as u64).unwrap_or(0))
    }

    async fn streams(&self) -> Result<Vec<(Uuid, u64)>, StoreError> {
        let client = self.client().await?;
        let rows =
            client.query("SELECT stream, version FROM golive_streams ORDER BY stream", &[]).await.map_err(storage)?;
        Ok(rows.iter().map(|r| (r.get::<_, Uuid>(0), r.get::<_, i64>(1) as u64)).collect())
    }

    async fn head(&self) -> Result<Head, StoreError> {
        let rows = self.rows("SELECT position, hash FROM golive_head WHERE id = 1", &[]).await?;
        let row = rows.first().ok_or_else(|| storage("the head row is missing"))?;
        let position = row.get::<_, i64>(0) as u64;
        let hash: String = row.get(1);
        Ok(Head { position, hash: if position == 0 { GENESIS_HASH.to_owned() } else { hash } })
    }

    async fn idempotency_record(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let rows = self.rows("SELECT record FROM golive_idempotency WHERE key = $1", &[&key]).await?;
        rows.first()
            .map(|r| serde_json::from_str(r.get::<_, &str>(0)).map_err(|e| storage(format!("idempotency record: {e}"))))
            .transpose()
    }

    async fn get_aux(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.rows("SELECT value FROM golive_aux WHERE key = $1", &[&key]).await?;
        Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0)))
    }

    async fn put_aux(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO golive_aux (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &value],
            )
            .await
            .map_err(storage)?;
        Ok(())
    }

    async fn put_aux_if_absent(&self, key: &str, value: Vec<u8>) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let written = client
            .execute(
                "INSERT INTO golive_aux (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )
            .await
            .map_err(storage)?;
        Ok(written == 1)
    }

    async fn compare_and_swap_aux(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        // Each case is one statement, so the comparison and the write are one atomic step
        // (the row is locked from the check to the commit).
        let client = self.client().await?;
        let changed = match (expected, new) {
            (None, Some(value)) => client
                .execute(
                    "INSERT INTO golive_aux (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    &[&key, &value],
                )
                .await
                .map_err(storage)?,
            (Some(old), Some(value)) => client
                .execute("UPDATE golive_aux SET value = $3 WHERE key = $1 AND value = $2", &[&key, &old, &value])
                .await
                .map_err(storage)?,
            (Some(old), None) => client
                .execute("DELETE FROM golive_aux WHERE key = $1 AND value = $2", &[&key, &old])
                .await
                .map_err(storage)?,
            (None, None) => {
                let rows = client.query("SELECT 1 FROM golive_aux WHERE key = $1", &[&key]).await.map_err(storage)?;
                return Ok(rows.is_empty());
            }
        };
        Ok(changed == 1)
    }

    async fn scan_aux(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        // `starts_with` compares characters, free of LIKE's wildcards; "C" orders by bytes, as sled does.
        let rows = self
            .rows("SELECT key, value FROM golive_aux WHERE starts_with(key, $1) ORDER BY key COLLATE \"C\"", &[&prefix])
            .await?;
        Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, Vec<u8>>(1))).collect())
    }

    async fn add_to_counter(&self, key: &str, delta: u64) -> Result<u64, StoreError> {
        // bigint holds up to i64::MAX; the sum saturates there rather than failing.
        let delta = i64::try_from(delta).unwrap_or(i64::MAX);
        let rows = self
            .rows(
                "INSERT INTO golive_counters (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE
                 SET value = CASE WHEN golive_counters.value > 9223372036854775807 - EXCLUDED.value
                                  THEN 9223372036854775807
                                  ELSE golive_counters.value + EXCLUDED.value END
                 RETURNING value",
                &[&key, &delta],
            )
            .await?;
        let row = rows.first().ok_or_else(|| storage("the counter upsert returned no row"))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn read_counter(&self, key: &str) -> Result<u64, StoreError> {
        let rows = self.rows("SELECT value FROM golive_counters WHERE key = $1", &[&key]).await?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0).max(0) as u64).unwrap_or(0))
    }

    fn shared_between_processes(&self) -> bool {
        true
    }

    fn committed(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.live.subscribe()
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Dropping the sender ends the writer once it has answered every queued append.
        self.jobs.lock().expect("jobs lock").take();
        let writer = self.writer.lock().expect("writer lock").take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        self.closed.store(true, Ordering::SeqCst);
        for task in self.tasks.lock().expect("tasks lock").drain(..) {
            task.abort();
        }
        self.nudge.notify_waiters();
        Ok(())
    }

    fn counters(&self) -> StoreCounters {
        StoreCounters {
            flushes: self.counters.flushes.load(Ordering::Relaxed),
            appends_committed: self.counters.appends.load(Ordering::Relaxed),
            events_committed: self.counters.events.load(Ordering::Relaxed),
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        for task in self.tasks.lock().expect("tasks lock").drain(..) {
            task.abort();
        }
    }
}
