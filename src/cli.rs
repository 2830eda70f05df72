//! The command line: clap definitions only, no logic.
//!
//! Every flag a pipeline would set also reads `STACKBAKE_<FLAG>` from the
//! environment (clap's `env`), so the precedence is flag > environment >
//! default. Validation into typed settings happens in `config.rs`.
//!
//! The doc comments below are clap's help text, printed as written, so they
//! are plain text rather than rustdoc markdown.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Builds every target of a Dockerfile in parallel, pushes to ECR and pins
/// the pushed digests into taskdef.json.
#[derive(Debug, Parser)]
#[command(name = "stackbake", version = crate::VERSION, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The pipeline build: build, push, pin digests, write the artifact.
    Build(BuildArgs),
    /// What `build` would do, per target, and why. Changes nothing.
    Plan(BuildArgs),
    /// Offline lint of Dockerfile, taskdef.json, appspec.yaml, buildspec.yml.
    Check(CommonArgs),
    /// Write starter buildspec.yml / appspec.yaml / taskdef.json.
    Init(InitArgs),
}

/// Flags every command takes.
#[derive(Debug, Args, Clone)]
pub(crate) struct CommonArgs {
    /// Project root.
    #[arg(long, env = "STACKBAKE_DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Dockerfile, relative to --dir.
    #[arg(long, env = "STACKBAKE_DOCKERFILE", default_value = "Dockerfile")]
    pub dockerfile: PathBuf,
    /// ECS task definition, relative to --dir. Repeat it to pin several from one build (staging and prod, or one per service): each keeps its file name in the artifact; the first is the appspec's. In STACKBAKE_TASKDEF, separate them with commas.
    #[arg(
        long,
        env = "STACKBAKE_TASKDEF",
        default_value = "taskdef.json",
        value_delimiter = ','
    )]
    pub taskdef: Vec<PathBuf>,
    /// CodeDeploy appspec, relative to --dir.
    #[arg(long, env = "STACKBAKE_APPSPEC", default_value = "appspec.yaml")]
    pub appspec: PathBuf,
    /// Machine-readable output on stdout (human output stays on stderr).
    #[arg(long, env = "STACKBAKE_JSON")]
    pub json: bool,
    /// More detail on stderr (never secrets).
    #[arg(long, short, env = "STACKBAKE_VERBOSE")]
    pub verbose: bool,
}

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Progress {
    /// `tty` when stderr is a terminal, else `plain`.
    Auto,
    /// Every log line, prefixed with `[target]`.
    Plain,
    /// A compact live view.
    Tty,
    /// Errors and the summary only.
    Quiet,
}

/// Which builder runs the builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BuilderFlag {
    /// BuildKit wherever the engine offers it, else the classic builder.
    Auto,
    /// The engine's BuildKit (an error where it cannot be reached).
    Buildkit,
    /// The engine's classic builder.
    Classic,
}

