//! The replica's one writer: drains waiting appends and commits them as one transaction.
//!
//! The lock that orders writers is the single head row (last position, last hash): a group's
//! transaction updates it, so the row stays locked until that transaction's commit is visible,
//! and the next writer can only continue from there. Two ways to commit a group, each one
//! transaction:
//! - the **fast path** is one statement (one round trip, its own transaction), assuming the
//!   head and the streams' versions are what this writer last committed or what the appends
//!   expect. The statement checks those assumptions itself (the head must move from exactly the
//!   expected position, every existing stream from exactly its expected version; positions, new
//!   streams and idempotency keys must be new) and fails when one does not hold, so a wrong
//!   guess writes nothing;
//! - the **checked path** locks and reads the head, the versions and the idempotency records
//!   (one round trip), decides each append, then writes and commits (a second).
//!
//! Both paths decide each append with the one append planner (`store/append_plan.rs`), the
//! fast one on its assumptions, the checked one on what it read under the lock.
//!
//! The fast path is tried when the writer knows the head and every append pins a version; after
//! it fails (another replica wrote in between), the checked path is used for a while.
//!
//! The writer owns its connection. When the connection is lost (the server restarted, an
//! administrator ended the session, the network dropped), the group in flight is answered with
//! the error — whether its commit landed is unknown, so nobody is told it did — and the writer
//! connects again before the next group, so a replica recovers without a restart.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;
use uuid::Uuid;

use super::{storage, Counters, Job};
use crate::store::append_plan::{AppendPlanner, Commit, Plan};
use crate::store::{AppendOutcome, ExpectedVersion, Head, IdempotencyRecord, StoreError, StoredEvent};

/// Groups committed on the checked path after a fast path failed, before trying it again.
const CHECKED_AFTER_MISS: u32 = 16;

struct Statements {
    head: Statement,
    versions: Statement,
    records: Statement,
    write_group: Statement,
}

pub(super) struct Writer {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    client: Client,
    statements: Statements,
    channel: String,
    /// The head as this writer last committed or read it.
    head: Option<(u64, String)>,
    checked_groups_left: u32,
}

/// The rows a group writes.
struct Rows {
    events: Vec<StoredEvent>,
    records: Vec<IdempotencyRecord>,
    head: (u64, String),
    /// stream → (version before the group, version after)
    streams: HashMap<Uuid, (u64, u64)>,
}

impl Rows {
    /// The rows of a planned group: every commit's events and record, the head after them, and
    /// each stream's version before its first commit and after its last.
    fn of(plans: &[Plan], planner: &AppendPlanner) -> Rows {
        let head = planner.head();
        let mut rows = Rows {
            events: Vec::new(),
            records: Vec::new(),
            head: (head.position, head.hash.clone()),
            streams: HashMap::new(),
        };
        for plan in plans {
            if let Plan::Commit(commit) = plan {
                rows.events.extend(commit.events.iter().cloned());
                rows.records.extend(commit.record.iter().cloned());
                rows.streams.entry(commit.stream).or_insert((commit.version_before, commit.version_after)).1 =
                    commit.version_after;
            }
        }
        rows
    }
}

