//! Human output on stderr: build logs prefixed with `[target]`, stackbake's
//! own status lines, and nothing else. Machine output (`--json`) goes to
//! stdout elsewhere; nothing here ever sees a secret.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use crate::cli::Progress;

/// How stderr is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every log line, `[target] ` prefixed.
    Plain,
    /// A terminal: status lines only, build logs folded away (shown on failure).
    Tty,
    /// Errors and the summary only.
    Quiet,
}

impl Mode {
    /// Resolves `--progress auto` against whether stderr is a terminal.
    pub fn from_flag(p: Progress) -> Mode {
        match p {
            Progress::Plain => Mode::Plain,
            Progress::Tty => Mode::Tty,
            Progress::Quiet => Mode::Quiet,
            Progress::Auto => {
                if std::io::stderr().is_terminal() {
                    Mode::Tty
                } else {
                    Mode::Plain
                }
            }
        }
    }
}

/// The one writer of human output.
pub struct Ui {
    mode: Mode,
    verbose: bool,
    lock: Mutex<()>,
}

impl Ui {
    /// A writer in `mode`.
    pub fn new(mode: Mode, verbose: bool) -> Ui {
        Ui {
            mode,
            verbose,
            lock: Mutex::new(()),
        }
    }

    fn write(&self, text: &str) {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut err = std::io::stderr().lock();
        // A closed stderr must not stop a build.
        let _ = writeln!(err, "{text}");
    }

    /// One line of a target's build or push log.
    pub fn log(&self, target: &str, line: &str) {
        if self.mode == Mode::Plain {
            self.write(&format!("[{target}] {line}"));
        }
    }

    /// A status line about one target (shown in plain and tty modes).
    pub fn status(&self, target: &str, line: &str) {
        if self.mode != Mode::Quiet {
            self.write(&format!("[{target}] {line}"));
        }
    }

    /// A line of stackbake's own (shown in plain and tty modes).
    pub fn info(&self, line: &str) {
        if self.mode != Mode::Quiet {
            self.write(&format!("stackbake: {line}"));
        }
    }

    /// Detail shown only with --verbose.
    pub fn debug(&self, line: &str) {
        if self.verbose && self.mode != Mode::Quiet {
            self.write(&format!("stackbake: {line}"));
        }
    }

    /// Always shown: errors and the final summary.
    pub fn always(&self, text: &str) {
        self.write(text);
    }
}
