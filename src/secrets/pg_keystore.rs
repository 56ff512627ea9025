//! Data keys in PostgreSQL: one row per integration in `golive_data_keys`, wrapped by the master
//! key, outside the event log. Shredding deletes the row. Nothing is cached, so a shred through
//! one replica takes effect on every replica at once.
//!
//! What a delete does not do, in PostgreSQL: the old row version stays in the table's pages
//! until VACUUM reclaims it, in the WAL until it is recycled, and in every backup and replica
//! taken before. docs/operations.md says what that means for shredding.

use async_trait::async_trait;
use deadpool_postgres::Pool;

use super::keystore::{Keystore, MasterKey};
use super::{DataKey, SecretsError};
use crate::domain::IntegrationId;

pub struct PgKeystore {
    pool: Pool,
    master: MasterKey,
}

fn db_error(error: impl std::fmt::Display) -> SecretsError {
    SecretsError::Io { path: "postgres:golive_data_keys".into(), message: error.to_string() }
}

impl PgKeystore {
    pub fn new(pool: Pool, master: MasterKey) -> Self {
        Self { pool, master }
    }

    async fn read(&self, integration: IntegrationId) -> Result<Option<DataKey>, SecretsError> {
        let client = self.pool.get().await.map_err(db_error)?;
        let row = client
            .query_opt("SELECT wrapped FROM golive_data_keys WHERE integration = $1", &[&integration.as_uuid()])
            .await
            .map_err(db_error)?;
        row.map(|r| self.master.unwrap(integration, r.get::<_, &str>(0))).transpose()
    }
}

#[async_trait]
impl Keystore for PgKeystore {
    async fn data_key(&self, integration: IntegrationId) -> Result<DataKey, SecretsError> {
        if let Some(key) = self.read(integration).await? {
            return Ok(key);
        }
        // Two replicas may race to create it: the first insert wins, both use the stored one.
        let wrapped = self.master.wrap(integration, &DataKey::generate());
        let client = self.pool.get().await.map_err(db_error)?;
        client
            .execute(
                "INSERT INTO golive_data_keys (integration, wrapped) VALUES ($1, $2) ON CONFLICT (integration) DO NOTHING",
                &[&integration.as_uuid(), &wrapped],
            )
            .await
            .map_err(db_error)?;
        drop(client);
        self.read(integration).await?.ok_or_else(|| db_error("the data key vanished right after it was written"))
    }

    async fn existing_data_key(&self, integration: IntegrationId) -> Result<Option<DataKey>, SecretsError> {
        self.read(integration).await
    }

    async fn shred(&self, integration: IntegrationId) -> Result<bool, SecretsError> {
        let client = self.pool.get().await.map_err(db_error)?;
        let deleted = client
            .execute("DELETE FROM golive_data_keys WHERE integration = $1", &[&integration.as_uuid()])
            .await
            .map_err(db_error)?;
        Ok(deleted > 0)
    }

    async fn export_wrapped(&self) -> Result<Vec<(IntegrationId, String)>, SecretsError> {
        let client = self.pool.get().await.map_err(db_error)?;
        let rows = client.query("SELECT integration, wrapped FROM golive_data_keys", &[]).await.map_err(db_error)?;
        Ok(rows.iter().map(|r| (IntegrationId::from_uuid(r.get(0)), r.get::<_, String>(1))).collect())
    }

    async fn import_wrapped(&self, integration: IntegrationId, wrapped: &str) -> Result<(), SecretsError> {
        self.master.unwrap(integration, wrapped)?;
        let client = self.pool.get().await.map_err(db_error)?;
        client
            .execute(
                "INSERT INTO golive_data_keys (integration, wrapped) VALUES ($1, $2)
                 ON CONFLICT (integration) DO UPDATE SET wrapped = EXCLUDED.wrapped",
                &[&integration.as_uuid(), &wrapped],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
