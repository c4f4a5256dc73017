//! Settings: small JSON values by key (UI state such as window geometry).

use crate::error::StoreError;
use crate::open::Store;
use crate::time::now_ms;

impl Store {
    /// Reads a setting.
    pub async fn setting(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(text,)| {
            serde_json::from_str(&text).map_err(|e| {
                StoreError::Invalid(format!("setting `{key}` holds invalid JSON: {e}"))
            })
        })
        .transpose()
    }

    /// Writes a setting.
    pub async fn set_setting(
        &self,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value.to_string())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
