//! Proves the release binary is fully static: `scripts/release` builds it
//! (cargo's own incremental check decides what to rebuild, so the binary is
//! never stale), then it runs in an image whose root filesystem holds
//! nothing but `/stackbake` — no libc, no loader, no shell. If anything were
//! dynamically linked, the kernel could not even start it there.
//!
//! Needs the Docker engine (CI starts it through `scripts/test`). Under
//! `scripts/test` (the release's target and static-runtime flags for the
//! whole run, `STACKBAKE_RELEASE_PREBUILT=1`) the binary packaged is the one
//! `cargo test` built; run alone, the test builds the real `release` profile.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::harness::REPO_ROOT;

/// The file name `scripts/release` gives the binary.
const ASSET: &str = "stackbake-x86_64-linux";

/// Runs `cmd`, panicking with its output when it cannot start or fails.
fn run_ok(what: &str, cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Builds the static binary with `scripts/release` into `dist` and returns its path.
fn release_into(dist: &Path) -> PathBuf {
    let root = Path::new(REPO_ROOT);
    run_ok(
        "scripts/release",
        Command::new(root.join("scripts/release"))
            .current_dir(root)
            .env("DIST_DIR", dist)
            // Under scripts/test every build has the release's target and
            // static flags: package the binary this run built.
            .envs(
                std::env::var_os("STACKBAKE_RELEASE_PREBUILT")
                    .map(|_| ("STACKBAKE_PREBUILT", env!("CARGO_BIN_EXE_stackbake"))),
            ),
    );
    let bin = dist.join(ASSET);
    let sums = std::fs::read_to_string(dist.join(format!("{ASSET}.sha256")))
        .unwrap_or_else(|e| panic!("scripts/release wrote no checksum next to {bin:?}: {e}"));
    assert!(
        sums.trim_end().ends_with(&format!("  {ASSET}")) && sums.len() == 64 + 2 + ASSET.len() + 1,
        "checksum file is not in sha256sum format: {sums:?}"
    );
    run_ok(
        "sha256sum -c on the release checksum",
        Command::new("sha256sum")
            .args(["-c", &format!("{ASSET}.sha256")])
            .current_dir(dist),
    );
    bin
}

/// A root filesystem tar holding only `bin` as `/stackbake` (root-owned, 0755).
fn rootfs_tar(bin: &Path, tar_path: &Path) {
    let file = std::fs::File::create(tar_path).expect("create rootfs tar");
    let mut tar = tar::Builder::new(file);
    let data = std::fs::read(bin).expect("read the release binary");
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, "stackbake", data.as_slice())
        .expect("append binary to rootfs tar");
    tar.into_inner()
        .and_then(|mut f| std::io::Write::flush(&mut f))
        .expect("finish rootfs tar");
}

/// Removes the image tag on drop, so a failed assertion leaves nothing behind.
struct ImageTag(String);

impl Drop for ImageTag {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["image", "rm", "--force", &self.0])
            .output();
    }
}

/// `docker run --rm` of the image with `/stackbake <args>`; returns stdout.
fn run_in(image: &ImageTag, args: &[&str]) -> String {
    let out = run_ok(
        &format!("/stackbake {} in the binary-only image", args.join(" ")),
        Command::new("docker")
            .args(["run", "--rm", "--network", "none", &image.0, "/stackbake"])
            .args(args),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn release_binary_runs_in_an_image_holding_only_itself() {
    let work = tempfile::tempdir().expect("tempdir");
    let bin = release_into(&work.path().join("dist"));

    let tar_path = work.path().join("rootfs.tar");
    rootfs_tar(&bin, &tar_path);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let image = ImageTag(format!(
        "stackbake-test/static-only:{}-{nanos}",
        std::process::id()
    ));
    run_ok(
        "docker import of the binary-only rootfs",
        Command::new("docker").args([
            "import",
            "--message",
            "stackbake static binary test",
            &tar_path.to_string_lossy(),
            &image.0,
        ]),
    );

    // The image really holds one file: its only layer is our tar.
    let history = run_ok(
        "docker history",
        Command::new("docker").args(["history", "--quiet", &image.0]),
    );
    assert_eq!(
        String::from_utf8_lossy(&history.stdout).lines().count(),
        1,
        "the imported image should have exactly one layer"
    );

    let version = run_in(&image, &["--version"]);
    let line = version.trim_end();
    let prefix = concat!("stackbake ", env!("CARGO_PKG_VERSION"), " (");
    let commit = line
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("--version printed {line:?}, expected \"{prefix}<commit>)\""));
    match std::env::var("STACKBAKE_COMMIT") {
        Ok(given) => assert_eq!(commit, given, "--version ignores STACKBAKE_COMMIT"),
        Err(_) => assert!(
            commit.len() == 7 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
            "--version should report a 7-hex commit, got {commit:?} in {line:?}"
        ),
    }

    let help = run_in(&image, &["--help"]);
    for command in ["build", "plan", "check", "init"] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "--help in the binary-only image does not list `{command}`:\n{help}"
        );
    }
}