/// Opens the writer's own connection; its driver task ends when the client is dropped.
async fn open_connection(config: &tokio_postgres::Config, tls: &MakeRustlsConnect) -> Result<Client, StoreError> {
    let (client, connection) = config.connect(tls.clone()).await.map_err(storage)?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "the PostgreSQL writer connection ended");
        }
    });
    Ok(client)
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Statements, StoreError> {
        let prepare = |sql: &'static str| client.prepare(sql);
        Ok(Statements {
            head: prepare("SELECT position, hash FROM golive_head WHERE id = 1 FOR UPDATE").await.map_err(storage)?,
            versions: prepare("SELECT stream, version FROM golive_streams WHERE stream = ANY($1)").await.map_err(storage)?,
            records: prepare("SELECT key, record FROM golive_idempotency WHERE key = ANY($1)").await.map_err(storage)?,
            // One statement writes the whole group and checks the writer's assumptions: the head
            // moves from exactly the position it expected (else division by zero), every existing
            // stream advances from exactly the version its appends expected (likewise), new
            // streams, positions and idempotency keys are new (primary keys). Data-modifying CTEs
            // all run to completion, referenced or not.
            write_group: prepare(
                "WITH swapped AS (
                     UPDATE golive_head SET position = $2, hash = $3 WHERE id = 1 AND position = $1 RETURNING 1),
                 advanced AS (
                     UPDATE golive_streams s SET version = v.new
                     FROM unnest($4::uuid[], $5::bigint[], $6::bigint[]) AS v(stream, old, new)
                     WHERE s.stream = v.stream AND s.version = v.old RETURNING 1),
                 created AS (
                     INSERT INTO golive_streams (stream, version) SELECT * FROM unnest($7::uuid[], $8::bigint[]) RETURNING 1),
                 written AS (
                     INSERT INTO golive_events (position, stream, version, recorded_at, actor, event_type, envelope)
                     SELECT * FROM unnest($9::bigint[], $10::uuid[], $11::bigint[], $12::timestamptz[], $13::text[], $14::text[], $15::text[])
                     RETURNING 1),
                 remembered AS (
                     INSERT INTO golive_idempotency (key, record) SELECT * FROM unnest($16::text[], $17::text[]) RETURNING 1)
                 SELECT 1 / (CASE WHEN (SELECT count(*) FROM swapped) = 1 AND (SELECT count(*) FROM advanced) = $18 THEN 1 ELSE 0 END),
                        (SELECT count(*) FROM created), (SELECT count(*) FROM written), (SELECT count(*) FROM remembered),
                        pg_notify($19, $20)",
            )
            .await
            .map_err(storage)?,
        })
    }
}

impl Writer {
    pub(super) async fn connect(
        config: tokio_postgres::Config,
        tls: MakeRustlsConnect,
        channel: String,
    ) -> Result<Writer, StoreError> {
        let client = open_connection(&config, &tls).await?;
        let statements = Statements::prepare(&client).await?;
        Ok(Writer { config, tls, client, statements, channel, head: None, checked_groups_left: 0 })
    }

    /// Connects again after the connection was lost. The cached head is forgotten: another
    /// replica may have written meanwhile, and the first group after this one reads it.
    async fn reconnect(&mut self) -> Result<(), StoreError> {
        let client = open_connection(&self.config, &self.tls).await?;
        let statements = Statements::prepare(&client).await?;
        self.client = client;
        self.statements = statements;
        self.head = None;
        tracing::info!("the PostgreSQL writer connected again");
        Ok(())
    }

