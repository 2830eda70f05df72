//! BuildKit's status stream, turned into what a person reads: one `Step`
//! event per build step as it starts, and log lines in the form `docker
//! buildx --progress plain` prints (`#5 [api 2/3] RUN …`, its output as
//! `#5 …`, then `#5 CACHED`, `#5 DONE 1.2s` or `#5 ERROR: …`).
//!
//! Updates for one vertex arrive out of order (a "completed" update before
//! the "started" one) and repeat: they are merged by digest, a completion
//! wins, `cached` sticks, and each line is printed once. A cache import that
//! failed (`importing cache manifest from …` with an error) is a skipped
//! cache source, never a failed build.
//!
//! Builds in flight at the same time share a step they have in common
//! (BuildKit runs a vertex once for every build that needs it, and every
//! one of them reports it). The first build to report it owns it; the
//! others say `#5 SHARED with [base-owner]` instead of `DONE`, and leave
//! its output to the owner, so a shared stage reads as what it is: run once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bollard_buildkit_proto::google::protobuf::Timestamp;
use bollard_buildkit_proto::moby::buildkit::v1::{StatusResponse, Vertex, VertexLog};

/// Lines kept per vertex for a failure's message.
const VERTEX_TAIL: usize = 15;

/// What the tracker wants said, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Said {
    /// A build step started (for the live view).
    Step(String),
    /// A log line.
    Line(String),
    /// A cache source could not be used.
    CacheSkipped {
        /// The reference.
        source: String,
        /// BuildKit's words.
        reason: String,
    },
    /// The cache could not be written.
    CacheNotWritten(String),
}

#[derive(Debug, Default)]
struct VertexState {
    number: usize,
    name: String,
    announced: bool,
    started: bool,
    cached: bool,
    done: bool,
    error: Option<String>,
    started_at: Option<f64>,
    partial: HashMap<i64, String>,
    tail: Vec<String>,
    /// The build that owns this step, when it is not this one.
    shared_with: Option<String>,
}

/// Which build of the run first reported each step (vertex digest → unit).
pub(crate) type Owners = Arc<Mutex<HashMap<String, String>>>;

/// Merges status messages of one build.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    vertices: HashMap<String, VertexState>,
    next_number: usize,
    /// This build's unit and the run's step owners.
    claim: Option<(String, Owners)>,
}

fn seconds(t: Option<&Timestamp>) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    t.map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
}

impl Tracker {
    /// A tracker for `unit`'s build, sharing step ownership through `owners`.
    pub(crate) fn for_unit(unit: &str, owners: Owners) -> Tracker {
        Tracker {
            claim: Some((unit.to_string(), owners)),
            ..Tracker::default()
        }
    }

    /// The unit that owns step `digest` if another one does; claims it otherwise.
    fn owner(&self, digest: &str) -> Option<String> {
        let (me, owners) = self.claim.as_ref()?;
        let mut o = owners.lock().unwrap_or_else(|p| p.into_inner());
        let owner = o.entry(digest.to_string()).or_insert_with(|| me.clone());
        (owner != me).then(|| owner.clone())
    }

    /// What `msg` adds to what was said.
    pub(crate) fn update(&mut self, msg: &StatusResponse) -> Vec<Said> {
        let mut out = Vec::new();
        for v in &msg.vertexes {
            self.vertex(v, &mut out);
        }
        for l in &msg.logs {
            self.log(l, &mut out);
        }
        out
    }

    fn state(&mut self, digest: &str) -> &mut VertexState {
        let next = &mut self.next_number;
        self.vertices.entry(digest.to_string()).or_insert_with(|| {
            *next += 1;
            VertexState {
                number: *next,
                ..Default::default()
            }
        })
    }

    fn vertex(&mut self, v: &Vertex, out: &mut Vec<Said>) {
        let s = self.state(&v.digest);
        if s.name.is_empty() && !v.name.is_empty() {
            s.name.clone_from(&v.name);
        }
        if v.started.is_some() && !s.started && !v.cached && is_step(&v.name) {
            let owner = self.owner(&v.digest);
            if let Some(s) = self.vertices.get_mut(&v.digest) {
                s.shared_with = owner;
            }
        }
        self.vertex_rest(v, out);
    }

