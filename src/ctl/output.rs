//! What a ctl command prints and how it exits: text for people, or with `--output json`
//! one JSON document on standard output for programs (the shape is versioned by its
//! `format` field, docs/operations.md "Machine-readable ctl"); exit codes 0 done,
//! 1 refused or failed, 2 usage, 3 retry later.

use serde_json::{json, Value};

use crate::failover::OpError;
use crate::topology::TopologyError;

/// The `format` of every JSON document a ctl command prints; a change that removes or
/// retypes a field gets a new number.
pub const FORMAT: &str = "dbrouter-ctl/1";

/// Whether this process prints JSON (`--output json`): progress lines then go to
/// standard error, standard output carries the one document.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets the output mode (once, before the command runs).
pub fn set_json(json: bool) {
    JSON.store(json, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the output is JSON.
pub fn json() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
}

/// How a ctl command ended (its process exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It was done.
    Done = 0,
    /// It was refused (a precondition does not hold) or a step failed; the message says
    /// what was left as it was.
    Refused = 1,
    /// The command line was wrong.
    Usage = 2,
    /// Try again later: ZooKeeper or a router could not be reached, another operation
    /// holds the shard's lock, a concurrent change won.
    Retry = 3,
}

impl Exit {
    /// The name in JSON documents.
    pub fn name(self) -> &'static str {
        match self {
            Exit::Done => "done",
            Exit::Refused => "refused",
            Exit::Usage => "usage",
            Exit::Retry => "retry",
        }
    }
}

/// What a command prints when it is done: its text, and the same as JSON `result`.
#[derive(Debug, Clone)]
pub struct Report {
    /// For people.
    pub text: String,
    /// For programs (the document's `result`).
    pub result: Value,
}

impl Report {
    /// A report whose JSON is `result`.
    pub fn new(text: String, result: Value) -> Self {
        Report { text, result }
    }
}

/// A command that only says what it did: `result` is `{"message": text}`.
impl From<String> for Report {
    fn from(text: String) -> Self {
        let result = json!({ "message": text.trim_end() });
        Report { text, result }
    }
}

/// Why a command was not done, and its exit code.
#[derive(Debug, Clone)]
pub struct CtlError {
    /// The exit code (never [`Exit::Done`]).
    pub exit: Exit,
    /// What happened and what to do.
    pub message: String,
}

impl CtlError {
    /// Try again later (the message says what was unreachable or busy).
    pub fn retry(message: impl Into<String>) -> Self {
        CtlError {
            exit: Exit::Retry,
            message: message.into(),
        }
    }

    /// A wrong command line.
    pub fn usage(message: impl Into<String>) -> Self {
        CtlError {
            exit: Exit::Usage,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A refusal.
impl From<String> for CtlError {
    fn from(message: String) -> Self {
        CtlError {
            exit: Exit::Refused,
            message,
        }
    }
}

/// A refusal.
impl From<&str> for CtlError {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// For helpers that still speak in strings (the exit kind is lost: refused).
impl From<CtlError> for String {
    fn from(e: CtlError) -> Self {
        e.message
    }
}

/// A config file that does not load: refused.
impl From<crate::config::ConfigError> for CtlError {
    fn from(e: crate::config::ConfigError) -> Self {
        e.to_string().into()
    }
}

impl From<TopologyError> for CtlError {
    fn from(e: TopologyError) -> Self {
        let exit = match e {
            TopologyError::Zk(_) | TopologyError::Conflict => Exit::Retry,
            _ => Exit::Refused,
        };
        CtlError {
            exit,
            message: e.to_string(),
        }
    }
}

impl From<OpError> for CtlError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Topology(t) => t.into(),
            OpError::Locked { .. } => CtlError::retry(e.to_string()),
            OpError::Refused(m) | OpError::Failed(m) => m.into(),
        }
    }
}

/// Prints a command's outcome (text, or the JSON document) and returns its exit code.
pub fn finish(outcome: Result<Report, CtlError>) -> std::process::ExitCode {
    let code = match &outcome {
        Ok(_) => Exit::Done as u8,
        Err(e) => e.exit as u8,
    };
    match (outcome, json()) {
        (Ok(report), false) => print!("{}", report.text),
        (Ok(report), true) => println!("{}", done_document(report.result)),
        (Err(e), false) => eprintln!("error: {e}"),
        (Err(e), true) => println!("{}", error_document(&e)),
    }
    std::process::ExitCode::from(code)
}

/// Runs an async command on a runtime of its own and prints its outcome.
pub fn run<F>(work: impl FnOnce() -> F) -> std::process::ExitCode
where
    F: std::future::Future<Output = Result<Report, CtlError>>,
{
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => finish(runtime.block_on(work())),
        Err(e) => finish(Err(CtlError::retry(format!(
            "cannot start the async runtime: {e}"
        )))),
    }
}

/// A command's future, boxed (the CLI picks one per subcommand).
pub type CtlFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Report, CtlError>>>>;

/// Boxes a command's future, its text or report made a [`Report`], its error a
/// [`CtlError`].
pub fn boxed<R, E>(work: impl std::future::Future<Output = Result<R, E>> + 'static) -> CtlFuture
where
    R: Into<Report>,
    E: Into<CtlError>,
{
    Box::pin(async move { work.await.map(Into::into).map_err(Into::into) })
}

/// The JSON document of a command that was done.
pub fn done_document(result: Value) -> Value {
    json!({ "format": FORMAT, "ok": true, "exit_code": 0, "result": result })
}

/// The JSON document of a command that was not done.
pub fn error_document(e: &CtlError) -> Value {
    json!({
        "format": FORMAT,
        "ok": false,
        "exit_code": e.exit as u8,
        "error": { "kind": e.exit.name(), "message": e.message },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_exit_codes() {
        let locked = OpError::Locked {
            shard: "s1".into(),
            holder: "promote".into(),
        };
        assert_eq!(CtlError::from(locked).exit, Exit::Retry);
        assert_eq!(
            CtlError::from(OpError::Refused("no".into())).exit,
            Exit::Refused
        );
        assert_eq!(
            CtlError::from(OpError::Topology(TopologyError::Zk("lost".into()))).exit,
            Exit::Retry
        );
        assert_eq!(
            CtlError::from(TopologyError::NotInitialized("/x".into())).exit,
            Exit::Refused
        );
        let doc = error_document(&CtlError::retry("later"));
        assert_eq!(doc["exit_code"], 3);
        assert_eq!(doc["error"]["kind"], "retry");
        assert_eq!(doc["format"], FORMAT);
        let doc = done_document(Report::from("moved\n".to_string()).result);
        assert_eq!(doc["result"]["message"], "moved");
        assert_eq!(doc["ok"], true);
    }
}
