//! The one way out of the build orchestrator: typed [`Event`]s, sent through
//! an [`Events`] handle to the reporter (`report::reporter`), which renders
//! them as plain lines, a live terminal view, or nothing. The orchestrator
//! never formats text for people and never prints; a reporter never decides
//! anything.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::build::shard::Shard;
use crate::report::Report;

/// Build or reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// The target is built.
    Build,
    /// An image with its fingerprint exists and is reused.
    Reuse,
}

/// Why a target is built or reused (the plan's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// No image of this target exists yet.
    New,
    /// Images exist, none with this fingerprint.
    Changed,
    /// An image with this fingerprint exists.
    Unchanged,
    /// `--force`.
    Forced,
    /// An image with this fingerprint exists but is older than `--max-age`.
    Expired,
}

impl Reason {
    /// The report's spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::New => "new",
            Reason::Changed => "changed",
            Reason::Unchanged => "unchanged",
            Reason::Forced => "forced",
            Reason::Expired => "expired",
        }
    }
}

/// What pulling a target's `latest` as build cache gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CachePull {
    /// Pulled; it is a cache source.
    Found,
    /// Not in the registry (a first build).
    Missing,
    /// The pull failed; the build goes on without it.
    Failed(String),
}

/// Why a tag was left where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TagReason {
    /// The repository's tags are immutable and it names another image.
    Immutable {
        /// What it names.
        existing: String,
    },
    /// The image already has as many tags as the registry allows.
    Limit,
}

/// A fact about the run's setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// `--local` without `--registry`.
    LocalOnly,
    /// The AWS session in use.
    Aws {
        /// Account id.
        account: String,
        /// Region.
        region: String,
        /// Registry host.
        registry: String,
    },
    /// `--create-repos` created this repository (with mutable tags when
    /// the API refused immutable ones).
    RepositoryCreated {
        /// The repository.
        repository: String,
        /// Whether its tags are mutable.
        mutable: bool,
    },
    /// The builder in use, and why when it is not the one asked for.
    Builder {
        /// What builds (`BuildKit v0.13 in Docker 26.1.5, …`).
        description: String,
        /// Why `auto` fell back to the classic builder, if it did.
        fallback: Option<String>,
    },
}

