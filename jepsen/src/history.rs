//! Histories: what every client asked and what it was told, in the order it happened.
//!
//! A history is JSON lines, one event per line, written as events happen (so a run cut
//! short still leaves the history up to the cut): `{"index", "time", "type", "process",
//! "f", "value", ...}`, Jepsen's format. `time` is nanoseconds since the run began, from
//! one monotonic clock in the harness, so real-time order between processes is well
//! defined. `type` is `invoke` for a request and `ok`, `fail` or `info` for its
//! completion:
//!
//! - `ok`: it happened, with the value the client was told;
//! - `fail`: it certainly did not happen (the server said so before any effect);
//! - `info`: nobody knows (a timeout, a broken connection, an outcome-unknown error).
//!   The process that issued it never issues anything again: its operation may still
//!   take effect at any later time, so the worker continues as a fresh process.
//!
//! The nemesis records its faults as `info` events of process `"nemesis"`.
//! [`pair`] turns a history into operations (an invocation with its completion) for the
//! checkers.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// An event's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A request was sent.
    Invoke,
    /// It happened.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Its outcome is unknown.
    Info,
}

/// Who issued an event: a logical client process, or the nemesis.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    /// A client process: sequential, one operation at a time.
    Client(u64),
    /// The fault injector (`"nemesis"`).
    Named(String),
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(id) => write!(f, "process {id}"),
            Process::Named(name) => f.write_str(name),
        }
    }
}

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the history, from 0.
    pub index: u64,
    /// Nanoseconds since the run began.
    pub time: u64,
    /// What kind of event.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Who.
    pub process: Process,
    /// The operation's name (`read`, `write`, `cas`, `txn`, `transfer`, ...).
    pub f: String,
    /// Its argument (on `invoke`) or result (on completion), as the workload defines.
    #[serde(default)]
    pub value: Value,
    /// The node the client talked to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why it failed or is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Appends events to a history file as they happen, each line flushed at once; shared
/// by every worker of a run (the lock also makes `index` and `time` increase together).
pub struct Recorder {
    started: Instant,
    inner: Mutex<RecorderState>,
}

struct RecorderState {
    next_index: u64,
    out: Box<dyn Write + Send>,
    events: Vec<Event>,
}

impl Recorder {
    /// Records to `out`, timing from `started`.
    pub fn new(out: Box<dyn Write + Send>, started: Instant) -> Recorder {
        Recorder {
            started,
            inner: Mutex::new(RecorderState {
                next_index: 0,
                out,
                events: Vec::new(),
            }),
        }
    }

    /// Records one event now; returns it as written. A write error is reported, not
    /// hidden: a history with a hole would check as something it is not.
    pub fn record(
        &self,
        kind: EventType,
        process: Process,
        f: &str,
        value: Value,
        node: Option<String>,
        error: Option<String>,
    ) -> std::io::Result<Event> {
        let mut state = self
            .inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let event = Event {
            index: state.next_index,
            time: self.started.elapsed().as_nanos() as u64,
            kind,
            process,
            f: f.to_string(),
            value,
            node,
            error,
        };
        let line = serde_json::to_string(&event).map_err(std::io::Error::other)?;
        writeln!(state.out, "{line}")?;
        state.out.flush()?;
        state.next_index += 1;
        state.events.push(event.clone());
        Ok(event)
    }

    /// Every event recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .events
            .clone()
    }
}

/// Reads a history file; names the line of the first malformed event.
pub fn read(path: &Path) -> Result<Vec<Event>, String> {
    let file = std::fs::File::open(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut events = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|error| format!("{}: {error}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(&line)
            .map_err(|error| format!("{} line {}: {error}", path.display(), number + 1))?;
        events.push(event);
    }
    Ok(events)
}

/// One client operation: its invocation and, unless the history ends first, its
/// completion.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// The issuing process.
    pub process: u64,
    /// The operation's name.
    pub f: String,
    /// The invocation's value.
    pub invoke: Value,
    /// When it was invoked (ns).
    pub invoked_at: u64,
    /// How it completed: `Ok`, `Fail` or `Info` (also for one never completed).
    pub outcome: EventType,
    /// The completion's value (the invocation's when it never completed).
    pub value: Value,
    /// When it completed (ns); `None` for `info`: it may take effect any time after
    /// its invocation, or never.
    pub completed_at: Option<u64>,
    /// The history index of its invocation, to name it in verdicts.
    pub index: u64,
    /// The error the client was given, if any.
    pub error: Option<String>,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = match self.outcome {
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info | EventType::Invoke => "info",
        };
        write!(
            f,
            "#{} process {} {} {} -> {} {}",
            self.index, self.process, self.f, self.invoke, outcome, self.value
        )
    }
}

