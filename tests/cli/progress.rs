//! How a build looks to a person: the live view at a terminal
//! (`--progress auto` under a pseudo-terminal), with a line per target, its
//! step and a spinner, logs folded away, and a failed target's last log
//! lines in the error.

use crate::harness::*;

/// The terminal output with escape sequences and carriage returns removed.
fn visible(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ params final-byte
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[test]
fn at_a_terminal_each_target_gets_a_live_line_and_logs_are_folded() {
    let fx = Fixture::with_registry();
    let run = fx.build_with(None, "auto").run_in_terminal();
    run.assert_success();
    let screen = visible(&run.stdout);
    // BuildKit builds the shared `base` stage inside each target's build.
    for unit in ["api", "sidecar", "nginx"] {
        assert!(
            screen.contains(&format!("✔ [{unit}] done in")),
            "no finished line for {unit}:\n{screen}"
        );
    }
    assert!(
        screen.chars().any(|c| "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏".contains(c)),
        "no spinner was drawn:\n{screen}"
    );
    // Each live line shows the unit's current step (BuildKit's name for it,
    // `[STAGE N/M]`): which of api's stages is on screen at a redraw depends
    // on timing (the shared `base` steps, or api's own).
    assert!(
        ["[api] [base ", "[api] [api "]
            .iter()
            .any(|step| screen.contains(step)),
        "no live line showed a step of api:\n{screen}"
    );
    // ...and the build logs are folded away: no engine output line is printed.
    assert!(!screen.contains("load build definition"), "{screen}");
    assert!(!screen.contains("exporting to image"), "{screen}");
    // What scrolls above the live lines, and the summary.
    assert!(screen.contains("[api] build (new) sha256:"), "{screen}");
    assert!(
        screen.contains("stackbake: artifact written to"),
        "{screen}"
    );
    assert!(screen.contains("built      bash-dog-api"), "{screen}");
}

#[test]
fn at_a_terminal_a_failed_target_shows_its_last_log_lines_in_the_error() {
    let fx = Fixture::with_registry();
    fx.project.add_step_after(
        "COPY app/sidecar/run.sh /srv/sidecar/run.sh",
        "RUN echo sidecar-breaks-here && false",
    );
    let run = fx.build_with(None, "auto").run_in_terminal();
    run.assert_code(1);
    let screen = visible(&run.stdout);
    assert!(screen.contains("✘ [sidecar] failed after"), "{screen}");
    assert!(
        screen.contains("[sidecar] last lines of its log:"),
        "{screen}"
    );
    // The log line is shown once: in the error, not while building.
    assert_eq!(
        screen.matches("    sidecar-breaks-here").count(),
        1,
        "{screen}"
    );
}
