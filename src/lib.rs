//! stackbake: the build stage of an ECS blue/green pipeline in one binary.
//!
//! `run` is the only entry: it parses the command line, builds the tokio
//! runtime, runs the command, renders any error once, and maps it to the
//! exit code SPEC.md documents.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

pub mod artifact;
pub mod cancel;
pub mod check;
pub mod cli;
pub mod config;
pub mod context;
pub mod dockerfile;
pub mod engine;
pub mod error;
pub mod fingerprint;
pub mod init;
pub mod inputs;
pub mod pipeline;
pub mod plan;
pub mod reference;
pub mod registry;
pub mod report;
pub mod taskdef;
pub mod ui;

use crate::cli::{Cli, Command};
use crate::error::{Error, exit_code};

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
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit_code::ENVIRONMENT);
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // Do not wait for blocking tasks (tar writers) of a cancelled run.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            emit(std::io::stderr(), &format!("{}\n", e.render()));
            ExitCode::from(e.exit_code())
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Build(args) => {
            let settings = config::Settings::from_args(&args)?;
            let ui = Arc::new(ui::Ui::new(settings.mode, settings.verbose));
            let state = cancel::RunState::new();
            let run = pipeline::build(&settings, ui.clone(), state.clone());
            let report = interruptible(run, &state, &ui).await?;
            summarize(&ui, &report);
            if settings.json {
                emit(std::io::stdout(), &report.to_json());
            }
            Ok(())
        }
        Command::Plan(args) => {
            let settings = config::Settings::from_args(&args)?;
            let ui = Arc::new(ui::Ui::new(settings.mode, settings.verbose));
            let state = cancel::RunState::new();
            let report = interruptible(pipeline::plan(&settings, ui.clone()), &state, &ui).await?;
            plan_table(&ui, &report);
            if settings.json {
                emit(std::io::stdout(), &report.to_json());
            }
            Ok(())
        }
        Command::Check(args) => {
            let files = check::ProjectFiles::from_args(&args);
            let findings = check::check(&files);
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
                eprintln!("stackbake: wrote {}", path.display());
            }
            Ok(())
        }
    }
}

/// Runs `fut` until it ends or SIGINT/SIGTERM arrives. On the first
/// signal the run is cancelled: every build task stops (dropping a build
/// stream makes the daemon stop that build), the pipeline winds down without
/// writing an artifact or moving `latest`, the build containers the run
/// started are removed, and the result is [`Error::Interrupted`] (exit 130).
/// A second signal exits at once.
async fn interruptible<T>(
    fut: impl std::future::Future<Output = Result<T, Error>>,
    state: &cancel::RunState,
    ui: &ui::Ui,
) -> Result<T, Error> {
    let mut fut = std::pin::pin!(fut);
    tokio::select! {
        r = &mut fut => return r,
        () = next_signal() => {}
    }
    state.cancel(cancel::CancelReason::Interrupted);
    ui.always(
        "stackbake: interrupted: stopping builds and pushes (interrupt again to exit at once)",
    );
    tokio::spawn(async {
        next_signal().await;
        eprintln!("stackbake: interrupted twice: exiting now");
        std::process::exit(i32::from(exit_code::INTERRUPTED));
    });
    // Let the pipeline see the cancellation and stop cleanly; give up on it
    // if it does not within a few seconds.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), &mut fut).await;
    pipeline::remove_build_containers(state, ui).await;
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

fn plan_table(ui: &ui::Ui, report: &report::Report) {
    ui.always(&format!(
        "{:<20} {:<12} {:<7} {:<10} {}",
        "CONTAINER", "TARGET", "ACTION", "REASON", "FINGERPRINT"
    ));
    for t in &report.targets {
        ui.always(&format!(
            "{:<20} {:<12} {:<7} {:<10} {}",
            t.container,
            t.target,
            t.action,
            t.reason.as_deref().unwrap_or("-"),
            t.fingerprint.as_deref().unwrap_or("-")
        ));
    }
    for e in &report.external {
        ui.always(&format!(
            "{:<20} {:<12} {:<7} {:<10} {}",
            e.container, "-", "none", "external", e.image
        ));
    }
}

/// Writes to stdout or stderr. A reader that went away (`stackbake build
/// --json | head -c1`) must not turn a finished build into a panic (`print!`
/// panics on EPIPE, as Rust ignores SIGPIPE); what it did not read is its loss.
fn emit(mut to: impl Write, text: &str) {
    let _ = to.write_all(text.as_bytes()).and_then(|()| to.flush());
}

/// The final summary: shown in every progress mode, `quiet` included.
fn summarize(ui: &ui::Ui, report: &report::Report) {
    for t in &report.targets {
        ui.always(&format!(
            "{:<10} {:<20} {} {}",
            t.action,
            t.container,
            t.image.as_deref().unwrap_or("-"),
            if t.bytes_pushed > 0 {
                format!("({} bytes pushed, {:.1}s)", t.bytes_pushed, t.seconds)
            } else {
                format!("({:.1}s)", t.seconds)
            }
        ));
    }
    for e in &report.external {
        ui.always(&format!(
            "{:<10} {:<20} {}",
            "external", e.container, e.image
        ));
    }
}
