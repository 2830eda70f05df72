//! The registry password never appears in anything printed or written.

use std::path::Path;
use std::time::Duration;

use super::{FAILED_RUN_LIMIT, Rig, assert_pushed_as_reported, break_sidecar};
use crate::harness::{Outcome, Sb, files_under, unique_id};
use crate::proxy::Fault;

/// Every byte `run` printed plus every file under `dirs`, checked for the
/// password and for the base64 of `user:password` and of the password.
fn assert_no_secret(user: &str, pass: &str, runs: &[&Outcome], dirs: &[&Path]) {
    use base64::Engine as _;
    let encode = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let needles = [
        pass.to_owned(),
        encode(format!("{user}:{pass}").as_bytes()),
        encode(pass.as_bytes()),
    ];
    for run in runs {
        for needle in &needles {
            assert!(
                !run.stdout.contains(needle.as_str()) && !run.stderr.contains(needle.as_str()),
                "the registry password (or its base64 {needle:?}) was printed:\n{run}"
            );
        }
    }
    for dir in dirs {
        for file in files_under(dir) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            for needle in &needles {
                assert!(
                    !text.contains(needle.as_str()),
                    "{} holds the registry password (or {needle:?})",
                    file.display()
                );
            }
        }
    }
}

/// The scenarios above against a registry that demands a password, all with
/// `--verbose`: a burst of 503s (success), the registry killed mid-push, a
/// failing target, and a wrong password. Not one printed or written byte
/// (stdout, stderr, every file under the project's temp dir) holds the
/// password, nor `user:password` or the password in base64.
#[test]
fn the_registry_password_never_appears_in_any_output_or_file() {
    let user = "ci-user";
    let pass = format!("Pw-{}-never-print-me", unique_id());
    let rig = Rig::with_auth(user, &pass, Fault::Fail503Every(7));
    rig.proxy.limit_faults(6);
    let mut runs = Vec::new();

    let out1 = rig.out("out1");
    let ok = rig
        .build(&rig.fx.tag, &out1)
        .args(["--json", "--verbose"])
        .run();
    assert_pushed_as_reported(&rig, &ok, &out1, &rig.fx.tag);
    runs.push(ok);

    rig.change_api("secret-kill");
    rig.proxy.set(Fault::Pass);
    let out2 = rig.out("out2");
    let mut running = rig
        .build(&format!("{}k", rig.fx.tag), &out2)
        .arg("--verbose")
        .spawn();
    let pushing = running.wait_for_stderr(Duration::from_secs(120), |e| e.contains("] pushing "));
    rig.proxy.set(Fault::Down);
    let killed = running.wait(FAILED_RUN_LIMIT);
    assert!(pushing, "no push started:\n{killed}");
    assert_ne!(killed.code, Some(0), "{killed}");
    runs.push(killed);

    rig.proxy.set(Fault::Pass);
    break_sidecar(&rig.fx.project);
    let out3 = rig.out("out3");
    let failed = rig
        .build(&format!("{}f", rig.fx.tag), &out3)
        .args(["--verbose", "--json"])
        .run();
    failed.assert_code(1);
    runs.push(failed);

    let wrong = Sb::new()
        .args(["build", "--local", "--dir"])
        .arg(rig.fx.project.root())
        .arg("--out")
        .arg(rig.out("out4"))
        .args([
            "--registry",
            &rig.proxy.addr(),
            "--registry-user",
            user,
            "--verbose",
        ])
        .env("STACKBAKE_REGISTRY_PASSWORD", format!("{pass}-wrong"))
        .timeout(FAILED_RUN_LIMIT)
        .run();
    assert_ne!(wrong.code, Some(0), "{wrong}");
    runs.push(wrong);

    let refs: Vec<&Outcome> = runs.iter().collect();
    assert_no_secret(user, &pass, &refs, &[rig.fx.project.temp()]);
    // The wrong password must not be printed either.
    assert_no_secret(
        user,
        &format!("{pass}-wrong"),
        &refs,
        &[rig.fx.project.temp()],
    );
}