    /// A vertex update, once its step's owner is known.
    fn vertex_rest(&mut self, v: &Vertex, out: &mut Vec<Said>) {
        let Some(s) = self.vertices.get_mut(&v.digest) else {
            return;
        };
        let n = s.number;
        let announce = |s: &mut VertexState, out: &mut Vec<Said>| {
            if !s.announced {
                s.announced = true;
                out.push(Said::Line(format!("#{n} {}", s.name)));
                if is_step(&s.name) {
                    out.push(Said::Step(s.name.clone()));
                }
            }
        };
        if v.started.is_some() && !s.started {
            s.started = true;
            s.started_at = seconds(v.started.as_ref());
            announce(s, out);
        }
        if v.cached && !s.cached {
            s.cached = true;
            announce(s, out);
            if !s.done {
                out.push(Said::Line(format!("#{n} CACHED")));
            }
            s.done = true;
        }
        if !v.error.is_empty() && s.error.is_none() {
            announce(s, out);
            flush_partial(s, out);
            s.error = Some(v.error.clone());
            out.push(Said::Line(format!("#{n} ERROR: {}", v.error)));
            if let Some(source) = s.name.strip_prefix("importing cache manifest from ") {
                out.push(Said::CacheSkipped {
                    source: source.to_string(),
                    reason: v.error.clone(),
                });
            } else if s.name.starts_with("exporting cache") {
                out.push(Said::CacheNotWritten(v.error.clone()));
            }
            s.done = true;
        } else if v.completed.is_some() && !s.done {
            announce(s, out);
            flush_partial(s, out);
            s.done = true;
            if let Some(owner) = &s.shared_with {
                out.push(Said::Line(format!("#{n} SHARED with [{owner}]")));
                return;
            }
            let took = match (s.started_at, seconds(v.completed.as_ref())) {
                (Some(a), Some(b)) if b >= a => format!(" {:.1}s", b - a),
                _ => String::new(),
            };
            out.push(Said::Line(format!("#{n} DONE{took}")));
        }
    }

    fn log(&mut self, l: &VertexLog, out: &mut Vec<Said>) {
        let s = self.state(&l.vertex);
        if s.shared_with.is_some() {
            return;
        }
        let n = s.number;
        let text = String::from_utf8_lossy(&l.msg);
        let buf = s.partial.entry(l.stream).or_default();
        buf.push_str(&text);
        let mut lines = Vec::new();
        while let Some(pos) = buf.find('\n') {
            let line: String = buf.drain(..=pos).collect();
            let line = line.trim_end_matches(['\n', '\r']).to_string();
            if !line.trim().is_empty() {
                lines.push(line);
            }
        }
        for line in lines {
            push_tail(s, &line);
            out.push(Said::Line(format!("#{n} {line}")));
        }
    }

    /// The step that failed, with its last log lines, if a vertex failed.
    pub(crate) fn failed_step(&self) -> Option<(String, Vec<String>)> {
        // A cache import or export never fails a build (BuildKit skips it).
        self.vertices
            .values()
            .filter(|s| s.error.is_some() && !is_cache_work(&s.name))
            .max_by_key(|s| (is_step(&s.name), s.number))
            .map(|s| (s.name.clone(), s.tail.clone()))
    }

    /// What the build is waiting on, when silence would mean a hang: the
    /// first running vertex, unless a `RUN` step runs (a command may print
    /// nothing for long); "the build" when nothing runs at all.
    pub(crate) fn waiting_on(&self) -> Option<String> {
        let running: Vec<&VertexState> = self
            .vertices
            .values()
            .filter(|s| s.started && !s.done)
            .collect();
        if running.iter().any(|s| s.name.contains("] RUN ")) {
            return None;
        }
        Some(
            running
                .iter()
                .min_by_key(|s| s.number)
                .map_or_else(|| "the build".to_string(), |s| format!("`{}`", s.name)),
        )
    }

    /// How many build steps ran and how many came from the cache.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        let steps = self.vertices.values().filter(|s| is_step(&s.name));
        let cached = steps.clone().filter(|s| s.cached).count();
        (steps.count() - cached, cached)
    }
}

fn push_tail(s: &mut VertexState, line: &str) {
    if s.tail.len() == VERTEX_TAIL {
        s.tail.remove(0);
    }
    s.tail.push(line.to_string());
}

fn flush_partial(s: &mut VertexState, out: &mut Vec<Said>) {
    let rest: Vec<String> = s
        .partial
        .drain()
        .map(|(_, v)| v)
        .filter(|v| !v.trim().is_empty())
        .collect();
    for line in rest {
        let line = line.trim_end().to_string();
        push_tail(s, &line);
        out.push(Said::Line(format!("#{} {line}", s.number)));
    }
}

/// BuildKit reading or writing build cache.
fn is_cache_work(name: &str) -> bool {
    name.starts_with("importing cache manifest from ") || name.starts_with("exporting cache")
}

