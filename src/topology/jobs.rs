//! Background jobs (`<root>/jobs/<id>`): work an operator queues with `dbrouter ctl` and
//! the coordinator router runs (`moves::coordinator`) — today drains of a shard. Each
//! record says what to do, where it is (queued, running, done, failed, cancelled) and its
//! progress, rewritten by the coordinator as it goes (compare-and-set); the next
//! coordinator resumes a job whose runner died.

use serde::{Deserialize, Serialize};

use super::zk::ZkStore;
use super::{HasSchema, TopologyError};

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for the coordinator.
    Queued,
    /// A coordinator runs it (or ran it and died: the next one resumes it).
    Running,
    /// Every user was moved.
    Done,
    /// It ended with users not moved (`failed` lists some); queue it again to retry them.
    Failed,
    /// An operator cancelled it: no new move starts (moves under way finish).
    Cancelled,
}

impl JobState {
    /// Whether the job still has work to do.
    pub fn is_open(self) -> bool {
        matches!(self, JobState::Queued | JobState::Running)
    }
}

/// What a job does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum JobKind {
    /// Move every user with rows on `shard` away (its weight is 0 already).
    Drain {
        /// The shard drained.
        shard: String,
        /// Target shards (empty: each user's ring shard).
        to: Vec<String>,
        /// Moves at once.
        parallel: usize,
        /// At most this many moves started per second.
        rate: Option<f64>,
        /// Per move: `--max-hold-ms`.
        max_hold_ms: u64,
    },
}

/// A job record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobDoc {
    /// Schema version.
    pub schema: u32,
    /// Its name (`drain-<shard>`).
    pub id: String,
    /// What it does.
    pub kind: JobKind,
    /// Where it is.
    pub state: JobState,
    /// When it was queued (milliseconds since the Unix epoch).
    pub created_ms: u64,
    /// When its record was last written.
    pub updated_ms: u64,
    /// The router running it.
    #[serde(default)]
    pub runner: Option<String>,
    /// Users to move, as counted when the run (or its last resumption) began.
    #[serde(default)]
    pub total: u64,
    /// Users moved so far.
    #[serde(default)]
    pub moved: u64,
    /// Users whose move failed (the first 20).
    #[serde(default)]
    pub failed: Vec<String>,
    /// How many moves failed.
    #[serde(default)]
    pub failures: u64,
    /// How it ended, or why it is waiting.
    #[serde(default)]
    pub message: Option<String>,
}

impl HasSchema for JobDoc {
    fn schema(&self) -> u32 {
        self.schema
    }
}

/// The records live under this node.
const JOBS: &str = "jobs";

impl ZkStore {
    /// A job record and its znode version.
    pub async fn read_job(&self, id: &str) -> Result<Option<(JobDoc, i32)>, TopologyError> {
        self.read_record(JOBS, id).await
    }

    /// Writes a job record: created when `expected` is `None` (Conflict if it exists),
    /// else a compare-and-set on that znode version.
    pub async fn write_job(
        &self,
        doc: &JobDoc,
        expected: Option<i32>,
    ) -> Result<i32, TopologyError> {
        self.write_record(JOBS, &doc.id, doc, expected).await
    }

    /// Every job record with its znode version, oldest first.
    pub async fn jobs(&self) -> Result<Vec<(JobDoc, i32)>, TopologyError> {
        let mut out = Vec::new();
        for name in self.record_names(JOBS).await? {
            if let Some(job) = self.read_job(&name).await? {
                out.push(job);
            }
        }
        out.sort_by_key(|(j, _)| j.created_ms);
        Ok(out)
    }
}

/// One line per job for `ctl jobs` and `ctl status`.
pub fn describe_jobs(jobs: &[(JobDoc, i32)]) -> String {
    let mut out = String::new();
    for (j, _) in jobs {
        let JobKind::Drain { shard, .. } = &j.kind;
        out.push_str(&format!(
            "job {:<20} drain {:<10} {:<10} {}/{} moved, {} failed{}{}\n",
            j.id,
            shard,
            format!("{:?}", j.state).to_lowercase(),
            j.moved,
            j.total,
            j.failures,
            j.runner
                .as_deref()
                .map_or(String::new(), |r| format!(", runner {r}")),
            j.message
                .as_deref()
                .map_or(String::new(), |m| format!(" ({m})"))
        ));
    }
    out
}
