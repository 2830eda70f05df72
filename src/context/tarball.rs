//! Streaming the build context to the engine as an uncompressed tar, in constant memory.
//!
//! A blocking task writes the tar with the `tar` crate into a bounded channel of
//! 64 KiB chunks; the async side hands those chunks to the HTTP body. Headers follow the
//! Docker CLI (`go-archive`): uid/gid 0, no user/group names, the real permission bits
//! plus the file-type bits, the real mtime, directories as `name/`, symlinks as symlinks.
//! A Dockerfile that lives outside the context is added under a given name and appended
//! to `.dockerignore`, exactly like the CLI's `AddDockerfileToBuildContext`, so that the
//! daemon (`builder/remotecontext/detect.go` `removeDockerfile`) drops it from the context.

use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

use super::walk::{Entry, Kind};

/// Size of each chunk handed to the HTTP body.
const CHUNK: usize = 64 * 1024;
/// Chunks buffered between the tar writer and the consumer (so ~512 KiB in flight).
const CHANNEL_CAPACITY: usize = 8;

const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;

/// Streams `entries` (from [`super::walk::list`]) under `root` as an uncompressed tar.
///
/// `extra_dockerfile` is `(name, content)` of a Dockerfile to add as a regular file
/// (mode 0600); `"\n<name>\n"` is then appended to the context's `.dockerignore` in the
/// tar, or a `.dockerignore` containing `".dockerignore\n<name>\n"` is added when the
/// entries have none. An entry with the same name as the extra Dockerfile is replaced.
///
/// Nothing runs until the stream is first polled, which must happen inside a tokio
/// runtime (otherwise the stream yields an error). A file that disappears or changes
/// size while it is sent ends the stream with an error naming it; dropping the stream
/// stops the writer.
pub(crate) fn tar_stream(
    root: PathBuf,
    entries: Vec<Entry>,
    extra_dockerfile: Option<(String, Vec<u8>)>,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    enum State {
        Start(PathBuf, Vec<Entry>, Option<(String, Vec<u8>)>),
        Running(
            mpsc::Receiver<Bytes>,
            tokio::task::JoinHandle<io::Result<()>>,
        ),
        Done,
    }
    futures_util::stream::unfold(
        State::Start(root, entries, extra_dockerfile),
        |state| async move {
            let (mut rx, handle) = match state {
                State::Done => return None,
                State::Running(rx, handle) => (rx, handle),
                State::Start(root, entries, extra) => {
                    let rt = match tokio::runtime::Handle::try_current() {
                        Ok(rt) => rt,
                        Err(_) => {
                            let e = io::Error::other(
                                "the build context tar stream must be polled inside a tokio runtime",
                            );
                            return Some((Err(e), State::Done));
                        }
                    };
                    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
                    let handle = rt.spawn_blocking(move || write_tar(&root, &entries, extra, tx));
                    (rx, handle)
                }
            };
            match rx.recv().await {
                Some(chunk) => Some((Ok(chunk), State::Running(rx, handle))),
                None => match handle.await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some((Err(e), State::Done)),
                    Err(join) => Some((
                        Err(io::Error::other(format!(
                            "the build context tar writer stopped unexpectedly: {join}"
                        ))),
                        State::Done,
                    )),
                },
            }
        },
    )
}

/// `Write` into the channel in `CHUNK`-sized pieces; blocks when the consumer lags.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(Bytes::from(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the build context consumer went away",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

/// Reads exactly `remaining` bytes or fails: the header already promised that size.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
    path: PathBuf,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let max = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} shrank while it was being sent to the engine; retry once it stops changing",
                    self.path.display()
                ),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn header(kind: tar::EntryType, mode: u32, mtime: i64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(u64::try_from(mtime).unwrap_or(0));
    h.set_size(size);
    h
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0)
}

