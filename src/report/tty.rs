//! The live terminal view (`--progress tty`, the default on a terminal): one
//! line per building unit with a spinner, its current step and its elapsed
//! time; build logs are folded away (a failed target's last lines are in the
//! error); everything else scrolls above the live lines.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::Event;
use crate::report::reporter::Render;
use crate::report::text::{self, Loudness};

const TICK: Duration = Duration::from_millis(120);

/// The live view.
pub(crate) struct LiveView {
    multi: MultiProgress,
    bars: BTreeMap<String, ProgressBar>,
    /// The final line of each finished unit, in the order they finished.
    ended: Vec<String>,
}

impl LiveView {
    /// A view drawn on stderr.
    pub(crate) fn stderr() -> LiveView {
        LiveView::new(ProgressDrawTarget::stderr_with_hz(15))
    }

    /// A view drawn on `target`.
    pub(crate) fn new(target: ProgressDrawTarget) -> LiveView {
        LiveView {
            multi: MultiProgress::with_draw_target(target),
            bars: BTreeMap::new(),
            ended: Vec::new(),
        }
    }

    fn running() -> ProgressStyle {
        ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {wide_msg} {elapsed:>4}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✔")
    }

    fn ended(mark: &str) -> ProgressStyle {
        ProgressStyle::with_template(&format!("{mark} {{prefix:.bold}} {{wide_msg}}"))
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
    }

    fn bar(&mut self, unit: &str) -> &ProgressBar {
        let multi = &self.multi;
        self.bars.entry(unit.to_string()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(Self::running());
            bar.set_prefix(format!("[{unit}]"));
            bar.enable_steady_tick(TICK);
            bar
        })
    }

    fn say(&self, lines: Vec<String>) {
        for l in lines {
            // Printed above the live lines; a closed terminal must not stop a build.
            let _ = self.multi.println(l);
        }
    }
}

impl Render for LiveView {
    fn event(&mut self, event: &Event) {
        match event {
            Event::UnitStarted { unit } => self.bar(unit).set_message("starting"),
            Event::Step { unit, name } => self.bar(unit).set_message(name.clone()),
            Event::Pushing { unit, image } => {
                self.bar(unit).set_message(format!("pushing {image}"))
            }
            Event::Retry {
                unit,
                what,
                error,
                wait,
            } => {
                let msg = format!(
                    "{what} failed ({error}); retrying in {:.1}s",
                    wait.as_secs_f64()
                );
                self.bar(unit).set_message(msg);
            }
            Event::UnitFinished { unit, seconds, ok } => {
                let bar = self.bar(unit).clone();
                let (mark, message) = if *ok {
                    ("✔", format!("done in {seconds:.1}s"))
                } else {
                    ("✘", format!("failed after {seconds:.1}s"))
                };
                self.ended.push(format!("{mark} [{unit}] {message}"));
                bar.set_style(Self::ended(mark));
                bar.finish_with_message(message);
            }
            Event::Log { .. } => {}
            Event::Built(_) | Event::Planned(_) => {
                self.settle();
                self.say(text::lines(event).map(|(_, l)| l).unwrap_or_default());
            }
            other => {
                if let Some((loudness, lines)) = text::lines(other)
                    && loudness >= Loudness::Status
                {
                    self.say(lines);
                }
            }
        }
    }

    fn finish(&mut self) {
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.set_style(Self::ended("-"));
                bar.abandon_with_message("stopped");
            }
        }
    }
}

impl LiveView {
    /// Turns the finished live lines into plain lines above what follows
    /// (the summary), so they are not redrawn under every new line.
    fn settle(&mut self) {
        self.bars.retain(|_, bar| {
            if bar.is_finished() {
                bar.finish_and_clear();
                false
            } else {
                true
            }
        });
        let _ = self.multi.clear();
        let ended = std::mem::take(&mut self.ended);
        self.say(ended);
    }
}
