//! The key console sessions are signed with: 32 random bytes made by the first replica
//! that needs one and kept in the store, so every replica accepts every session.

use ring::rand::{SecureRandom, SystemRandom};

use crate::ops::control_plane::ControlPlane;
use crate::ops::error::OpsError;

impl ControlPlane {
    /// The console's signing key (made and stored if the store has none).
    pub async fn console_key(&self) -> Result<Vec<u8>, OpsError> {
        let mut fresh = vec![0u8; 32];
        SystemRandom::new().fill(&mut fresh).map_err(|_| OpsError::Internal("no randomness from the OS".into()))?;
        Ok(self.stored("console_key", self.store.console_key(fresh)).await?)
    }
}
