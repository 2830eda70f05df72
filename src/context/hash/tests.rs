use super::*;
use crate::context::{DockerIgnore, walk::list};
use std::fs;
use std::os::unix::fs::PermissionsExt;

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(p, content).expect("write");
}

fn fixture() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    write(r, ".dockerignore", "app/**/*.md\n");
    write(r, "app/api/index.html", "api");
    write(r, "app/api/NOTES.md", "ignored");
    write(r, "app/api/run.sh", "#!/bin/sh");
    write(r, "app/other/x.txt", "other");
    write(r, "app/a.txt", "a");
    write(r, "app/b.txt", "b");
    write(r, "README", "readme");
    std::os::unix::fs::symlink("index.html", r.join("app/api/link")).expect("symlink");
    t
}

fn hash(root: &Path, sources: &[&str]) -> Result<HashedSources, ContextError> {
    let ig = DockerIgnore::load(root).expect("load");
    let entries = list(root, &ig, &[]).expect("list");
    let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    hash_sources(root, &entries, &sources)
}

fn ok(root: &Path, sources: &[&str]) -> HashedSources {
    hash(root, sources).expect("hash")
}

#[test]
fn content_change_changes_digest() {
    let t = fixture();
    let before = ok(t.path(), &["app/api/"]);
    write(t.path(), "app/api/index.html", "api v2");
    assert_ne!(before.digest, ok(t.path(), &["app/api/"]).digest);
}

#[test]
fn exec_bit_counts_but_mtime_and_other_mode_bits_do_not() {
    let t = fixture();
    let p = t.path().join("app/api/run.sh");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
    let base = ok(t.path(), &["app/api"]);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(
        base.digest,
        ok(t.path(), &["app/api"]).digest,
        "group/other bits ignored"
    );
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_ne!(
        base.digest,
        ok(t.path(), &["app/api"]).digest,
        "exec bit counts"
    );
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
    let f = fs::File::options().write(true).open(&p).expect("open");
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .expect("mtime");
    assert_eq!(
        base.digest,
        ok(t.path(), &["app/api"]).digest,
        "mtime ignored"
    );
}

#[test]
fn unrelated_and_ignored_files_do_not_count() {
    let t = fixture();
    let base = ok(t.path(), &["app/api/"]);
    write(t.path(), "app/other/x.txt", "changed");
    write(t.path(), "README", "changed");
    write(t.path(), "app/api/NOTES.md", "changed too");
    assert_eq!(base.digest, ok(t.path(), &["app/api/"]).digest);
}

#[test]
fn symlink_target_change_changes_digest() {
    let t = fixture();
    let base = ok(t.path(), &["app/api"]);
    fs::remove_file(t.path().join("app/api/link")).expect("rm");
    std::os::unix::fs::symlink("run.sh", t.path().join("app/api/link")).expect("symlink");
    assert_ne!(base.digest, ok(t.path(), &["app/api"]).digest);
}

#[test]
fn dir_source_vs_wildcard_source() {
    let t = fixture();
    let dir = ok(t.path(), &["app"]);
    let txt = ok(t.path(), &["app/*.txt"]);
    assert_eq!(txt.paths, 2);
    assert_eq!(txt.bytes, 2);
    assert!(dir.paths > txt.paths);
    assert_ne!(dir.digest, txt.digest);
    // A change outside the wildcard does not count; inside it does.
    write(t.path(), "app/api/index.html", "x");
    assert_eq!(txt.digest, ok(t.path(), &["app/*.txt"]).digest);
    write(t.path(), "app/a.txt", "A");
    assert_ne!(txt.digest, ok(t.path(), &["app/*.txt"]).digest);
    // A wildcard that matches a directory takes the whole directory.
    let wild_dir = ok(t.path(), &["app/ap?"]);
    assert_eq!(wild_dir.digest, ok(t.path(), &["app/api"]).digest);
}

#[test]
fn spellings_of_the_same_source_agree() {
    let t = fixture();
    let a = ok(t.path(), &["app/api"]);
    for s in [
        "./app/api",
        "/app/api",
        "app/api/",
        "app//api",
        "app/other/../api",
    ] {
        assert_eq!(a, ok(t.path(), &[s]), "{s}");
    }
    let all = ok(t.path(), &["."]);
    assert_eq!(all, ok(t.path(), &["/"]));
    assert_eq!(all, ok(t.path(), &["./"]));
    let dup = ok(t.path(), &["app/api", "app/api/index.html"]);
    assert_eq!(a, dup, "duplicates are counted once");
}

