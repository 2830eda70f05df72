//! The reporter: one thread that receives every [`Event`] of a run and hands
//! it to the renderers: the human one on stderr (plain lines, the live
//! terminal view, or quiet) and, with `--json`, the report on stdout. It is
//! the only place that writes a run's output; the orchestrator only sends.

use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use crate::cli::Progress;
use crate::events::{Event, Events, Message};
use crate::report::text::{self, Loudness};
use crate::report::tty::LiveView;

/// How stderr is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Every log line, `[target] ` prefixed.
    Plain,
    /// A terminal: one live line per target, build logs folded away.
    Tty,
    /// Status lines without build logs: `tty` asked for where stderr is not a
    /// terminal (a live view would be escape codes in a file).
    Status,
    /// Errors and the summary only.
    Quiet,
}

impl Mode {
    /// Resolves `--progress` against whether stderr is a terminal.
    pub(crate) fn from_flag(p: Progress) -> Mode {
        let terminal = std::io::stderr().is_terminal();
        match p {
            Progress::Plain => Mode::Plain,
            Progress::Quiet => Mode::Quiet,
            Progress::Tty if terminal => Mode::Tty,
            Progress::Tty => Mode::Status,
            Progress::Auto if terminal => Mode::Tty,
            Progress::Auto => Mode::Plain,
        }
    }
}

/// A renderer of events.
pub(crate) trait Render: Send {
    /// Shows one event.
    fn event(&mut self, event: &Event);
    /// The run is over: leave the screen readable.
    fn finish(&mut self) {}
}

/// Plain, status-only and quiet output: each event as its lines, if it is
/// loud enough.
pub(crate) struct Lines<W> {
    out: W,
    quietest: Loudness,
}

impl<W: Write + Send> Lines<W> {
    /// Lines at least as loud as `quietest`, written to `out`.
    pub(crate) fn new(out: W, quietest: Loudness) -> Self {
        Lines { out, quietest }
    }
}

impl<W: Write + Send> Render for Lines<W> {
    fn event(&mut self, event: &Event) {
        if let Some((loudness, lines)) = text::lines(event)
            && loudness >= self.quietest
        {
            for l in lines {
                // A closed stderr must not stop a build.
                let _ = writeln!(self.out, "{l}");
            }
            let _ = self.out.flush();
        }
    }
}

/// `--json`: the report on stdout when the run ends.
struct Json;

impl Render for Json {
    fn event(&mut self, event: &Event) {
        if let Event::Planned(r) | Event::Built(r) = event {
            emit(std::io::stdout(), &r.to_json());
        }
    }
}

/// Writes `text` to `to`. A reader that went away (`stackbake build --json |
/// head -c1`) must not turn a finished build into a panic (`print!` panics on
/// EPIPE, as Rust ignores SIGPIPE); what it did not read is its loss.
pub(crate) fn emit(mut to: impl Write, text: &str) {
    let _ = to.write_all(text.as_bytes()).and_then(|()| to.flush());
}

/// The running reporter.
pub(crate) struct Reporter {
    tx: Sender<Message>,
    events: Events,
    thread: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Starts the reporter thread for `mode` (and `--json`).
    pub(crate) fn start(mode: Mode, json: bool) -> Reporter {
        let mut renderers: Vec<Box<dyn Render>> = vec![match mode {
            Mode::Plain => Box::new(Lines::new(std::io::stderr(), Loudness::Log)),
            Mode::Status => Box::new(Lines::new(std::io::stderr(), Loudness::Status)),
            Mode::Quiet => Box::new(Lines::new(std::io::stderr(), Loudness::Always)),
            Mode::Tty => Box::new(LiveView::stderr()),
        }];
        if json {
            renderers.push(Box::new(Json));
        }
        Self::with_renderers(renderers)
    }

    /// A reporter over the given renderers.
    pub(crate) fn with_renderers(mut renderers: Vec<Box<dyn Render>>) -> Reporter {
        let (tx, rx): (Sender<Message>, Receiver<Message>) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            for msg in rx {
                match msg {
                    Message::Event(e) => renderers.iter_mut().for_each(|r| r.event(&e)),
                    Message::Stop(last) => {
                        renderers.iter_mut().for_each(|r| r.finish());
                        if let Some(text) = last {
                            emit(std::io::stderr(), &text);
                        }
                        break;
                    }
                }
            }
        });
        Reporter {
            events: Events::new(tx.clone()),
            tx,
            thread: Some(thread),
        }
    }

    /// Where the run sends its events.
    pub(crate) fn events(&self) -> Events {
        self.events.clone()
    }

    /// Renders every event sent so far, then `last_words` (the error, if the
    /// run failed), and stops. Events sent before this call returned on
    /// their threads are rendered first: one channel keeps their order.
    pub(crate) fn finish(mut self, last_words: Option<String>) {
        self.stop(last_words);
    }

    fn stop(&mut self, last_words: Option<String>) {
        if let Some(thread) = self.thread.take() {
            let _ = self.tx.send(Message::Stop(last_words));
            let _ = thread.join();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop(None);
    }
}
