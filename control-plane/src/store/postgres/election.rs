//! Electing one replica (the evaluator: the canary's automatic abort) with a session
//! advisory lock, held on a connection of its own. PostgreSQL releases the lock when that
//! session ends (the replica died, or its connection did), and another replica's next try
//! takes it. The holder confirms its session every tick; a failed confirmation gives up
//! the lead at once. So two replicas never both lead while the database can tell them
//! apart; after a partition there may be none until PostgreSQL drops the old session.
//! The holder also records itself in `leaders`, so `status` from any replica names it.

use crate::clock::now_unix_ms;
use crate::store::api::{Candidate, StoreFuture};
use crate::store::error::StoreError;
use crate::store::model::Leader;
use crate::store::postgres::session::connect;
use crate::store::postgres::target::{CALL_TIMEOUT, Target};

/// Any number, the same in every release, apart from the migration lock.
const EVALUATOR_LOCK: i64 = 0x5741_5244_454e_0002;
const ROLE: &str = "evaluator";

/// One replica's candidacy: a session kept across ticks, and whether it holds the lock.
pub struct PgCandidate {
    target: Target,
    replica: String,
    session: Option<tokio_postgres::Client>,
    leading: bool,
}

impl PgCandidate {
    pub fn new(target: Target, replica: String) -> Self {
        PgCandidate { target, replica, session: None, leading: false }
    }

    async fn try_lead(&mut self) -> Result<bool, StoreError> {
        let session = match &mut self.session {
            Some(s) if !s.is_closed() => s,
            _ => {
                self.leading = false;
                self.session.insert(connect(&self.target).await?.0)
            }
        };
        let now = now_unix_ms();
        if self.leading {
            // Confirms the session (and so the lock) is still there.
            session
                .execute("UPDATE leaders SET renewed_unix_ms = $2 WHERE role = $1", &[&ROLE, &now])
                .await
                .map_err(|e| self.target.error(e))?;
            return Ok(true);
        }
        let row = session
            .query_one("SELECT pg_try_advisory_lock($1)", &[&EVALUATOR_LOCK])
            .await
            .map_err(|e| self.target.error(e))?;
        if !row.get::<_, bool>(0) {
            return Ok(false);
        }
        self.leading = true;
        session
            .execute(
                "INSERT INTO leaders (role, replica, since_unix_ms, renewed_unix_ms) VALUES ($1, $2, $3, $3)
                 ON CONFLICT (role) DO UPDATE SET replica = $2, since_unix_ms = $3, renewed_unix_ms = $3",
                &[&ROLE, &self.replica, &now],
            )
            .await
            .map_err(|e| self.target.error(e))?;
        Ok(true)
    }
}

impl Candidate for PgCandidate {
    fn lead(&mut self) -> StoreFuture<'_, bool> {
        Box::pin(async {
            match tokio::time::timeout(CALL_TIMEOUT, self.try_lead()).await {
                Ok(Ok(leading)) => Ok(leading),
                failed => {
                    // Closing the session gives the lock back, if the server still holds it.
                    self.session = None;
                    self.leading = false;
                    Err(match failed {
                        Ok(Err(e)) => e,
                        _ => self.target.unavailable("no answer within the timeout"),
                    })
                }
            }
        })
    }
}

/// The recorded leader.
pub async fn leader(c: &tokio_postgres::Client) -> Result<Option<Leader>, tokio_postgres::Error> {
    let row =
        c.query_opt("SELECT replica, since_unix_ms, renewed_unix_ms FROM leaders WHERE role = $1", &[&ROLE]).await?;
    Ok(row.map(|r| Leader { replica: r.get(0), since_unix_ms: r.get(1), renewed_unix_ms: r.get(2) }))
}