#[test]
fn missing_sources_are_errors() {
    let t = fixture();
    assert!(matches!(
        hash(t.path(), &["app/nope"]),
        Err(ContextError::SourceNotFound { path }) if path == "app/nope"
    ));
    assert!(matches!(
        hash(t.path(), &["app/api/NOTES.md"]),
        Err(ContextError::SourceNotFound { .. })
    ));
    assert!(matches!(
        hash(t.path(), &["*.nothing"]),
        Err(ContextError::NoSourceFiles { .. })
    ));
    assert!(matches!(
        hash(t.path(), &[]),
        Err(ContextError::NoSourceFiles { .. })
    ));
    assert!(matches!(
        hash(t.path(), &["../etc"]),
        Err(ContextError::SourceOutsideContext { .. })
    ));
    // A wildcard without match next to a real source is fine, as in the classic builder.
    assert_eq!(
        ok(t.path(), &["app/a.txt", "*.nothing"]),
        ok(t.path(), &["app/a.txt"])
    );
    // Broken patterns never panic.
    assert!(hash(t.path(), &["app/[", "\\", "[z-a]"]).is_err());
}

#[test]
fn symlinked_source_is_followed_in_scope() {
    let t = fixture();
    std::os::unix::fs::symlink("app/api", t.path().join("api-link")).expect("symlink");
    std::os::unix::fs::symlink("/app/b.txt", t.path().join("abs-link")).expect("symlink");
    std::os::unix::fs::symlink("loop", t.path().join("loop")).expect("symlink");
    let via = ok(t.path(), &["api-link"]);
    assert!(via.paths > ok(t.path(), &["app/api"]).paths);
    let before = ok(t.path(), &["api-link/index.html"]);
    write(t.path(), "app/api/index.html", "new");
    assert_ne!(before.digest, ok(t.path(), &["api-link/index.html"]).digest);
    assert_eq!(ok(t.path(), &["abs-link"]).bytes, 1);
    assert!(matches!(
        hash(t.path(), &["loop"]),
        Err(ContextError::SourceNotFound { .. })
    ));
}

#[test]
fn many_files_hash_in_parallel_deterministically() {
    let t = tempfile::tempdir().expect("tempdir");
    for i in 0..200 {
        write(t.path(), &format!("src/f{i:03}"), &format!("content {i}"));
    }
    let a = ok(t.path(), &["src"]);
    let b = ok(t.path(), &["src"]);
    assert_eq!(a, b);
    assert_eq!(a.paths, 201);
    write(t.path(), "src/f150", "other");
    assert_ne!(a.digest, ok(t.path(), &["src"]).digest);
    assert_eq!(a.hex().len(), 64);
}

#[test]
fn framing_separates_paths_and_contents() {
    // "ab" + "c" vs "a" + "bc": different files, same concatenation.
    let t1 = tempfile::tempdir().expect("tempdir");
    write(t1.path(), "d/ab", "c");
    let t2 = tempfile::tempdir().expect("tempdir");
    write(t2.path(), "d/a", "bc");
    assert_ne!(ok(t1.path(), &["d"]).digest, ok(t2.path(), &["d"]).digest);
}
#[test]
fn each_file_digest_is_of_its_own_content_across_directories() {
    // Files of several sizes (one spans several reads) spread over directories,
    // so that workers switch directory handles inside a batch.
    let t = tempfile::tempdir().expect("tempdir");
    let mut rels = Vec::new();
    for i in 0..150usize {
        let rel = format!("d{}/e{}/f{i:03}", i % 3, i / 40);
        let size = if i == 77 { READ_CHUNK * 2 + 5 } else { i * 37 };
        let content: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
        let p = t.path().join(&rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, &content).expect("write");
        rels.push(rel);
    }
    let entries = list(t.path(), &DockerIgnore::default(), &[]).expect("list");
    let items: Vec<&Entry> = entries.iter().collect();
    let hashed = hash_contents(t.path(), &items).expect("hash");
    let mut files = 0;
    for (entry, got) in items.iter().zip(&hashed) {
        if entry.kind != Kind::File {
            assert_eq!(*got, None, "{}", entry.rel);
            continue;
        }
        let content = fs::read(t.path().join(&entry.rel)).expect("read");
        let want: [u8; 32] = Sha256::digest(&content).into();
        assert_eq!(*got, Some((want, content.len() as u64)), "{}", entry.rel);
        files += 1;
    }
    assert_eq!(files, rels.len());
}

#[test]
fn files_changed_since_the_walk_are_hashed_as_they_are_now() {
    let t = tempfile::tempdir().expect("tempdir");
    write(t.path(), "src/grows", "0123456789");
    write(t.path(), "src/shrinks", "0123456789");
    write(t.path(), "src/big", &"x".repeat(READ_CHUNK + 10));
    let ig = DockerIgnore::load(t.path()).expect("load");
    let stale = list(t.path(), &ig, &[]).expect("list");
    let sources = vec!["src".to_string()];
    let before = hash_sources(t.path(), &stale, &sources).expect("hash");

    write(t.path(), "src/grows", "0123456789 and more");
    write(t.path(), "src/shrinks", "01234");
    write(t.path(), "src/big", &"x".repeat(READ_CHUNK + 20));
    let now = hash_sources(t.path(), &stale, &sources).expect("hash");
    let fresh = list(t.path(), &ig, &[]).expect("list");
    assert_eq!(now, hash_sources(t.path(), &fresh, &sources).expect("hash"));
    assert_ne!(now.digest, before.digest);
    assert_eq!(now.bytes, 19 + 5 + (READ_CHUNK as u64 + 20));
}