    pub(super) async fn run(
        mut self,
        mut receiver: mpsc::UnboundedReceiver<Job>,
        max_group: usize,
        counters: Arc<Counters>,
        local: mpsc::UnboundedSender<Vec<StoredEvent>>,
    ) {
        while let Some(first) = receiver.recv().await {
            let mut group = vec![first];
            while group.len() < max_group {
                match receiver.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            let outcome = if self.client.is_closed() {
                match self.reconnect().await {
                    Ok(()) => self.commit(&group).await,
                    Err(error) => Err(storage(format!("the connection was lost and could not be reopened: {error}"))),
                }
            } else {
                self.commit(&group).await
            };
            match outcome {
                Ok(plans) => {
                    let (mut appends, mut events, mut committed) = (0, 0, Vec::new());
                    for (job, plan) in group.into_iter().zip(plans) {
                        let answer = match plan {
                            Plan::Commit(Commit { events: stored, .. }) => {
                                appends += 1;
                                events += stored.len() as u64;
                                committed.extend(stored.iter().cloned());
                                Ok(AppendOutcome::Committed(stored))
                            }
                            Plan::Answer(answer) => answer,
                        };
                        let _ = job.reply.send(answer);
                    }
                    counters.flushes.fetch_add(1, Ordering::Relaxed);
                    counters.appends.fetch_add(appends, Ordering::Relaxed);
                    counters.events.fetch_add(events, Ordering::Relaxed);
                    if !committed.is_empty() {
                        let _ = local.send(committed);
                    }
                }
                Err(error) => {
                    // Usually the transaction rolled back and nothing of the group was written;
                    // when the connection died during the commit, nobody can know, so the
                    // error says so (a retry with the same idempotency key resolves it).
                    let error = match error {
                        StoreError::Storage(reason) if self.client.is_closed() => StoreError::Storage(format!(
                            "{reason}: the connection was lost during the commit, so whether it landed is unknown"
                        )),
                        error => error,
                    };
                    self.head = None;
                    for job in group {
                        let _ = job.reply.send(Err(error.clone()));
                    }
                }
            }
        }
    }

    async fn commit(&mut self, group: &[Job]) -> Result<Vec<Plan>, StoreError> {
        let fast = self.checked_groups_left == 0
            && self.head.is_some()
            && group
                .iter()
                .all(|j| matches!(j.request.expected, ExpectedVersion::Exact(_)) && !j.request.events.is_empty());
        if fast {
            let (plans, rows) = self.plan_assuming(group);
            match self.write(&rows, true).await {
                Ok(()) => {
                    self.head = Some(rows.head);
                    return Ok(plans);
                }
                Err(_) => {
                    // Someone else wrote (or a key was used): decide again on what is stored.
                    let _ = self.client.batch_execute("ROLLBACK").await;
                    self.head = None;
                    self.checked_groups_left = CHECKED_AFTER_MISS;
                }
            }
        }
        self.checked_groups_left = self.checked_groups_left.saturating_sub(1);
        self.commit_checked(group).await
    }

    /// Plans a group on the writer's assumptions: the cached head, every stream at the version
    /// its first append expects, every idempotency key new. The statement checks them all.
    fn plan_assuming(&self, group: &[Job]) -> (Vec<Plan>, Rows) {
        let (position, hash) = self.head.clone().expect("fast path needs a head");
        let mut planner = AppendPlanner::new(Head { position, hash });
        let plans: Vec<Plan> = group
            .iter()
            .map(|job| {
                let ExpectedVersion::Exact(expected) = job.request.expected else {
                    unreachable!("checked by the caller")
                };
                planner.plan(&job.request, |_| expected, |_| Ok(None))
            })
            .collect();
        let rows = Rows::of(&plans, &planner);
        (plans, rows)
    }

    async fn commit_checked(&mut self, group: &[Job]) -> Result<Vec<Plan>, StoreError> {
        let streams: Vec<Uuid> = group.iter().map(|j| j.request.stream).collect();
        let keys: Vec<String> =
            group.iter().filter_map(|j| j.request.idempotency.as_ref().map(|i| i.key.clone())).collect();
        let s = &self.statements;
        let stream_params: [&(dyn ToSql + Sync); 1] = [&streams];
        let key_params: [&(dyn ToSql + Sync); 1] = [&keys];
        let read = async {
            futures::try_join!(
                self.client.batch_execute("BEGIN"),
                self.client.query_one(&s.head, &[]),
                self.client.query(&s.versions, &stream_params),
                self.client.query(&s.records, &key_params),
            )
        };
        let (_, head, versions, records) = match read.await {
            Ok(answers) => answers,
            Err(error) => {
                let _ = self.client.batch_execute("ROLLBACK").await;
                return Err(storage(error));
            }
        };
        let read_head = (head.get::<_, i64>(0) as u64, head.get::<_, String>(1));
        let versions: HashMap<Uuid, u64> =
            versions.iter().map(|r| (r.get::<_, Uuid>(0), r.get::<_, i64>(1) as u64)).collect();
        let mut known: HashMap<String, IdempotencyRecord> = HashMap::new();
        for row in &records {
            match serde_json::from_str::<IdempotencyRecord>(row.get::<_, &str>(1)) {
                Ok(record) => {
                    known.insert(row.get::<_, String>(0), record);
                }
                Err(error) => {
                    let _ = self.client.batch_execute("ROLLBACK").await;
                    return Err(storage(format!("idempotency record: {error}")));
                }
            }
        }
        let mut planner = AppendPlanner::new(Head { position: read_head.0, hash: read_head.1.clone() });
        let plans: Vec<Plan> = group
            .iter()
            .map(|job| {
                planner.plan(
                    &job.request,
                    |stream| versions.get(&stream).copied().unwrap_or(0),
                    |key| Ok(known.get(key).cloned()),
                )
            })
            .collect();
        let rows = Rows::of(&plans, &planner);
        if rows.events.is_empty() {
            let _ = self.client.batch_execute("ROLLBACK").await;
            return Ok(plans);
        }
        // What the head was under the lock: the statement checks it moves from there.
        self.head = Some(read_head);
        if let Err(error) = self.write(&rows, false).await {
            let _ = self.client.batch_execute("ROLLBACK").await;
            return Err(error);
        }
        self.head = Some(rows.head);
        Ok(plans)
    }

    /// Writes a planned group and commits, in one pipelined round trip. `fast`: the transaction
    /// is opened here and the statements verify the writer's assumptions themselves.
    async fn write(&self, rows: &Rows, fast: bool) -> Result<(), StoreError> {
        let s = &self.statements;
        let events = &rows.events;
        let positions: Vec<i64> = events.iter().map(|e| e.position as i64).collect();
        let event_streams: Vec<Uuid> = events.iter().map(|e| e.integration_id).collect();
        let event_versions: Vec<i64> = events.iter().map(|e| e.version as i64).collect();
        let recorded: Vec<DateTime<Utc>> = events.iter().map(|e| e.recorded_at).collect();
        let actors: Vec<&str> = events.iter().map(|e| e.actor.as_str()).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let envelopes: Vec<String> =
            events.iter().map(|e| serde_json::to_string(e).expect("envelopes serialize")).collect();
        let record_keys: Vec<&str> = rows.records.iter().map(|r| r.key.as_str()).collect();
        let record_texts: Vec<String> =
            rows.records.iter().map(|r| serde_json::to_string(r).expect("records serialize")).collect();
        let old_head = self.head.as_ref().map(|h| h.0 as i64).unwrap_or(-1);
        let (new_head, new_hash) = (rows.head.0 as i64, rows.head.1.as_str());
        let notice = new_head.to_string();
        // Streams that existed (advanced from their version) and streams that are new.
        let (mut old_streams, mut olds, mut news, mut new_streams, mut new_versions) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (stream, (before, after)) in &rows.streams {
            if *before == 0 {
                new_streams.push(*stream);
                new_versions.push(*after as i64);
            } else {
                old_streams.push(*stream);
                olds.push(*before as i64);
                news.push(*after as i64);
            }
        }
        let existing = old_streams.len() as i64;

        let params: [&(dyn ToSql + Sync); 20] = [
            &old_head,
            &new_head,
            &new_hash,
            &old_streams,
            &olds,
            &news,
            &new_streams,
            &new_versions,
            &positions,
            &event_streams,
            &event_versions,
            &recorded,
            &actors,
            &types,
            &envelopes,
            &record_keys,
            &record_texts,
            &existing,
            &self.channel,
            &notice,
        ];
        let c = &self.client;
        let outcome = if fast {
            // One statement is one transaction: no BEGIN, no COMMIT, one round trip.
            c.execute(&s.write_group, &params).await.map(|_| ())
        } else {
            futures::try_join!(c.execute(&s.write_group, &params), c.batch_execute("COMMIT")).map(|_| ())
        };
        outcome.map_err(storage)
    }
}
