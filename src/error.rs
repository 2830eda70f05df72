//! The top-level error: every failure a command can end with, its exit code,
//! and the one place that renders it for a person.

use std::fmt;
use std::path::PathBuf;

use crate::artifact::ArtifactError;
use crate::engine::EngineError;
use crate::registry::{AwsError, RegistryError};

/// Exit codes, as SPEC.md documents them.
pub(crate) mod exit_code {
    /// Success.
    pub(crate) const OK: u8 = 0;
    /// A target failed to build or push.
    pub(crate) const TARGET_FAILED: u8 = 1;
    /// Bad input: flags, Dockerfile, taskdef, appspec.
    pub(crate) const BAD_INPUT: u8 = 2;
    /// Environment: Docker daemon, AWS credentials, registry unreachable or refusing.
    pub(crate) const ENVIRONMENT: u8 = 3;
    /// Interrupted by a signal.
    pub(crate) const INTERRUPTED: u8 = 130;
}

/// Which step of a unit failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Building the image.
    Build,
    /// Tagging it in the engine.
    Tag,
    /// Pushing it, or tagging it in the registry after the push.
    Push,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Build => "build",
            Step::Tag => "tag",
            Step::Push => "push",
        })
    }
}

/// Why a unit failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Cause {
    /// The engine failed the build, tag or push.
    #[error(transparent)]
    Engine(EngineError),
    /// The registry failed a request after the push.
    #[error(transparent)]
    Registry(Box<RegistryError>),
    /// An immutable tag already names another image.
    #[error(
        "{repository}:{tag} already names {existing}, and the repository's tags are immutable, so it cannot name the image this build made"
    )]
    TagConflict {
        /// `host/repo`.
        repository: String,
        /// The tag.
        tag: String,
        /// What it names.
        existing: String,
    },
    /// A stage it needs failed.
    #[error("not built: the stage {0:?} it needs failed")]
    DependencyFailed(String),
    /// The run was stopped before it started.
    #[error("not started: the run was stopped (--fail-fast or a signal)")]
    NotStarted,
    /// The run was stopped while it ran.
    #[error("cancelled: the run was stopped (--fail-fast or a signal)")]
    Cancelled,
    /// Nothing ran any more, and a stage it needs never finished.
    #[error("not started: a stage it needs did not finish")]
    Unfinished,
    /// Its task panicked: a bug.
    #[error("internal error: {0}")]
    Panicked(String),
}

/// One unit (a target, or a stage targets share) that failed: the step,
/// why, and the tail of its log.
#[derive(Debug)]
pub(crate) struct TargetFailure {
    /// The stage that failed.
    pub(crate) target: String,
    /// Which step failed.
    pub(crate) step: Step,
    /// Why.
    pub(crate) cause: Cause,
    /// The last lines of its log.
    pub(crate) log_tail: Vec<String>,
}

impl TargetFailure {
    /// A failure of `target` at `step` because of `cause`, with no log.
    pub(crate) fn new(target: impl Into<String>, step: Step, cause: Cause) -> Self {
        TargetFailure {
            target: target.into(),
            step,
            cause,
            log_tail: Vec::new(),
        }
    }

    /// Whether the environment (the engine going away, the registry
    /// failing) rather than the target caused it: exit 3 (SPEC).
    pub(crate) fn is_environment(&self) -> bool {
        matches!(
            self.cause,
            Cause::Engine(EngineError::Unreachable { .. } | EngineError::BasePull { .. })
                | Cause::Registry(_)
                | Cause::TagConflict { .. }
        )
    }

    /// Whether its log says anything about the failure: not when the
    /// build went well and a registry refused a tag, or nothing ran.
    fn log_explains(&self) -> bool {
        !matches!(
            self.cause,
            Cause::TagConflict { .. } | Cause::DependencyFailed(_) | Cause::Cancelled
        )
    }

