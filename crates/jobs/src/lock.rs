//! The retention sweeper's lock: one sweeper at a time, cluster-wide.
//!
//! PostgreSQL: a session advisory lock held on a connection of its own (not a
//! pool's, which would keep the lock after going back to the pool); if the
//! holder dies, its connection closes and the lock goes with it. A release
//! unlocks explicitly before closing: the server drops a closed session's
//! locks only when its backend exits, after the client's close has returned,
//! so the next sweeper could still find the lock taken. SQLite and
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
    Postgres {
        conn: Box<PgConnection>,
        /// The arguments of `pg_advisory_unlock(class, hashtext(key))`.
        class: i32,
        key: String,
    },
}

impl SweepLock {
    /// Takes the process-wide lock `mutex`, unless someone holds it.
    pub(crate) fn try_local(mutex: &Arc<tokio::sync::Mutex<()>>) -> Option<Self> {
        mutex.clone().try_lock_owned().ok().map(|guard| Self {
            held: Held::Local(guard),
        })
    }

    /// The advisory lock `(class, hashtext(key))` held by the session of `conn`.
    pub(crate) fn postgres(conn: PgConnection, class: i32, key: String) -> Self {
        Self {
            held: Held::Postgres {
                conn: Box::new(conn),
                class,
                key,
            },
        }
    }

    /// Gives the lock up: once this returns, the next sweeper can take it.
    /// Should the unlock fail, closing the session still frees the lock a
    /// moment later.
    pub async fn release(self) {
        match self.held {
            Held::Local(guard) => drop(guard),
            Held::Postgres { mut conn, class, key } => {
                if let Err(error) = sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2))")
                    .bind(class)
                    .bind(&key)
                    .execute(&mut *conn)
                    .await
                {
                    tracing::warn!(%error, "unlocking the sweeper's lock");
                }
                if let Err(error) = conn.close().await {
                    tracing::debug!(%error, "closing the sweeper's lock connection");
                }
            }
        }
    }
}
