//! The top-level error: every failure a command can end with, its exit code,
//! and the one place that renders it for a person.

use std::path::PathBuf;

/// Exit codes, as SPEC.md documents them.
pub mod exit_code {
    /// Success.
    pub const OK: u8 = 0;
    /// A target failed to build or push.
    pub const TARGET_FAILED: u8 = 1;
    /// Bad input: flags, Dockerfile, taskdef, appspec.
    pub const BAD_INPUT: u8 = 2;
    /// Environment: Docker daemon, AWS credentials, registry unreachable or refusing.
    pub const ENVIRONMENT: u8 = 3;
    /// Interrupted by a signal.
    pub const INTERRUPTED: u8 = 130;
}

/// One target that failed, with the step and the tail of its log.
#[derive(Debug, Clone)]
pub struct TargetFailure {
    /// The stage (or shared stage) that failed.
    pub target: String,
    /// Which step failed: `build`, `push`, ...
    pub step: &'static str,
    /// What the engine or registry said.
    pub message: String,
    /// The last lines of this target's log.
    pub log_tail: Vec<String>,
    /// What to try.
    pub hint: String,
    /// The engine or registry went away (exit 3), rather than the target failing.
    pub environment: bool,
}

impl TargetFailure {
    /// A failure with no log and no hint (not started, cancelled, ...).
    pub fn stopped(
        target: impl Into<String>,
        step: &'static str,
        message: impl Into<String>,
    ) -> Self {
        TargetFailure {
            target: target.into(),
            step,
            message: message.into(),
            log_tail: Vec::new(),
            hint: String::new(),
            environment: false,
        }
    }
}

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or flag combination is wrong.
    #[error("{0}")]
    Usage(String),
    /// An input file is missing or malformed.
    #[error("{path}: {message}")]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The Docker daemon, AWS or a registry failed us.
    #[error("{0}")]
    Environment(String),
    /// One or more builds (targets, or stages they share) failed.
    #[error("{} of {total} builds failed", failures.len())]
    Targets {
        /// The failures.
        failures: Vec<TargetFailure>,
        /// How many builds the run had (targets to build and shared stages).
        total: usize,
        /// Whether one of them failed because of the environment (engine or
        /// registry): the exit code is then 3, and every failure is still shown.
        environment: bool,
    },
    /// A findings-based refusal (`check` found errors).
    #[error("{0}")]
    Findings(String),
    /// SIGINT/SIGTERM.
    #[error("interrupted: no artifact was written")]
    Interrupted,
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Input { .. } | Self::Findings(_) => exit_code::BAD_INPUT,
            Self::Environment(_) => exit_code::ENVIRONMENT,
            Self::Targets {
                environment: true, ..
            } => exit_code::ENVIRONMENT,
            Self::Targets { .. } => exit_code::TARGET_FAILED,
            Self::Interrupted => exit_code::INTERRUPTED,
        }
    }

    /// The message shown to a person on stderr.
    pub fn render(&self) -> String {
        match self {
            Self::Targets {
                failures, total, ..
            } => {
                let mut out = format!(
                    "error: {} of {total} builds failed; no artifact was written and no `latest` tag moved.\n",
                    failures.len()
                );
                for f in failures {
                    out.push_str(&format!(
                        "\n[{}] {} failed: {}\n",
                        f.target, f.step, f.message
                    ));
                    if !f.log_tail.is_empty() {
                        out.push_str(&format!("[{}] last lines of its log:\n", f.target));
                        for l in &f.log_tail {
                            out.push_str(&format!("    {l}\n"));
                        }
                    }
                    if !f.hint.is_empty() {
                        out.push_str(&format!("[{}] hint: {}\n", f.target, f.hint));
                    }
                }
                out
            }
            other => format!("error: {other}"),
        }
    }
}

/// Shorthand for an input error about a file.
pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
    Error::Input {
        path: path.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_failure_exits_3_and_hides_no_other_failure() {
        let build = TargetFailure {
            log_tail: vec!["sh: missing-tool: not found".to_string()],
            hint: "fix the RUN step".to_string(),
            ..TargetFailure::stopped("api", "build", "RUN missing-tool returned 127")
        };
        let push = TargetFailure {
            environment: true,
            ..TargetFailure::stopped("nginx", "push", "the registry refused every attempt")
        };
        let both = Error::Targets {
            failures: vec![build.clone(), push],
            total: 3,
            environment: true,
        };
        assert_eq!(both.exit_code(), exit_code::ENVIRONMENT);
        let text = both.render();
        for needle in [
            "2 of 3 builds failed",
            "[api] build failed: RUN missing-tool returned 127",
            "sh: missing-tool: not found",
            "[api] hint: fix the RUN step",
            "[nginx] push failed: the registry refused every attempt",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
        let one = Error::Targets {
            failures: vec![build],
            total: 3,
            environment: false,
        };
        assert_eq!(one.exit_code(), exit_code::TARGET_FAILED);
    }
}