/// Pairs each client invocation with the completion of the same process that follows
/// it. Nemesis events are left out. Fails on a history that breaks the rules (a
/// process with two operations at once, a completion without an invocation, a process
/// reused after `info`): a checker must not guess what such a history means.
pub fn pair(events: &[Event]) -> Result<Vec<Operation>, String> {
    let mut open: HashMap<u64, usize> = HashMap::new();
    let mut retired: std::collections::HashSet<u64> = std::collections::HashSet::new();
    let mut operations: Vec<Operation> = Vec::new();
    for event in events {
        let Process::Client(process) = event.process else {
            continue;
        };
        if retired.contains(&process) {
            return Err(format!(
                "event #{}: process {process} acts again after an info completion",
                event.index
            ));
        }
        match event.kind {
            EventType::Invoke => {
                if let Some(&pending) = open.get(&process) {
                    return Err(format!(
                        "event #{}: process {process} invokes while #{} is still open",
                        event.index, operations[pending].index
                    ));
                }
                open.insert(process, operations.len());
                operations.push(Operation {
                    process,
                    f: event.f.clone(),
                    invoke: event.value.clone(),
                    invoked_at: event.time,
                    outcome: EventType::Info,
                    value: event.value.clone(),
                    completed_at: None,
                    index: event.index,
                    error: None,
                });
            }
            kind => {
                let Some(position) = open.remove(&process) else {
                    return Err(format!(
                        "event #{}: process {process} completes nothing",
                        event.index
                    ));
                };
                let operation = &mut operations[position];
                if operation.f != event.f {
                    return Err(format!(
                        "event #{}: completes {} but #{} invoked {}",
                        event.index, event.f, operation.index, operation.f
                    ));
                }
                operation.outcome = kind;
                operation.value = event.value.clone();
                operation.error = event.error.clone();
                if kind == EventType::Info {
                    retired.insert(process);
                } else {
                    operation.completed_at = Some(event.time);
                }
            }
        }
    }
    Ok(operations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(index: u64, kind: EventType, process: u64, f: &str, value: Value) -> Event {
        Event {
            index,
            time: index * 10,
            kind,
            process: Process::Client(process),
            f: f.into(),
            value,
            node: None,
            error: None,
        }
    }

    /// The recorder writes one JSON line per event, and reading it back gives the same
    /// events; pairing matches completions to invocations by process.
    #[test]
    fn recorded_histories_read_back_and_pair() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let out = file.reopen().expect("reopen");
        let recorder = Recorder::new(Box::new(out), Instant::now());
        let client = |id| Process::Client(id);
        recorder
            .record(
                EventType::Invoke,
                client(1),
                "write",
                json!([1, 5]),
                None,
                None,
            )
            .expect("record");
        recorder
            .record(
                EventType::Invoke,
                client(2),
                "read",
                json!([1, null]),
                None,
                None,
            )
            .expect("record");
        recorder
            .record(EventType::Ok, client(1), "write", json!([1, 5]), None, None)
            .expect("record");
        recorder
            .record(
                EventType::Info,
                Process::Named("nemesis".into()),
                "start-partition",
                json!("leader"),
                None,
                None,
            )
            .expect("record");
        recorder
            .record(
                EventType::Info,
                client(2),
                "read",
                json!([1, null]),
                None,
                Some("timeout".into()),
            )
            .expect("record");
        let events = read(file.path()).expect("read back");
        assert_eq!(events, recorder.events());
        assert!(events.windows(2).all(|w| w[0].time <= w[1].time));
        let operations = pair(&events).expect("pair");
        assert_eq!(operations.len(), 2);
        assert_eq!(operations[0].outcome, EventType::Ok);
        assert!(operations[0].completed_at.is_some());
        assert_eq!(operations[1].outcome, EventType::Info);
        assert_eq!(operations[1].completed_at, None);
        assert_eq!(operations[1].error.as_deref(), Some("timeout"));
    }

    /// Histories that break the rules are refused, naming the event.
    #[test]
    fn broken_histories_are_refused() {
        let double = [
            event(0, EventType::Invoke, 1, "read", json!(null)),
            event(1, EventType::Invoke, 1, "read", json!(null)),
        ];
        assert!(pair(&double).unwrap_err().contains("still open"));
        let orphan = [event(0, EventType::Ok, 1, "read", json!(null))];
        assert!(pair(&orphan).unwrap_err().contains("completes nothing"));
        let reused = [
            event(0, EventType::Invoke, 1, "read", json!(null)),
            event(1, EventType::Info, 1, "read", json!(null)),
            event(2, EventType::Invoke, 1, "read", json!(null)),
        ];
        assert!(pair(&reused).unwrap_err().contains("after an info"));
    }
}
