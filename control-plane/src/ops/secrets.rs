//! Webhook secrets: a new value is stored beside the ones already set (which keep
//! verifying until they retire), then fanned out to every service whose current policy
//! names the secret. Values never leave the store but towards sidecars.

use warden_policy::yaml::is_secret_name;

use crate::ops::control_plane::ControlPlane;
use crate::ops::error::OpsError;
use crate::store::SecretRow;

/// The largest secret value accepted.
const MAX_SECRET_BYTES: usize = 4096;

impl ControlPlane {
    /// Adds a value to the secret `name`; the values already set keep verifying for
    /// `retire_previous_after_ms` more. Returns the new value's row.
    pub async fn set_secret(
        &self,
        name: &str,
        value: Vec<u8>,
        retire_previous_after_ms: u64,
    ) -> Result<SecretRow, OpsError> {
        if !is_secret_name(name) {
            return Err(OpsError::Invalid(format!(
                "'{name}' is not a secret name: 1-63 characters of letters, digits, '-', '_' and '.'"
            )));
        }
        if value.is_empty() || value.len() > MAX_SECRET_BYTES {
            return Err(OpsError::Invalid(format!("a secret value is 1 to {MAX_SECRET_BYTES} bytes")));
        }
        let retire = i64::try_from(retire_previous_after_ms).unwrap_or(i64::MAX);
        let row = self.stored("set_secret", self.store.set_secret(name, value, retire)).await?;
        for service in self.hub.services() {
            if self.hub.secret_names(&service).contains(&row.name) {
                self.refresh_credentials(&service).await?;
            }
        }
        tracing::info!(name = %row.name, id = %row.id, "secret value added");
        Ok(row)
    }

    /// Every secret value still verifying, without the values.
    pub async fn secrets(&self) -> Result<Vec<SecretRow>, OpsError> {
        Ok(self.stored("secrets", self.store.secrets()).await?)
    }
}