    /// What to try.
    pub(crate) fn hint(&self) -> Option<String> {
        match (&self.cause, self.step) {
            (Cause::Engine(EngineError::BasePull { registry, .. }), _) => Some(format!(
                "check that {registry} is reachable from the build and that the image exists there; \
                 Docker Hub limits anonymous pulls from CodeBuild's shared addresses: pull base \
                 images through an ECR pull-through cache with --mirror \
                 docker.io=ACCOUNT.dkr.ecr.REGION.amazonaws.com/docker-hub (STACKBAKE_MIRROR)"
            )),
            (Cause::Engine(_), Step::Build) => Some(
                "fix the failing instruction shown above; `docker build --target` reproduces it"
                    .to_string(),
            ),
            (Cause::Engine(e), Step::Push) => Some(format!(
                "check that {} accepts pushes with these credentials and that the repository exists",
                e.registry_host().unwrap_or("the registry")
            )),
            (Cause::TagConflict { tag, .. }, _) => Some(format!(
                "a retried build of the same commit reuses what it pushed; this happens when the \
                 commit {tag} was pushed before and this build made a different image (--force, or \
                 changed files under the same commit). Build under a new tag (--tag {tag}-2), or \
                 delete the tag in the repository, or exclude it from tag immutability"
            )),
            (Cause::Panicked(_), _) => Some("please report this as a stackbake bug".to_string()),
            _ => None,
        }
    }
}

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
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
    /// The Docker engine failed us.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A registry failed us (boxed: its context is large).
    #[error(transparent)]
    Registry(Box<RegistryError>),
    /// AWS failed us (boxed: its context is large).
    #[error(transparent)]
    Aws(Box<AwsError>),
    /// The artifact could not be written.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// A digest about to be pinned is not in the registry.
    #[error(
        "{image} is missing from the registry right after the push; not writing an artifact that names it"
    )]
    PinMissing {
        /// `host/repo@digest`.
        image: String,
    },
    /// One or more builds (targets, or stages they share) failed.
    #[error("{} of {total} builds failed", failures.len())]
    Targets {
        /// The failures.
        failures: Vec<TargetFailure>,
        /// How many builds the run had (targets to build and shared stages).
        total: usize,
    },
    /// Publishing a target failed after every build succeeded.
    #[error("[{}] {} failed: {}", .0.target, .0.step, .0.cause)]
    Publish(Box<TargetFailure>),
    /// Inputs from outside the context (base images, `ADD` URLs and git
    /// refs) that could not be resolved: nothing is decided on them.
    #[error("{}", unresolved_message(.0))]
    Unresolved(Vec<crate::outside::ResolveError>),
    /// A findings-based refusal (`check` found errors).
    #[error("{0}")]
    Findings(String),
    /// The builder or engine cannot run what the Dockerfile asks (or a
    /// required secret is missing): found before anything was built.
    #[error("{}", refused(refusals))]
    Refused {
        /// Each instruction it cannot run.
        refusals: Vec<crate::build::capabilities::Refusal>,
    },
    /// SIGINT/SIGTERM.
    #[error("interrupted: no artifact was written")]
    Interrupted,
}

impl From<RegistryError> for Error {
    fn from(e: RegistryError) -> Self {
        Error::Registry(Box::new(e))
    }
}

impl From<AwsError> for Error {
    fn from(e: AwsError) -> Self {
        Error::Aws(Box::new(e))
    }
}

impl Error {
    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Input { .. } | Self::Findings(_) | Self::Refused { .. } => {
                exit_code::BAD_INPUT
            }
            Self::Engine(_)
            | Self::Registry(_)
            | Self::Aws(_)
            | Self::Artifact(_)
            | Self::Unresolved(_)
            | Self::PinMissing { .. } => exit_code::ENVIRONMENT,
            // Every failure is shown; one caused by the environment makes it exit 3.
            Self::Targets { failures, .. }
                if failures.iter().any(TargetFailure::is_environment) =>
            {
                exit_code::ENVIRONMENT
            }
            Self::Targets { .. } => exit_code::TARGET_FAILED,
            Self::Publish(f) if f.is_environment() => exit_code::ENVIRONMENT,
            Self::Publish(_) => exit_code::TARGET_FAILED,
            Self::Interrupted => exit_code::INTERRUPTED,
        }
    }

    /// The message shown to a person on stderr: the error and its causes.
    pub(crate) fn render(&self) -> String {
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
                        f.target,
                        f.step,
                        chain(&f.cause)
                    ));
                    if !f.log_tail.is_empty() && f.log_explains() {
                        out.push_str(&format!("[{}] last lines of its log:\n", f.target));
                        for l in &f.log_tail {
                            out.push_str(&format!("    {l}\n"));
                        }
                    }
                    if let Some(hint) = f.hint() {
                        out.push_str(&format!("[{}] hint: {hint}\n", f.target));
                    }
                }
                out
            }
            Self::Publish(f) => {
                let mut out = format!(
                    "error: [{}] {} failed: {}; no artifact was written and no `latest` tag moved.\n",
                    f.target,
                    f.step,
                    chain(&f.cause)
                );
                if let Some(hint) = f.hint() {
                    out.push_str(&format!("[{}] hint: {hint}\n", f.target));
                }
                out
            }
            other => format!("error: {}", chain(other)),
        }
    }
}

