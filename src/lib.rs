//! stackbake: the build stage of an ECS blue/green pipeline in one binary.
//!
//! `run` is the only entry: it parses the command line, builds the tokio
//! runtime, starts the reporter (the one writer of human and JSON output),
//! runs the command, renders any error once, and maps it to the exit code
//! SPEC.md documents.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

mod artifact;
mod build;
mod cancel;
mod check;
mod cli;
mod config;
mod context;
mod diagnostics;
mod dockerfile;
mod engine;
mod envfile;
mod error;
mod events;
mod fingerprint;
mod init;
mod outside;
mod policies;
mod reference;
mod registry;
mod report;
mod services;
mod taskdef;
#[cfg(test)]
mod testing;

use crate::cli::{Cli, Command};
use crate::error::{Error, exit_code};
use crate::events::{Event, Events};
use crate::report::reporter::{Mode, Reporter, emit};

/// `stackbake --version`: the crate version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("STACKBAKE_COMMIT"),
    ")"
);

/// Parses the command line, runs the command and maps the outcome to an exit code.
pub fn run<I: IntoIterator<Item = OsString>>(args: I) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are "errors" that exit 0.
            let code = if e.use_stderr() {
                exit_code::BAD_INPUT
            } else {
                exit_code::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            emit(
                std::io::stderr(),
                &format!("error: cannot start the async runtime: {e}\n"),
            );
            return ExitCode::from(exit_code::ENVIRONMENT);
        }
    };
    let (mode, json, verbose) = match &cli.command {
        Command::Build(a) | Command::Plan(a) => {
            (Mode::from_flag(a.progress), a.common.json, a.common.verbose)
        }
        Command::Check(c) | Command::Init(cli::InitArgs { common: c, .. }) => {
            (Mode::Plain, false, c.verbose)
        }
    };
    let reporter = Reporter::start(mode, json);
    diagnostics::init(verbose, reporter.events());
    let result = runtime.block_on(dispatch(cli, reporter.events()));
    // Do not wait for blocking tasks (tar writers) of a cancelled run.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => {
            reporter.finish(None);
            ExitCode::SUCCESS
        }
        Err(e) => {
            reporter.finish(Some(format!("{}\n", e.render())));
            ExitCode::from(e.exit_code())
        }
    }
}

async fn dispatch(cli: Cli, events: Events) -> Result<(), Error> {
    match cli.command {
        Command::Build(args) => {
            let settings = config::Settings::from_args(&args)?;
            let state = cancel::RunState::new();
            let run = build::build(&settings, &services::Real, &events, &state);
            let report = interruptible(run, &state, &events).await?;
            events.send(Event::Built(Box::new(report)));
            Ok(())
        }
        Command::Plan(args) => {
            let settings = config::Settings::from_args(&args)?;
            let state = cancel::RunState::new();
            let run = build::plan(&settings, &services::Real, &events);
            let report = interruptible(run, &state, &events).await?;
            events.send(Event::Planned(Box::new(report)));
            Ok(())
        }
        Command::Check(args) => {
            let files = check::ProjectFiles::from_args(&args);
            let mut findings = check::check(&files);
            findings.extend(engine_findings(&files).await);
            if args.json {
                emit(std::io::stdout(), &check::render_json(&findings));
            }
            emit(std::io::stderr(), &check::render_human(&findings));
            if check::has_errors(&findings) {
                Err(Error::Findings(
                    "`stackbake check` found errors (see above)".to_string(),
                ))
            } else {
                Ok(())
            }
        }
        Command::Init(args) => {
            for path in init::init(&args)? {
                emit(
                    std::io::stderr(),
                    &format!("stackbake: wrote {}\n", path.display()),
                );
            }
            Ok(())
        }
    }
}

/// `check`'s engine rules, when an engine answers within a few seconds
/// (`check` stays an offline lint without one). The builder is the one
/// `STACKBAKE_BUILDER` names, else `auto`.
async fn engine_findings(files: &check::ProjectFiles) -> Vec<check::Finding> {
    use clap::ValueEnum;
    let choice = std::env::var("STACKBAKE_BUILDER")
        .ok()
        .and_then(|v| cli::BuilderFlag::from_str(&v, true).ok())
        .unwrap_or(cli::BuilderFlag::Auto);
    let limit = std::time::Duration::from_secs(5);
    let connect = async {
        let connected = services::Services::engine(&services::Real, limit, limit).await?;
        connected.builders.choose(choice).await
    };
    match tokio::time::timeout(limit, connect).await {
        Ok(Ok(chosen)) => check::engine_findings(files, &chosen.caps),
        _ => Vec::new(),
    }
}

/// Runs `fut` until it ends or SIGINT/SIGTERM arrives. On the first signal
/// the run is cancelled: every build task stops (dropping a build stream
/// makes the daemon stop that build), the run winds down without writing an
/// artifact or moving `latest` and removes the build containers it started,
/// and the result is [`Error::Interrupted`] (exit 130). A second signal
/// exits at once.
async fn interruptible<T>(
    fut: impl std::future::Future<Output = Result<T, Error>>,
    state: &cancel::RunState,
    events: &Events,
) -> Result<T, Error> {
    let mut fut = std::pin::pin!(fut);
    tokio::select! {
        r = &mut fut => return r,
        () = next_signal() => {}
    }
    state.cancel(cancel::CancelReason::Interrupted);
    events.send(Event::Interrupted);
    tokio::spawn(async {
        next_signal().await;
        emit(
            std::io::stderr(),
            "\nstackbake: interrupted twice: exiting now\n",
        );
        std::process::exit(i32::from(exit_code::INTERRUPTED));
    });
    // Let the run see the cancellation and stop cleanly (removing its build
    // containers); give up on it if it does not within a few seconds.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), &mut fut).await;
    Err(Error::Interrupted)
}

/// Resolves on SIGINT or SIGTERM.
async fn next_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