fn write_tar(
    root: &Path,
    entries: &[Entry],
    extra: Option<(String, Vec<u8>)>,
    tx: mpsc::Sender<Bytes>,
) -> io::Result<()> {
    let writer = ChannelWriter {
        tx,
        buf: Vec::with_capacity(CHUNK),
    };
    let mut ar = tar::Builder::new(writer);
    let extra_name = extra.as_ref().map(|(n, _)| n.as_str());
    let mut had_dockerignore = false;
    for e in entries {
        if Some(e.rel.as_str()) == extra_name {
            continue;
        }
        let abs = root.join(&e.rel);
        let meta = std::fs::symlink_metadata(&abs).map_err(|err| with_path(err, &abs))?;
        let perm = meta.mode() & 0o7777;
        match &e.kind {
            Kind::Dir => {
                let mut h = header(tar::EntryType::Directory, perm | S_IFDIR, meta.mtime(), 0);
                ar.append_data(&mut h, format!("{}/", e.rel), io::empty())?;
            }
            Kind::Symlink(_) => {
                let target = std::fs::read_link(&abs).map_err(|err| with_path(err, &abs))?;
                let mut h = header(tar::EntryType::Symlink, 0o777 | S_IFLNK, meta.mtime(), 0);
                ar.append_link(&mut h, &e.rel, target)?;
            }
            Kind::File if e.rel == ".dockerignore" && extra_name.is_some() => {
                had_dockerignore = true;
                let mut content = std::fs::read(&abs).map_err(|err| with_path(err, &abs))?;
                content.extend_from_slice(format!("\n{}\n", extra_name.unwrap_or("")).as_bytes());
                let size = content.len() as u64;
                let mut h = header(tar::EntryType::Regular, perm | S_IFREG, meta.mtime(), size);
                ar.append_data(&mut h, &e.rel, content.as_slice())?;
            }
            Kind::File => {
                let file = std::fs::File::open(&abs).map_err(|err| with_path(err, &abs))?;
                let fmeta = file.metadata().map_err(|err| with_path(err, &abs))?;
                let size = fmeta.len();
                let mut h = header(tar::EntryType::Regular, perm | S_IFREG, fmeta.mtime(), size);
                let reader = ExactReader {
                    inner: file,
                    remaining: size,
                    path: abs.clone(),
                };
                ar.append_data(&mut h, &e.rel, reader)?;
            }
        }
    }
    if let Some((name, content)) = &extra {
        let now = now_secs();
        let mut h = header(
            tar::EntryType::Regular,
            0o600 | S_IFREG,
            now,
            content.len() as u64,
        );
        ar.append_data(&mut h, name, content.as_slice())?;
        if !had_dockerignore {
            let body = format!(".dockerignore\n{name}\n");
            let mut h = header(
                tar::EntryType::Regular,
                0o600 | S_IFREG,
                now,
                body.len() as u64,
            );
            ar.append_data(&mut h, ".dockerignore", body.as_bytes())?;
        }
    }
    let mut writer = ar.into_inner()?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{DockerIgnore, walk::list};
    use futures_util::StreamExt;
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    async fn collect(
        root: &Path,
        entries: Vec<Entry>,
        extra: Option<(String, Vec<u8>)>,
    ) -> Vec<u8> {
        let mut s = std::pin::pin!(tar_stream(root.to_path_buf(), entries, extra));
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk.expect("chunk"));
        }
        out
    }

    /// name → (type, mode, uid, gid, content or link target)
    fn read_back(data: &[u8]) -> BTreeMap<String, (tar::EntryType, u32, u64, u64, Vec<u8>)> {
        let mut ar = tar::Archive::new(data);
        let mut out = BTreeMap::new();
        for entry in ar.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let h = entry.header().clone();
            let name = entry.path().expect("path").to_string_lossy().into_owned();
            let mut content = Vec::new();
            if h.entry_type() == tar::EntryType::Symlink {
                content = entry
                    .link_name()
                    .expect("link")
                    .expect("some")
                    .to_string_lossy()
                    .into_owned()
                    .into_bytes();
            } else {
                entry.read_to_end(&mut content).expect("read");
            }
            let key = if h.entry_type() == tar::EntryType::Directory {
                format!("{}/", name.trim_end_matches('/'))
            } else {
                name
            };
            out.insert(
                key,
                (
                    h.entry_type(),
                    h.mode().expect("mode"),
                    h.uid().expect("uid"),
                    h.gid().expect("gid"),
                    content,
                ),
            );
            assert!(h.username().expect("utf8").unwrap_or("").is_empty());
        }
        out
    }

    fn fixture() -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        fs::create_dir_all(r.join("app/bin")).expect("mkdir");
        fs::write(r.join("app/bin/run.sh"), "#!/bin/sh\necho hi\n").expect("write");
        fs::set_permissions(r.join("app/bin/run.sh"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        fs::write(r.join("app/a.txt"), "alpha").expect("write");
        std::os::unix::fs::symlink("/etc/passwd", r.join("app/pw")).expect("symlink");
        let long = "d".repeat(120);
        fs::create_dir_all(r.join(&long)).expect("mkdir");
        fs::write(r.join(&long).join("f"), "long").expect("write");
        t
    }

    #[tokio::test]
    async fn tar_has_entries_modes_and_symlinks() {
        let t = fixture();
        let r = t.path();
        let entries = list(r, &DockerIgnore::default(), &[]).expect("list");
        let data = collect(r, entries, None).await;
        let m = read_back(&data);
        let run = &m["app/bin/run.sh"];
        assert_eq!(run.0, tar::EntryType::Regular);
        assert_eq!(run.1, 0o100755);
        assert_eq!((run.2, run.3), (0, 0));
        assert_eq!(run.4, b"#!/bin/sh\necho hi\n");
        assert_eq!(m["app/"].0, tar::EntryType::Directory);
        assert_eq!(m["app/"].1 & 0o170000, 0o040000);
        assert_eq!(m["app/pw"].0, tar::EntryType::Symlink);
        assert_eq!(m["app/pw"].4, b"/etc/passwd");
        let long = format!("{}/f", "d".repeat(120));
        assert_eq!(m[&long].4, b"long");
        assert!(!m.contains_key(".dockerignore"));
    }

    #[tokio::test]
    async fn extra_dockerfile_is_added_and_dockerignored() {
        let t = fixture();
        let r = t.path();
        let entries = list(r, &DockerIgnore::default(), &[]).expect("list");
        let name = ".dockerfile.0123456789abcdef0123".to_string();
        let data = collect(r, entries, Some((name.clone(), b"FROM scratch\n".to_vec()))).await;
        let m = read_back(&data);
        assert_eq!(m[&name].4, b"FROM scratch\n");
        assert_eq!(m[&name].1, 0o100600);
        assert_eq!(
            m[".dockerignore"].4,
            format!(".dockerignore\n{name}\n").into_bytes()
        );
        // The daemon removes the Dockerfile because the new .dockerignore matches it.
        let di =
            DockerIgnore::parse(&String::from_utf8_lossy(&m[".dockerignore"].4)).expect("parse");
        assert!(di.excluded(&name) && di.excluded(".dockerignore"));

        fs::write(r.join(".dockerignore"), "*.log").expect("write");
        let entries = list(r, &DockerIgnore::default(), &[]).expect("list");
        let data = collect(r, entries, Some((name.clone(), b"FROM a\n".to_vec()))).await;
        let m = read_back(&data);
        assert_eq!(
            m[".dockerignore"].4,
            format!("*.log\n{name}\n").into_bytes()
        );
        assert_eq!(m.keys().filter(|k| *k == ".dockerignore").count(), 1);
    }

    #[tokio::test]
    async fn vanished_file_is_an_error_not_a_short_tar() {
        let t = fixture();
        let r = t.path();
        let entries = list(r, &DockerIgnore::default(), &[]).expect("list");
        fs::remove_file(r.join("app/a.txt")).expect("rm");
        let mut s = std::pin::pin!(tar_stream(r.to_path_buf(), entries, None));
        let mut saw_err = None;
        while let Some(item) = s.next().await {
            if let Err(e) = item {
                saw_err = Some(e.to_string());
            }
        }
        let msg = saw_err.expect("an error");
        assert!(msg.contains("app/a.txt"), "{msg}");
    }

    #[test]
    fn polling_outside_a_runtime_is_an_error() {
        let t = fixture();
        let s = tar_stream(t.path().to_path_buf(), Vec::new(), None);
        let mut s = std::pin::pin!(s);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let first = s.as_mut().poll_next(&mut cx);
        assert!(matches!(first, std::task::Poll::Ready(Some(Err(_)))));
    }

    fn rss_bytes() -> u64 {
        let statm = fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("rss");
        pages * 4096
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_file_streams_in_flat_memory() {
        // The process's RSS is measured: no other test may run beside it.
        if !crate::testing::alone("context::tarball::tests::large_file_streams_in_flat_memory") {
            return;
        }
        let t = tempfile::tempdir().expect("tempdir");
        let big = t.path().join("big.bin");
        let f = fs::File::create(&big).expect("create");
        f.set_len(200 * 1024 * 1024).expect("sparse");
        drop(f);
        let entries = list(t.path(), &DockerIgnore::default(), &[]).expect("list");
        let before = rss_bytes();
        let mut peak = before;
        let mut total = 0u64;
        let mut s = std::pin::pin!(tar_stream(t.path().to_path_buf(), entries, None));
        while let Some(chunk) = s.next().await {
            let chunk = chunk.expect("chunk");
            assert!(chunk.len() <= CHUNK);
            total += chunk.len() as u64;
            if total % (16 * 1024 * 1024) < CHUNK as u64 {
                peak = peak.max(rss_bytes());
            }
        }
        peak = peak.max(rss_bytes());
        assert!(total > 200 * 1024 * 1024, "whole file sent: {total}");
        let growth = peak.saturating_sub(before);
        assert!(growth < 64 * 1024 * 1024, "RSS grew by {growth} bytes");
    }
}