/// Flag and variable that let an unresolved input fall back to its text.
pub(crate) const ALLOW_UNRESOLVED: &str = "--allow-unresolved (STACKBAKE_ALLOW_UNRESOLVED=true)";

fn unresolved_message(failures: &[crate::outside::ResolveError]) -> String {
    let mut out = format!(
        "cannot tell what {} input(s) from outside the build context point to, so no target \
         using them was built or reused:",
        failures.len()
    );
    for f in failures {
        out.push_str("\n  - ");
        out.push_str(&chain(f));
    }
    out.push_str(&format!(
        "\nhint: check that each registry or server named above is reachable and that the \
         name and tag exist (for Docker Hub: the network, or a rate limit); to build anyway, \
         {ALLOW_UNRESOLVED} fingerprints such an input by its reference text instead, with a \
         warning"
    ));
    if failures
        .iter()
        .any(|f| chain(f).contains("registry-1.docker.io"))
    {
        out.push_str(
            "\nhint: Docker Hub limits anonymous pulls from shared addresses such as \
             CodeBuild's: pull base images through an ECR pull-through cache with --mirror \
             docker.io=ACCOUNT.dkr.ecr.REGION.amazonaws.com/docker-hub (STACKBAKE_MIRROR)",
        );
    }
    out
}

fn refused(refusals: &[crate::build::capabilities::Refusal]) -> String {
    let mut out =
        "nothing was built: the Dockerfile asks for what this build cannot run".to_string();
    for r in refusals {
        out.push_str("\n  ");
        out.push_str(&r.to_string());
    }
    out
}

/// `e` and each of its sources, joined with `: `; a source whose text the
/// message already holds is not repeated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Shorthand for an input error about a file.
pub(crate) fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
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
            ..TargetFailure::new(
                "api",
                Step::Build,
                Cause::Engine(EngineError::Build {
                    message: "RUN missing-tool returned 127".into(),
                }),
            )
        };
        let push = TargetFailure::new(
            "nginx",
            Step::Push,
            Cause::Registry(Box::new(RegistryError::Unreachable {
                host: "127.0.0.1:5000".into(),
                attempts: 5,
                detail: "the registry refused every attempt".into(),
            })),
        );
        let both = Error::Targets {
            failures: vec![build, push],
            total: 3,
        };
        assert_eq!(both.exit_code(), exit_code::ENVIRONMENT);
        let text = both.render();
        for needle in [
            "2 of 3 builds failed",
            "[api] build failed: RUN missing-tool returned 127",
            "sh: missing-tool: not found",
            "[api] hint: fix the failing instruction",
            "[nginx] push failed: registry 127.0.0.1:5000 is unreachable",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
        let one = Error::Targets {
            failures: vec![TargetFailure::new(
                "api",
                Step::Build,
                Cause::Engine(EngineError::Build {
                    message: "x".into(),
                }),
            )],
            total: 3,
        };
        assert_eq!(one.exit_code(), exit_code::TARGET_FAILED);
    }

    #[test]
    fn the_push_hint_names_the_registry_of_the_image() {
        let f = TargetFailure::new(
            "api",
            Step::Push,
            Cause::Engine(EngineError::Push {
                image: "127.0.0.1:5000/bash-dog-api:abc1234".into(),
                message: "denied".into(),
            }),
        );
        assert_eq!(
            f.hint().as_deref(),
            Some(
                "check that 127.0.0.1:5000 accepts pushes with these credentials and that the repository exists"
            )
        );
    }
}
