//! Diagnostics through `tracing`: `--verbose` (or `STACKBAKE_LOG=debug`)
//! shows spans per unit and step, with their timings, as lines the reporter
//! prints on stderr. `STACKBAKE_LOG` takes a level (`debug`, `trace`: for
//! stackbake's own spans) or a full filter (`stackbake=trace,hyper=debug`).
//!
//! No secret reaches a diagnostic: credentials are [`crate::registry::Secret`]s,
//! which print as `<redacted>`, and no span or event records a header or a
//! request body.

use std::io::Write;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::events::{Event, Events};

/// The environment variable that sets the diagnostics filter.
pub(crate) const LOG_ENV: &str = "STACKBAKE_LOG";

/// The filter: `STACKBAKE_LOG` if set, else `stackbake=debug` with
/// `--verbose`, else none (no diagnostics at all).
fn filter(verbose: bool, env: Option<&str>) -> Option<String> {
    let levels = ["error", "warn", "info", "debug", "trace"];
    match env.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) if levels.contains(&v.to_ascii_lowercase().as_str()) => {
            Some(format!("stackbake={}", v.to_ascii_lowercase()))
        }
        Some(v) => Some(v.to_string()),
        None if verbose => Some("stackbake=debug".to_string()),
        None => None,
    }
}

/// Libraries whose most detailed levels print what they send and receive:
/// the AWS SDK logs whole response bodies at `trace` (the ECR authorization
/// token among them), the HTTP and TLS stacks whole messages.
const LEAKY: [&str; 13] = [
    "bollard",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_types",
    "aws_sdk_ecr",
    "aws_sdk_sts",
    "aws_config",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
];

/// `directives` with every library held to `debug` at most, whatever was
/// asked: a global `trace` becomes `debug` (stackbake's own spans keep
/// `trace`), and `trace` for a library that prints what it sends and
/// receives becomes `debug`. Never a credential in a diagnostic.
fn capped(directives: &str) -> String {
    let is_trace = |level: &str| {
        let l = level.trim().to_ascii_lowercase();
        l == "trace" || l == "5"
    };
    let mut out = Vec::new();
    let mut global_trace = false;
    let mut names_stackbake = false;
    for part in directives
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match part.rsplit_once('=') {
            // `trace`: the level of every target.
            None if is_trace(part) => {
                global_trace = true;
                out.push("debug".to_string());
            }
            None => out.push(part.to_string()),
            Some((target, level)) => {
                names_stackbake |= target.starts_with("stackbake");
                if is_trace(level) && LEAKY.iter().any(|l| target.starts_with(l)) {
                    out.push(format!("{target}=debug"));
                } else {
                    out.push(part.to_string());
                }
            }
        }
    }
    if global_trace && !names_stackbake {
        out.push("stackbake=trace".to_string());
    }
    out.join(",")
}

/// Installs the process's diagnostics subscriber, writing through `events`.
pub(crate) fn init(verbose: bool, events: Events) {
    let env = std::env::var(LOG_ENV).ok();
    let Some(directives) = filter(verbose, env.as_deref()) else {
        return;
    };
    let directives = capped(&directives);
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| {
        events.send(Event::Diagnostic(format!(
            "stackbake: {LOG_ENV}={directives:?} is not a valid filter; using stackbake=debug"
        )));
        EnvFilter::new("stackbake=debug")
    });
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(ToReporter(events))
        .finish();
    // Only `run` installs it, once per process.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Hands formatted diagnostic lines to the reporter.
struct ToReporter(Events);

impl<'a> MakeWriter<'a> for ToReporter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            events: self.0.clone(),
            buf: Vec::new(),
        }
    }
}

/// Collects one formatted event and sends its lines when dropped.
struct LineWriter {
    events: Events,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.events.send(Event::Diagnostic(line.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_are_held_to_debug_whatever_is_asked() {
        assert_eq!(capped("trace"), "debug,stackbake=trace");
        assert_eq!(capped("trace,stackbake=trace"), "debug,stackbake=trace");
        assert_eq!(
            capped("aws_smithy_runtime=trace,hyper_util=TRACE,stackbake=debug"),
            "aws_smithy_runtime=debug,hyper_util=debug,stackbake=debug"
        );
        assert_eq!(
            capped("stackbake=trace,bollard=trace"),
            "stackbake=trace,bollard=debug"
        );
        assert_eq!(capped("info"), "info");
        // The capped filter is what tracing-subscriber gets, and it parses.
        for f in ["trace", "aws_smithy_runtime=trace", "stackbake[unit]=trace"] {
            assert!(EnvFilter::try_new(capped(f)).is_ok(), "{f}");
        }
    }

    #[test]
    fn a_bare_level_is_for_stackbake_and_a_filter_is_taken_whole() {
        assert_eq!(filter(false, None), None);
        assert_eq!(filter(true, None).as_deref(), Some("stackbake=debug"));
        assert_eq!(
            filter(false, Some("TRACE")).as_deref(),
            Some("stackbake=trace")
        );
        assert_eq!(filter(true, Some(" ")).as_deref(), Some("stackbake=debug"));
        assert_eq!(
            filter(false, Some("stackbake=trace,hyper=debug")).as_deref(),
            Some("stackbake=trace,hyper=debug")
        );
    }
}