/// One thing that happened, for the reporters.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// A fact about the run's setup.
    Notice(Notice),
    /// `check`'s findings, found before anything is built (rendered text).
    Findings {
        /// The findings as `stackbake check` prints them.
        text: String,
        /// Whether any is an error (the build stops).
        errors: bool,
    },
    /// Build or reuse was decided for a target.
    Decided {
        /// The target (stage name).
        target: String,
        /// Build or reuse.
        action: Action,
        /// Why.
        reason: Reason,
        /// `sha256:<hex>`.
        fingerprint: String,
    },
    /// An input from outside the context could not be resolved, and
    /// `--allow-unresolved` fingerprints it by its text.
    Unresolved {
        /// The image reference or URL.
        input: String,
        /// Why it could not be resolved.
        error: String,
    },
    /// An image a target to build uses (a base, a `--from` image) points
    /// elsewhere than when the target's previous image was built.
    BaseMoved {
        /// The target.
        target: String,
        /// The image reference.
        image: String,
        /// What it pointed to (digest or image id).
        from: String,
        /// What it points to now.
        to: String,
    },
    /// A target's `latest` was pulled, or not, as build cache.
    CachePulled {
        /// The image reference.
        image: String,
        /// What happened.
        outcome: CachePull,
    },
    /// A cache source a build could not use; the build goes on without it.
    CacheSkipped {
        /// The unit.
        unit: String,
        /// The image or cache reference.
        source: String,
        /// Why.
        reason: String,
    },
    /// A build could not write its registry cache; the build still succeeded.
    CacheNotWritten {
        /// The unit.
        unit: String,
        /// Why.
        reason: String,
    },
    /// A unit (a target, or a stage several targets share) started building.
    UnitStarted {
        /// The unit's stage name.
        unit: String,
    },
    /// A build step started (classic builder: `Step 3/8 : RUN …`).
    Step {
        /// The unit.
        unit: String,
        /// The step as the builder names it.
        name: String,
    },
    /// One line of a unit's build or push log.
    Log {
        /// The unit.
        unit: String,
        /// The line.
        line: String,
    },
    /// An image push started.
    Pushing {
        /// The unit.
        unit: String,
        /// `repo:tag` being pushed.
        image: String,
    },
    /// A transient failure; the operation is tried again after `wait`.
    Retry {
        /// The unit.
        unit: String,
        /// What failed (`push`).
        what: &'static str,
        /// The failure.
        error: String,
        /// The wait before the next attempt.
        wait: Duration,
    },
    /// A unit ended.
    UnitFinished {
        /// The unit.
        unit: String,
        /// Wall time of build and push.
        seconds: f64,
        /// Whether it succeeded.
        ok: bool,
    },
    /// A reused image got the commit tag by a manifest copy.
    Reused {
        /// The target.
        target: String,
        /// `[host/]repo@digest` (or `repo:fp-…` when only local).
        image: String,
        /// The tag it got.
        tag: String,
    },
    /// A tag was not moved onto an image (immutable, or the tag limit).
    TagNotMoved {
        /// `host/repo`.
        repository: String,
        /// The tag.
        tag: String,
        /// Why.
        reason: TagReason,
    },
    /// A build task panicked (a bug).
    Internal(String),
    /// SIGINT or SIGTERM: the run is stopping.
    Interrupted,
    /// A build container of a stopped run was removed.
    ContainerRemoved(String),
    /// Removing a stopped run's build containers failed.
    CleanupFailed(String),
    /// The artifact files were renamed into place in this directory.
    ArtifactWritten(PathBuf),
    /// `--shard K/N`: the targets this shard builds.
    Sharded {
        /// Which shard.
        shard: Shard,
        /// The targets it builds (stage names), in stage order.
        targets: Vec<String>,
        /// Targets to build that other shards build.
        elsewhere: usize,
        /// Targets that need no build (left to the assemble step).
        unchanged: usize,
    },
    /// `--shard K/N` with nothing to build: a success, said so.
    ShardEmpty {
        /// Which shard.
        shard: Shard,
        /// Targets to build that other shards build.
        elsewhere: usize,
        /// Targets that need no build.
        unchanged: usize,
    },
    /// `--env-file` was written.
    EnvFileWritten {
        /// Where.
        path: PathBuf,
        /// How many variables.
        variables: usize,
        /// Bytes of names and values.
        bytes: usize,
        /// CodePipeline's limit on one action's output variables, when the
        /// file is larger.
        over_limit: Option<usize>,
    },
    /// A shard's report was written into this directory (a shard writes no
    /// task definition).
    ReportWritten(PathBuf),
    /// `plan` finished: its report.
    Planned(Box<Report>),
    /// `build` finished: its report.
    Built(Box<Report>),
    /// A diagnostic line (`--verbose`, `STACKBAKE_LOG`), already formatted.
    Diagnostic(String),
}

/// What travels to the reporter: events, then one stop.
pub(crate) enum Message {
    /// An event.
    Event(Event),
    /// The run is over; render these last words (the error), then stop.
    Stop(Option<String>),
}

/// The sending side: cheap to clone, usable from any thread or task. Events
/// sent after the reporter stopped are dropped.
#[derive(Clone)]
pub(crate) struct Events {
    tx: Sender<Message>,
}

impl Events {
    /// Events that go to `tx`.
    pub(crate) fn new(tx: Sender<Message>) -> Events {
        Events { tx }
    }

    /// Sends `event`.
    pub(crate) fn send(&self, event: Event) {
        let _ = self.tx.send(Message::Event(event));
    }

    /// A handle for one unit's log lines and steps.
    pub(crate) fn unit(&self, unit: &str) -> UnitEvents {
        UnitEvents {
            events: self.clone(),
            unit: unit.to_string(),
            tail: Arc::default(),
        }
    }
}

/// Lines of a failed unit's log shown in its error.
pub(crate) const LOG_TAIL: usize = 15;

/// [`Events`] about one unit: what a builder or a push reports through. It
/// keeps the last [`LOG_TAIL`] log lines for the error if the unit fails.
#[derive(Clone)]
pub(crate) struct UnitEvents {
    events: Events,
    unit: String,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl UnitEvents {
    /// The unit's name.
    pub(crate) fn unit(&self) -> &str {
        &self.unit
    }

    /// A log line.
    pub(crate) fn log(&self, line: &str) {
        {
            let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
            if tail.len() == LOG_TAIL {
                tail.pop_front();
            }
            tail.push_back(line.to_string());
        }
        self.events.send(Event::Log {
            unit: self.unit.clone(),
            line: line.to_string(),
        });
    }

    /// The last log lines, oldest first.
    pub(crate) fn tail(&self) -> Vec<String> {
        self.tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// A step started.
    pub(crate) fn step(&self, name: &str) {
        self.events.send(Event::Step {
            unit: self.unit.clone(),
            name: name.to_string(),
        });
    }

    /// Any other event.
    pub(crate) fn send(&self, event: Event) {
        self.events.send(event);
    }
}