/// A Dockerfile step (`[api 2/3] RUN …`), as opposed to BuildKit's own
/// work (`[internal] load build context`, `exporting to image`).
fn is_step(name: &str) -> bool {
    name.starts_with('[') && !name.starts_with("[internal]") && !name.starts_with("[auth]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Option<Timestamp> {
        Some(Timestamp {
            seconds: s,
            nanos: 0,
        })
    }

    fn v(d: &str, name: &str, started: bool, completed: bool, cached: bool) -> Vertex {
        Vertex {
            digest: d.into(),
            name: name.into(),
            started: if started { ts(10) } else { None },
            completed: if completed { ts(12) } else { None },
            cached,
            ..Default::default()
        }
    }

    fn msg(vs: Vec<Vertex>, logs: Vec<VertexLog>) -> StatusResponse {
        StatusResponse {
            vertexes: vs,
            logs,
            ..Default::default()
        }
    }

    fn lines(said: &[Said]) -> Vec<String> {
        said.iter()
            .filter_map(|s| match s {
                Said::Line(l) => Some(l.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn out_of_order_updates_print_each_line_once() {
        let mut t = Tracker::default();
        let mut said = t.update(&msg(
            vec![v("a", "[api 2/3] RUN x", true, true, false)],
            vec![],
        ));
        // The "started" update arrives after the completion, then again.
        said.extend(t.update(&msg(
            vec![v("a", "[api 2/3] RUN x", true, false, false)],
            vec![],
        )));
        said.extend(t.update(&msg(
            vec![v("a", "[api 2/3] RUN x", true, true, false)],
            vec![],
        )));
        assert_eq!(lines(&said), ["#1 [api 2/3] RUN x", "#1 DONE 2.0s"]);
        assert_eq!(
            said.iter().filter(|s| matches!(s, Said::Step(_))).count(),
            1
        );
        assert_eq!(t.counts(), (1, 0));
    }

    #[test]
    fn a_step_two_builds_share_is_done_once_and_shared_once() {
        let owners = Owners::default();
        let mut a = Tracker::for_unit("api", owners.clone());
        let mut b = Tracker::for_unit("web", owners);
        let step = |done| v("s", "[base 2/3] RUN make", true, done, false);
        let log = VertexLog {
            vertex: "s".into(),
            stream: 1,
            msg: b"compiling\n".to_vec(),
            ..Default::default()
        };
        let mut said_a = a.update(&msg(vec![step(false)], vec![log.clone()]));
        let mut said_b = b.update(&msg(vec![step(false)], vec![log]));
        said_a.extend(a.update(&msg(vec![step(true)], vec![])));
        said_b.extend(b.update(&msg(vec![step(true)], vec![])));
        assert_eq!(
            lines(&said_a),
            ["#1 [base 2/3] RUN make", "#1 compiling", "#1 DONE 2.0s"]
        );
        assert_eq!(
            lines(&said_b),
            ["#1 [base 2/3] RUN make", "#1 SHARED with [api]"]
        );
    }

    #[test]
    fn cached_steps_say_so_and_count_as_cached() {
        let mut t = Tracker::default();
        let said = t.update(&msg(
            vec![
                v("a", "[base 2/3] RUN mkdir", false, false, true),
                v("a", "[base 2/3] RUN mkdir", true, true, true),
                v("b", "[internal] load build context", true, true, false),
            ],
            vec![],
        ));
        assert_eq!(
            lines(&said),
            [
                "#1 [base 2/3] RUN mkdir",
                "#1 CACHED",
                "#2 [internal] load build context",
                "#2 DONE 2.0s"
            ]
        );
        assert_eq!(t.counts(), (0, 1));
    }

    #[test]
    fn logs_are_split_into_lines_and_a_failure_keeps_its_tail() {
        let mut t = Tracker::default();
        let log = |m: &str| VertexLog {
            vertex: "a".into(),
            stream: 1,
            msg: m.as_bytes().to_vec(),
            ..Default::default()
        };
        let mut said = t.update(&msg(
            vec![v("a", "[api 3/3] RUN boom", true, false, false)],
            vec![log("one\ntw"), log("o\nthree")],
        ));
        let mut failed = v("a", "[api 3/3] RUN boom", true, true, false);
        failed.error = "exit code: 3".into();
        said.extend(t.update(&msg(vec![failed], vec![])));
        assert_eq!(
            lines(&said),
            [
                "#1 [api 3/3] RUN boom",
                "#1 one",
                "#1 two",
                "#1 three",
                "#1 ERROR: exit code: 3"
            ]
        );
        assert_eq!(
            t.failed_step(),
            Some((
                "[api 3/3] RUN boom".to_string(),
                vec!["one".to_string(), "two".to_string(), "three".to_string()]
            ))
        );
    }

    #[test]
    fn silence_is_a_hang_only_when_no_run_step_runs() {
        let mut t = Tracker::default();
        assert_eq!(t.waiting_on().as_deref(), Some("the build"));
        t.update(&msg(
            vec![v(
                "c",
                "importing cache manifest from r/x:latest",
                true,
                false,
                false,
            )],
            vec![],
        ));
        assert_eq!(
            t.waiting_on().as_deref(),
            Some("`importing cache manifest from r/x:latest`")
        );
        t.update(&msg(
            vec![v("a", "[api 2/3] RUN make", true, false, false)],
            vec![],
        ));
        assert_eq!(t.waiting_on(), None);
    }

    #[test]
    fn a_failed_cache_import_is_a_skipped_source() {
        let mut t = Tracker::default();
        let mut imp = v(
            "c",
            "importing cache manifest from r/x:buildcache",
            true,
            true,
            false,
        );
        imp.error = "not found".into();
        let said = t.update(&msg(vec![imp], vec![]));
        assert!(said.contains(&Said::CacheSkipped {
            source: "r/x:buildcache".into(),
            reason: "not found".into()
        }));
        // Nor is it the failed step when the build fails otherwise.
        assert_eq!(t.failed_step(), None);
    }
}
