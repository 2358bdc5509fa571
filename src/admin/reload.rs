//! The result of configuration reloads as the operator sees it: the last reload (when, what
//! asked for it, applied or refused and why, the fields applied) and the restart-only
//! fields the file changes but the running router does not apply until restarted. The
//! reload itself is carried out by the composition root ([`crate::server`]), which hands
//! the admin listener a [`Trigger`] for `POST /reload`.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// One reload, as logged, counted, shown and answered to `POST /reload`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// When it was done (ms since the Unix epoch).
    pub at_ms: u64,
    /// What asked for it: `SIGHUP` or `admin` (`POST /reload`, `dbrouter ctl reload`).
    pub trigger: String,
    /// Applied (true) or refused as a whole (false).
    pub ok: bool,
    /// Why it was refused, naming the field.
    pub error: Option<String>,
    /// Reloadable fields that changed and are in force now.
    pub applied: Vec<String>,
    /// Restart-only fields whose value in the file differs from the running one.
    pub needs_restart: Vec<String>,
}

/// Carries out one reload (serialized by its owner) and says how it went.
pub type Trigger =
    Arc<dyn Fn(&'static str) -> Pin<Box<dyn Future<Output = ReloadOutcome> + Send>> + Send + Sync>;

/// What the admin listener knows about reloads.
#[derive(Default)]
pub struct Reloads {
    state: Mutex<State>,
    trigger: std::sync::OnceLock<Trigger>,
}

#[derive(Default)]
struct State {
    path: Option<PathBuf>,
    succeeded: u64,
    failed: u64,
    last: Option<ReloadOutcome>,
    last_ok_ms: Option<u64>,
    needs_restart: Vec<String>,
}

/// The reloads section of the status page and `/status.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadStatus {
    /// The config file reloads read.
    pub path: Option<String>,
    /// Reloads applied since start.
    pub reloads: u64,
    /// Reloads refused since start.
    pub failures: u64,
    /// The last one, if any.
    pub last: Option<ReloadOutcome>,
    /// When the last applied one was done (ms since the Unix epoch).
    pub last_success_ms: Option<u64>,
    /// Restart-only fields changed in the file, as of the last applied reload.
    pub needs_restart: Vec<String>,
}

impl std::fmt::Debug for Reloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloads").finish_non_exhaustive()
    }
}

impl Reloads {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reloads of `path` are carried out by `trigger` from now on.
    pub fn enable(&self, path: PathBuf, trigger: Trigger) {
        self.state().path = Some(path);
        let _ = self.trigger.set(trigger);
    }

    /// Runs a reload, if the router serves yet.
    pub async fn run(&self, trigger: &'static str) -> Option<ReloadOutcome> {
        let run = self.trigger.get()?;
        Some(run(trigger).await)
    }

    /// Records a reload's outcome (counted; the restart-only list is replaced only by an
    /// applied reload, since a refused one changed nothing).
    pub fn record(&self, outcome: &ReloadOutcome) {
        let mut state = self.state();
        if outcome.ok {
            state.succeeded += 1;
            state.last_ok_ms = Some(outcome.at_ms);
            state.needs_restart = outcome.needs_restart.clone();
        } else {
            state.failed += 1;
        }
        state.last = Some(outcome.clone());
        crate::metrics::config_reload(outcome.ok);
    }

    /// The section of the status page.
    pub fn status(&self) -> ReloadStatus {
        let state = self.state();
        ReloadStatus {
            path: state.path.as_ref().map(|p| p.display().to_string()),
            reloads: state.succeeded,
            failures: state.failed,
            last: state.last.clone(),
            last_success_ms: state.last_ok_ms,
            needs_restart: state.needs_restart.clone(),
        }
    }
}
