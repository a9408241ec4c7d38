//! The jobs list: filters, pages and the opaque cursor between them, shared by
//! every store so their pages agree.

use atelier_core::event::JobStatus;
use atelier_core::job::JobId;
use atelier_core::pipeline::Stage;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::JobRecord;

/// Jobs a page holds when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Most jobs one page holds: a page carries whole jobs (results included).
pub const MAX_PAGE_SIZE: u32 = 200;

/// Which jobs to list, newest first (by creation time, then id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQuery {
    /// Only this tenant's jobs; `None` = every tenant's (admins).
    pub tenant: Option<String>,
    pub status: Option<JobStatus>,
    /// Only jobs whose current (furthest started) stage is this one.
    pub stage: Option<Stage>,
    /// Only jobs created at or after this instant, ms since the Unix epoch.
    pub since_ms: Option<u64>,
    /// At most this many jobs (clamped to 1..=[`MAX_PAGE_SIZE`]).
    pub limit: u32,
    /// Only jobs older than this one: where the previous page ended.
    pub after: Option<JobCursor>,
}

impl Default for JobQuery {
    fn default() -> Self {
        Self {
            tenant: None,
            status: None,
            stage: None,
            since_ms: None,
            limit: DEFAULT_PAGE_SIZE,
            after: None,
        }
    }
}

impl JobQuery {
    /// The page size to use, within bounds.
    pub fn page_size(&self) -> u32 {
        self.limit.clamp(1, MAX_PAGE_SIZE)
    }

    /// Rows a store fetches: one more than the page, to know whether another follows.
    pub(crate) fn fetch_size(&self) -> u32 {
        self.page_size() + 1
    }

    /// Whether `job` passes every filter (the memory store's WHERE clause).
    pub(crate) fn matches(&self, job: &JobRecord) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == job.tenant)
            && self.status.is_none_or(|s| s == job.status)
            && self.stage.is_none_or(|s| Some(s) == job.current_stage)
            && self.since_ms.is_none_or(|since| job.created_at_ms >= since)
            && self.after.is_none_or(|c| c.is_after(job))
    }
}

/// One page of the jobs list.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<JobRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<JobCursor>,
}

impl JobPage {
    /// The page of `rows` (newest first, up to one more than the page size).
    pub(crate) fn from_rows(mut rows: Vec<JobRecord>, query: &JobQuery) -> Self {
        let size = usize::try_from(query.page_size()).unwrap_or(usize::MAX);
        let more = rows.len() > size;
        rows.truncate(size);
        let next = more.then(|| rows.last().map(JobCursor::of)).flatten();
        Self { jobs: rows, next }
    }
}

/// The position after a job in the list: its creation time and id. Clients
/// see it only as an opaque token ([`JobCursor::encode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobCursor {
    pub created_at_ms: u64,
    pub id: JobId,
}

/// Separates the two fields inside the token.
const CURSOR_SEPARATOR: char = '.';

impl JobCursor {
    /// The position just after `job`.
    pub fn of(job: &JobRecord) -> Self {
        Self {
            created_at_ms: job.created_at_ms,
            id: job.id,
        }
    }

    /// Whether `job` comes after this position (is older) in the list's order.
    pub(crate) fn is_after(&self, job: &JobRecord) -> bool {
        (job.created_at_ms, job.id.0) < (self.created_at_ms, self.id.0)
    }

    /// The token handed to clients: URL-safe, opaque.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}{CURSOR_SEPARATOR}{}", self.created_at_ms, self.id))
    }

    /// The position a token names; `None` for anything [`JobCursor::encode`]
    /// did not make.
    pub fn decode(token: &str) -> Option<Self> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
        let (at, id) = text.split_once(CURSOR_SEPARATOR)?;
        Some(Self {
            created_at_ms: at.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_anything_else() {
        let cursor = JobCursor {
            created_at_ms: 1_764_000_000_123,
            id: JobId::new(),
        };
        assert_eq!(JobCursor::decode(&cursor.encode()), Some(cursor));
        for bad in [
            "",
            "x",
            "!!!",
            &URL_SAFE_NO_PAD.encode("12.not-a-uuid"),
            &URL_SAFE_NO_PAD.encode("abc"),
        ] {
            assert_eq!(JobCursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn page_sizes_stay_in_bounds() {
        let query = |limit| JobQuery {
            limit,
            ..JobQuery::default()
        };
        assert_eq!(query(0).page_size(), 1);
        assert_eq!(query(10).page_size(), 10);
        assert_eq!(query(10_000).page_size(), MAX_PAGE_SIZE);
    }
}
