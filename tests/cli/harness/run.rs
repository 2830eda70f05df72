//! Runs of the real `stackbake` binary: the [`Sb`] builder, its
//! [`Outcome`], background runs ([`Running`]) and runs under a
//! pseudo-terminal ([`Sb::run_in_terminal`]).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::servers::stop;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_stackbake");

/// Default limit for one `stackbake` run.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

// ------------------------------------------------------- running stackbake

/// Builder for one run of the real `stackbake` binary. `CODEBUILD_*`,
/// `AWS_*` and `STACKBAKE_*` are removed from the inherited environment
/// (set them with [`Sb::env`]); `NO_COLOR=1`; stdin is /dev/null.
pub(crate) struct Sb {
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
    timeout: Duration,
}

impl Default for Sb {
    fn default() -> Self {
        Sb::new()
    }
}

impl Sb {
    /// A run with no arguments yet.
    pub(crate) fn new() -> Sb {
        Sb {
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Appends one argument.
    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Sb {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Sb
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the run.
    pub(crate) fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Sb {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Sets several environment variables (e.g. [`Moto::env`]).
    pub(crate) fn envs(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Sb {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Removes an inherited environment variable for the run.
    pub(crate) fn env_remove(mut self, key: impl AsRef<OsStr>) -> Sb {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Working directory of the run (default: the test's).
    pub(crate) fn current_dir(mut self, dir: impl AsRef<Path>) -> Sb {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Kill the run and fail the test after `timeout` (default 300 s).
    pub(crate) fn timeout(mut self, timeout: Duration) -> Sb {
        self.timeout = timeout;
        self
    }

    /// The command to run (inherited `CODEBUILD_*`, `AWS_*` and
    /// `STACKBAKE_*` removed, `NO_COLOR=1`, the test's env on top) and its
    /// printable form.
    fn command(&self) -> (Command, String) {
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if ["CODEBUILD_", "AWS_", "STACKBAKE_"]
                .iter()
                .any(|p| k.starts_with(p))
            {
                cmd.env_remove(&key);
            }
        }
        cmd.env("NO_COLOR", "1");
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let command = format!(
            "stackbake {}",
            self.args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        (cmd, command)
    }

    /// Runs the binary under a pseudo-terminal (util-linux `script`), as a
    /// person at a terminal would: stdout and stderr are the terminal, so
    /// [`Outcome::stdout`] holds everything drawn (escape codes included)
    /// and `stderr` is empty.
    pub(crate) fn run_in_terminal(self) -> Outcome {
        let (cmd, command) = self.command();
        let quoted: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''")))
            .collect();
        let mut term = Command::new("script");
        term.args([
            "-qfec",
            &format!("stty cols 120 rows 40; exec {}", quoted.join(" ")),
            "/dev/null",
        ]);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => term.env(k, v),
                None => term.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            term.current_dir(dir);
        }
        term.env("TERM", "xterm-256color")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = term
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `script` (util-linux): {e}"));
        finish(child, format!("(in a terminal) {command}"), self.timeout)
    }

    /// Runs the binary to completion (or the timeout, which panics).
    pub(crate) fn run(self) -> Outcome {
        let (mut cmd, command) = self.command();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        finish(child, command, self.timeout)
    }
}

/// Collects `child`'s output until it exits, or stops it after `timeout`
/// (which panics, showing what it printed).
fn finish(mut child: Child, command: String, timeout: Duration) -> Outcome {
    let started = Instant::now();
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = loop {
        match child.try_wait().expect("wait for the child process") {
            Some(status) => break Some(status),
            None if started.elapsed() > timeout => {
                stop(&mut child);
                break None;
            }
            None => thread::sleep(Duration::from_millis(25)),
        }
    };
    let outcome = Outcome {
        command,
        code: status.and_then(|s| s.code()),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    };
    assert!(status.is_some(), "timed out after {timeout:?}:\n{outcome}");
    outcome
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// What one run of `stackbake` did. `Display` shows all of it, for
/// assertion messages.
pub(crate) struct Outcome {
    /// The command line, for messages.
    pub command: String,
    /// Exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Outcome {
    /// Panics (showing the whole run) unless the exit code is `code`.
    pub(crate) fn assert_code(&self, code: i32) -> &Outcome {
        assert_eq!(self.code, Some(code), "unexpected exit code:\n{self}");
        self
    }

    /// Panics unless the exit code is 0.
    pub(crate) fn assert_success(&self) -> &Outcome {
        self.assert_code(0)
    }

    /// stdout parsed as JSON (`--json`).
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{self}"))
    }

    /// Panics unless stderr contains `needle` (case-insensitive).
    pub(crate) fn assert_stderr_mentions(&self, needle: &str) -> &Outcome {
        assert!(
            self.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "stderr does not mention {needle:?}:\n{self}"
        );
        self
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        writeln!(f, "exit code: {:?} after {:?}", self.code, self.elapsed)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

/// A `stackbake` run started with [`Sb::spawn`]: the test can watch its
/// stderr while it runs, signal it, and then collect its [`Outcome`]. Killed
/// on drop if still running.
pub(crate) struct Running {
    child: Child,
    command: String,
    started: Instant,
    stdout: Option<thread::JoinHandle<String>>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stderr_reader: Option<thread::JoinHandle<()>>,
}

impl Sb {
    /// Starts the binary in the background with the same environment rules
    /// as [`Sb::run`] (the run's own timeout is not applied: pass a limit to
    /// [`Running::wait`]).
    pub(crate) fn spawn(self) -> Running {
        let (mut cmd, command) = self.command();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let started = Instant::now();
        let stdout = drain(child.stdout.take());
        let stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>> = std::sync::Arc::default();
        let stderr_reader = child.stderr.take().map(|mut pipe| {
            let sink = stderr.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => sink
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .extend_from_slice(&buf[..n]),
                    }
                }
            })
        });
        Running {
            child,
            command,
            started,
            stdout: Some(stdout),
            stderr,
            stderr_reader,
        }
    }
}

impl Running {
    /// The process id (for `kill -INT`).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Time since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Everything written to stderr so far.
    pub(crate) fn stderr_so_far(&self) -> String {
        let bytes = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits until stderr satisfies `seen` (true) or the run exits or
    /// `limit` passes (false). Polls every 20 ms.
    pub(crate) fn wait_for_stderr(&mut self, limit: Duration, seen: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if seen(&self.stderr_so_far()) {
                return true;
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return seen(&self.stderr_so_far());
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends `signal` (a `kill` name: `INT`, `TERM`) to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits for the exit (killing the run and panicking after `limit`).
    pub(crate) fn wait(mut self, limit: Duration) -> Outcome {
        let status = loop {
            match self.child.try_wait().expect("wait for stackbake") {
                Some(status) => break Some(status),
                None if self.started.elapsed() > limit => {
                    stop(&mut self.child);
                    break None;
                }
                None => thread::sleep(Duration::from_millis(25)),
            }
        };
        if let Some(t) = self.stderr_reader.take() {
            let _ = t.join();
        }
        let outcome = Outcome {
            command: self.command.clone(),
            code: status.and_then(|s| s.code()),
            stdout: self
                .stdout
                .take()
                .and_then(|t| t.join().ok())
                .unwrap_or_default(),
            stderr: self.stderr_so_far(),
            elapsed: self.started.elapsed(),
        };
        assert!(status.is_some(), "timed out after {limit:?}:\n{outcome}");
        outcome
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            stop(&mut self.child);
        }
    }
}
