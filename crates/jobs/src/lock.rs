//! The retention sweeper's lock: one sweeper at a time, cluster-wide.
//!
//! PostgreSQL: a session advisory lock held on a connection of its own (not a
//! pool's, which would keep the lock after going back to the pool); if the
//! holder dies, its connection closes and the lock goes with it. SQLite and
//! memory serve one process, so a mutex shared by the store's clones is the
//! whole cluster.

use std::sync::Arc;

use sqlx::{Connection, PgConnection};

/// Held while one sweeper works; [`SweepLock::release`] lets the next one in.
#[derive(Debug)]
pub struct SweepLock {
    held: Held,
}

#[derive(Debug)]
enum Held {
    Local(tokio::sync::OwnedMutexGuard<()>),
    Postgres(Box<PgConnection>),
}

impl SweepLock {
    /// Takes the process-wide lock `mutex`, unless someone holds it.
    pub(crate) fn try_local(mutex: &Arc<tokio::sync::Mutex<()>>) -> Option<Self> {
        mutex.clone().try_lock_owned().ok().map(|guard| Self {
            held: Held::Local(guard),
        })
    }

    /// A lock held by the session of `conn`.
    pub(crate) fn postgres(conn: PgConnection) -> Self {
        Self {
            held: Held::Postgres(Box::new(conn)),
        }
    }

    /// Gives the lock up. Closing the session releases a PostgreSQL advisory
    /// lock, whatever happens to the close itself.
    pub async fn release(self) {
        match self.held {
            Held::Local(guard) => drop(guard),
            Held::Postgres(conn) => {
                if let Err(error) = conn.close().await {
                    tracing::debug!(%error, "closing the sweeper's lock connection");
                }
            }
        }
    }
}