/// Flags of `build` and `plan`.
#[derive(Debug, Args, Clone)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// No AWS call at all: build with the local engine, push only to --registry if given.
    #[arg(long, env = "STACKBAKE_LOCAL")]
    pub local: bool,
    /// Registry host[:port] to push to, overriding the ECR host.
    #[arg(long, env = "STACKBAKE_REGISTRY", value_name = "HOST[:PORT]")]
    pub registry: Option<String>,
    /// User for --registry (the password is read from STACKBAKE_REGISTRY_PASSWORD).
    #[arg(long, env = "STACKBAKE_REGISTRY_USER")]
    pub registry_user: Option<String>,
    /// Map a container to a Dockerfile stage (repeatable).
    #[arg(
        long = "target",
        env = "STACKBAKE_TARGET",
        value_name = "CONTAINER=STAGE",
        value_delimiter = ','
    )]
    pub targets: Vec<String>,
    /// A build argument, as docker's --build-arg (repeatable; in STACKBAKE_BUILD_ARG, one per line).
    // Values may hold commas (host lists, JVM options), so only a newline
    // separates several arguments, which the environment variable needs.
    #[arg(
        long = "build-arg",
        env = "STACKBAKE_BUILD_ARG",
        value_name = "KEY=VALUE",
        value_delimiter = '\n'
    )]
    pub build_args: Vec<String>,
    /// Which builder runs the builds: BuildKit wherever the engine offers it (auto), or the one named.
    #[arg(long, env = "STACKBAKE_BUILDER", value_enum, default_value = "auto")]
    pub builder: BuilderFlag,
    /// A build secret for `RUN --mount=type=secret`, as docker buildx: id=ID[,src=PATH|,env=VAR] (repeatable; in STACKBAKE_SECRET, one per line).
    #[arg(
        long = "secret",
        env = "STACKBAKE_SECRET",
        value_name = "id=ID[,src=PATH|,env=VAR]",
        value_delimiter = '\n'
    )]
    pub secrets: Vec<String>,
    /// The commit tag (default: first 7 characters of CODEBUILD_RESOLVED_SOURCE_VERSION, else of `git rev-parse HEAD`).
    #[arg(long, env = "STACKBAKE_TAG")]
    pub tag: Option<String>,
    /// Do not move `latest`.
    #[arg(long, env = "STACKBAKE_NO_LATEST")]
    pub no_latest: bool,
    /// Rebuild every target, whatever the registry holds.
    #[arg(long, env = "STACKBAKE_FORCE")]
    pub force: bool,
    /// Targets built at once (default: number of CPUs with the classic builder; with BuildKit, which schedules the steps itself, every target whose stages are ready).
    #[arg(long, env = "STACKBAKE_JOBS")]
    pub jobs: Option<NonZeroUsize>,
    /// Create missing ECR repositories (scan on push; tags immutable except latest and buildcache).
    #[arg(long, env = "STACKBAKE_CREATE_REPOS")]
    pub create_repos: bool,
    /// Pull a registry's images through a mirror, e.g. an ECR pull-through cache (repeatable): docker.io=ACCOUNT.dkr.ecr.REGION.amazonaws.com/docker-hub.
    #[arg(
        long = "mirror",
        env = "STACKBAKE_MIRROR",
        value_name = "SOURCE=REGISTRY/PREFIX",
        value_delimiter = ','
    )]
    pub mirrors: Vec<String>,
    /// Where the artifact is written (default: in place; with --local: DIR/stackbake-out).
    #[arg(long, env = "STACKBAKE_OUT")]
    pub out: Option<PathBuf>,
    /// How progress is shown.
    #[arg(long, env = "STACKBAKE_PROGRESS", value_enum, default_value = "auto")]
    pub progress: Progress,
    /// Stop every other target as soon as one fails.
    #[arg(long, env = "STACKBAKE_FAIL_FAST")]
    pub fail_fast: bool,
    /// Rebuild a target whose reusable image is older than this (7d, 12h, 30m, 1s), so RUN steps that fetch from the network (apt-get upgrade) run again on a schedule. Default: off.
    #[arg(long, env = "STACKBAKE_MAX_AGE", value_name = "DURATION")]
    pub max_age: Option<String>,
    /// When a base image, ADD URL or git ref cannot be resolved (registry down, rate limit), fingerprint it by its reference text and warn instead of stopping (exit 3). A change behind that reference is then not seen.
    #[arg(long, env = "STACKBAKE_ALLOW_UNRESOLVED")]
    pub allow_unresolved: bool,
    /// Retries of a registry request or image push that failed transiently (5xx, 429, reset).
    #[arg(long, env = "STACKBAKE_RETRIES", default_value = "4", value_name = "N")]
    pub retries: u32,
    /// Seconds an engine, registry or AWS call may make no progress before it is abandoned (a build step may be silent longer while the engine answers).
    #[arg(
        long,
        env = "STACKBAKE_TIMEOUT",
        default_value = "600",
        value_name = "SECONDS"
    )]
    pub timeout: std::num::NonZeroU64,
    /// Also write the result as KEY=VALUE lines (SB_<CONTAINER>_IMAGE, _DIGEST, _ACTION; SB_COMMIT_TAG, SB_REGISTRY), safe to `source`, for CodeBuild exported-variables or $GITHUB_OUTPUT (build only; replaced whole, with the artifact).
    #[arg(long, env = "STACKBAKE_ENV_FILE", value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    /// Build only shard K of N of the targets to build (a CodeBuild batch's shard build): push them with their commit and fingerprint tags and write the report; no task definition, no `latest`. A later plain `build` assembles the artifact.
    #[arg(long, env = "STACKBAKE_SHARD", value_name = "K/N")]
    pub shard: Option<String>,
}

/// Flags of `init`.
#[derive(Debug, Args, Clone)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Project name: repositories are `<project>-<target>`.
    #[arg(long, env = "STACKBAKE_PROJECT")]
    pub project: Option<String>,
    /// AWS account id for the image URIs and role ARNs.
    #[arg(long, env = "STACKBAKE_ACCOUNT")]
    pub account: Option<String>,
    /// AWS region (default: AWS_REGION / AWS_DEFAULT_REGION).
    #[arg(long, env = "STACKBAKE_REGION")]
    pub region: Option<String>,
    /// Deployable stages to include (default: every named stage no other stage builds on).
    #[arg(long = "stage", env = "STACKBAKE_STAGE", value_delimiter = ',')]
    pub stages: Vec<String>,
    /// The container that receives load balancer traffic.
    #[arg(long, env = "STACKBAKE_LB_CONTAINER")]
    pub lb_container: Option<String>,
    /// Builds will create missing repositories (adds ecr:CreateRepository to iam-policy.json).
    #[arg(long, env = "STACKBAKE_CREATE_REPOS")]
    pub create_repos: bool,
    /// Builds will pull through this mirror (repeatable; adds the pull-through cache's actions to iam-policy.json).
    #[arg(
        long = "mirror",
        env = "STACKBAKE_MIRROR",
        value_name = "SOURCE=REGISTRY/PREFIX",
        value_delimiter = ','
    )]
    pub mirrors: Vec<String>,
    /// Write a CodeBuild batch buildspec: N shard builds (`build --shard K/N`) and one assemble build that waits for them and carries the artifact.
    #[arg(long, env = "STACKBAKE_BATCH", value_name = "N")]
    pub batch: Option<u32>,
}
