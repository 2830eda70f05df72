//! FileSync `DiffCopy`: how BuildKit reads the build context and the
//! Dockerfile from our session (fsutil's sender protocol, as `docker buildx`
//! speaks it). The context goes this way on every engine, because the
//! engine's tar-body path cannot be read on the containerd image store
//! (moby#47717).
//!
//! The protocol: we send a `STAT` packet per entry, then an empty `STAT`;
//! an entry's file id is its position in that listing (directories and
//! symlinks count). BuildKit then asks `REQ{id}` for the regular files it
//! lacks, and we answer with `DATA` chunks and an empty `DATA`; its `FIN`
//! gets our `FIN`. The listing must be in fsutil's order: depth first, each
//! directory's children sorted by name, a directory before its children
//! (a plain byte sort of whole paths is wrong: `a.txt` < `a/b`). Modes are
//! Go `os.FileMode` bits, owners 0 (as the docker CLI sends, so cache keys
//! do not depend on the machine), and mtimes real: BuildKit compares them
//! with its copy from the previous transfer under the same shared key.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use bollard_buildkit_proto::fsutil::types::packet::PacketType;
use bollard_buildkit_proto::fsutil::types::{Packet, Stat};
use bollard_buildkit_proto::moby::filesync::v1::file_sync_server::FileSync;
use futures_util::{Stream, StreamExt};
use std::io::Read;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::context::DockerIgnore;
use crate::context::walk::{Entry, Kind};

/// The name of the (virtual) Dockerfile in the `dockerfile` directory.
pub(crate) const DOCKERFILE_NAME: &str = "Dockerfile";

const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_STICKY: u32 = 1 << 20;
const CHUNK: usize = 32 * 1024;
/// Files sent at once.
const SENDERS: usize = 16;

/// The two directories a build reads through the session.
#[derive(Clone)]
pub(crate) struct FileSyncService {
    /// The context root.
    root: PathBuf,
    /// The context entries this build may read (after `.dockerignore`).
    entries: Arc<Vec<Entry>>,
    /// The Dockerfile as sent.
    dockerfile: Arc<Vec<u8>>,
    /// Its mtime: now, so that a changed Dockerfile is never taken for the
    /// previous one.
    dockerfile_mtime: i64,
}

impl FileSyncService {
    /// Serves `entries` of `root` as the context, and `dockerfile`.
    pub(crate) fn new(root: PathBuf, entries: Vec<Entry>, dockerfile: String) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        FileSyncService {
            root,
            entries: Arc::new(entries),
            dockerfile: Arc::new(dockerfile.into_bytes()),
            dockerfile_mtime: now,
        }
    }

    /// The listing for the directory `dir` under the request's filters.
    fn listing(&self, dir: &str, filter: &Filter) -> Result<Vec<Item>, Status> {
        match dir {
            "dockerfile" => Ok(vec![Item {
                stat: Stat {
                    path: DOCKERFILE_NAME.to_string(),
                    mode: 0o644,
                    size: i64::try_from(self.dockerfile.len()).unwrap_or(i64::MAX),
                    mod_time: self.dockerfile_mtime,
                    ..Default::default()
                },
                source: Some(Source::Memory(self.dockerfile.clone())),
            }]),
            "context" => {
                let rels = select(&self.entries, filter);
                let mut items = Vec::with_capacity(rels.len());
                for rel in rels {
                    if let Some(item) = stat_item(&self.root, &rel)? {
                        items.push(item);
                    }
                }
                Ok(items)
            }
            other => Err(Status::not_found(format!(
                "no access allowed to dir {other:?}"
            ))),
        }
    }
}

/// One listed entry and where its bytes come from (regular files only).
struct Item {
    stat: Stat,
    source: Option<Source>,
}

enum Source {
    Disk(PathBuf),
    Memory(Arc<Vec<u8>>),
}

/// What a request asks for: `followpaths` (keep these paths, their
/// subtrees and their parents), `exclude-patterns` (`.dockerignore` as
/// BuildKit read it) and `include-patterns`.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    follow: Vec<String>,
    include: Vec<String>,
    exclude: Vec<String>,
}

impl Filter {
    fn from_metadata(md: &tonic::metadata::MetadataMap) -> Filter {
        Filter {
            follow: values(md, "followpaths"),
            include: values(md, "include-patterns"),
            exclude: values(md, "exclude-patterns"),
        }
    }
}

/// Every value of metadata `key`, URL-decoded when `<key>-encoded: 1`.
fn values(md: &tonic::metadata::MetadataMap, key: &str) -> Vec<String> {
    let encoded = md
        .get(format!("{key}-encoded").as_str())
        .and_then(|v| v.to_str().ok())
        == Some("1");
    md.get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|s| {
            if encoded {
                percent_decode(s)
            } else {
                s.to_string()
            }
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The relative paths to send, in fsutil's order: the entries the filter
/// keeps, plus the parent directories of each (a directory `.dockerignore`
/// excluded but whose child it re-includes is still sent, as fsutil does).
pub(crate) fn select(entries: &[Entry], filter: &Filter) -> Vec<String> {
    let exclude = if filter.exclude.is_empty() {
        None
    } else {
        DockerIgnore::parse(&filter.exclude.join("\n")).ok()
    };
    let follow = followed(entries, &filter.follow);
    let literal_includes: Option<Vec<&str>> = filter
        .include
        .iter()
        .map(|p| (!p.contains(['*', '?', '['])).then_some(p.trim_matches('/')))
        .collect();
    let mut keep: BTreeSet<String> = BTreeSet::new();
    for e in entries {
        if exclude.as_ref().is_some_and(|x| !x.in_context(&e.rel)) {
            continue;
        }
        if !follow.is_empty() && !follow.iter().any(|f| covers(f, &e.rel)) {
            continue;
        }
        // A pattern we cannot match exactly keeps everything: sending more
        // than asked changes no cache key (BuildKit checksums what it copies).
        if let Some(inc) = &literal_includes
            && !inc.is_empty()
            && !inc.iter().any(|f| covers(f, &e.rel))
        {
            continue;
        }
        keep.insert(e.rel.clone());
    }
    let parents: Vec<String> = keep
        .iter()
        .flat_map(|p| {
            p.match_indices('/')
                .map(|(i, _)| p[..i].to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    keep.extend(parents);
    let mut out: Vec<String> = keep.into_iter().collect();
    out.sort_by(|a, b| compare_paths(a, b));
    out
}

/// The followed paths, with the targets of followed symlinks (resolved
/// inside the context) added.
fn followed(entries: &[Entry], follow: &[String]) -> Vec<String> {
    let mut out: Vec<String> = follow
        .iter()
        .map(|f| f.trim_matches('/').to_string())
        .filter(|f| !f.is_empty() && f != ".")
        .collect();
    if follow
        .iter()
        .any(|f| matches!(f.trim_matches('/'), "" | "."))
    {
        return Vec::new();
    }
    let mut i = 0;
    while i < out.len() && out.len() < 10_000 {
        let f = out[i].clone();
        if let Some(Entry {
            kind: Kind::Symlink(target),
            ..
        }) = entries.iter().find(|e| e.rel == f)
            && let Some(resolved) = resolve_link(&f, target)
            && !out.contains(&resolved)
        {
            out.push(resolved);
        }
        i += 1;
    }
    out
}

/// `target` of the symlink at `link`, as a context path; `None` when it
/// leaves the context.
fn resolve_link(link: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        link.rsplit_once('/')
            .map(|(dir, _)| dir.split('/').collect())
            .unwrap_or_default()
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Whether `path` is `f`, inside `f`, or a parent of `f`.
fn covers(f: &str, path: &str) -> bool {
    path == f
        || path.strip_prefix(f).is_some_and(|r| r.starts_with('/'))
        || f.strip_prefix(path).is_some_and(|r| r.starts_with('/'))
}

/// fsutil's path order: component by component (`/` sorts lowest).
pub(crate) fn compare_paths(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// `st_mode` as Go's `os.FileMode`.
pub(crate) fn go_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    for (bit, go) in [
        (0o4000, GO_SETUID),
        (0o2000, GO_SETGID),
        (0o1000, GO_STICKY),
    ] {
        if st_mode & bit != 0 {
            m |= go;
        }
    }
    match st_mode & 0o170_000 {
        0o040_000 => m | GO_DIR,
        0o120_000 => m | GO_SYMLINK,
        _ => m,
    }
}

/// The `STAT` of `rel` as it is on disk now (`None` if it vanished or is
/// no longer a file, directory or symlink).
fn stat_item(root: &std::path::Path, rel: &str) -> Result<Option<Item>, Status> {
    let path = root.join(rel);
    let md = match std::fs::symlink_metadata(&path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Status::internal(format!("stat {rel}: {e}"))),
    };
    let ft = md.file_type();
    let mut stat = Stat {
        path: rel.to_string(),
        mode: go_mode(md.mode()),
        mod_time: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
        ..Default::default()
    };
    let mut source = None;
    if ft.is_symlink() {
        let target = std::fs::read_link(&path)
            .map_err(|e| Status::internal(format!("readlink {rel}: {e}")))?;
        stat.linkname = target.to_string_lossy().into_owned();
        stat.size = i64::try_from(md.size()).unwrap_or(i64::MAX);
    } else if ft.is_file() {
        stat.size = i64::try_from(md.size()).unwrap_or(i64::MAX);
        source = Some(Source::Disk(path));
    } else if !ft.is_dir() {
        return Ok(None);
    }
    Ok(Some(Item { stat, source }))
}

fn packet(kind: PacketType) -> Packet {
    Packet {
        r#type: kind as i32,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl FileSync for FileSyncService {
    type DiffCopyStream = Pin<Box<dyn Stream<Item = Result<Packet, Status>> + Send>>;
    type TarStreamStream = Pin<Box<dyn Stream<Item = Result<Packet, Status>> + Send>>;

    async fn tar_stream(
        &self,
        _: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::TarStreamStream>, Status> {
        Err(Status::unimplemented("tarstream"))
    }

    async fn diff_copy(
        &self,
        req: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::DiffCopyStream>, Status> {
        let md = req.metadata();
        let dir = values(md, "dir-name")
            .into_iter()
            .next()
            .unwrap_or_default();
        let filter = Filter::from_metadata(md);
        tracing::debug!(%dir, ?filter, "buildkit reads a directory");
        let this = self.clone();
        let items = tokio::task::spawn_blocking(move || this.listing(&dir, &filter))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        let (tx, rx) = mpsc::channel::<Result<Packet, Status>>(64);
        tokio::spawn(send(items, req.into_inner(), tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// The sender's side of one transfer: the listing, then the files asked
/// for, until the receiver says `FIN` (or goes away).
async fn send(
    items: Vec<Item>,
    mut inbound: Streaming<Packet>,
    tx: mpsc::Sender<Result<Packet, Status>>,
) {
    let mut files: HashMap<u32, Source> = HashMap::new();
    for (id, item) in items.into_iter().enumerate() {
        if let (Some(src), Ok(id)) = (item.source, u32::try_from(id)) {
            files.insert(id, src);
        }
        let p = Packet {
            stat: Some(item.stat),
            ..packet(PacketType::PacketStat)
        };
        if tx.send(Ok(p)).await.is_err() {
            return;
        }
    }
    if tx.send(Ok(packet(PacketType::PacketStat))).await.is_err() {
        return;
    }
    // Files are sent by several tasks at once, as fsutil's own sender
    // does: the receiver keeps several requests open, and one file at a
    // time made every small file cost a round trip.
    let mut sending = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(SENDERS));
    while let Some(msg) = inbound.next().await {
        let Ok(p) = msg else { return };
        match PacketType::try_from(p.r#type) {
            Ok(PacketType::PacketReq) => {
                let Some(src) = files.remove(&p.id) else {
                    let e = Status::invalid_argument(format!("invalid file id {}", p.id));
                    let _ = tx.send(Err(e)).await;
                    return;
                };
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let tx = tx.clone();
                sending.spawn(async move {
                    if let Err(e) = send_file(p.id, src, &tx).await {
                        let _ = tx.send(Err(e)).await;
                    }
                    drop(slot);
                });
            }
            Ok(PacketType::PacketFin) => {
                while sending.join_next().await.is_some() {}
                let _ = tx.send(Ok(packet(PacketType::PacketFin))).await;
                return;
            }
            Ok(PacketType::PacketErr) => {
                tracing::debug!(
                    error = %String::from_utf8_lossy(&p.data),
                    "buildkit reported a file transfer error"
                );
                return;
            }
            _ => {}
        }
    }
}

/// `DATA` chunks of one file, then an empty `DATA`.
async fn send_file(
    id: u32,
    src: Source,
    tx: &mpsc::Sender<Result<Packet, Status>>,
) -> Result<(), Status> {
    let data = |data: Vec<u8>| Packet {
        id,
        data,
        ..packet(PacketType::PacketData)
    };
    match src {
        Source::Memory(bytes) => {
            for chunk in bytes.chunks(CHUNK) {
                tx.send(Ok(data(chunk.to_vec())))
                    .await
                    .map_err(|_| Status::cancelled("receiver gone"))?;
            }
        }
        Source::Disk(path) => {
            // Blocking reads in place: a context is mostly small files, and
            // a hop to the blocking pool per open and per read made a
            // 500-file transfer take seconds on a busy machine.
            let read = |f: &mut std::fs::File, buf: &mut [u8]| {
                tokio::task::block_in_place(|| f.read(buf))
                    .map_err(|e| Status::internal(format!("read {}: {e}", path.display())))
            };
            let mut f = tokio::task::block_in_place(|| std::fs::File::open(&path))
                .map_err(|e| Status::internal(format!("open {}: {e}", path.display())))?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = read(&mut f, &mut buf)?;
                if n == 0 {
                    break;
                }
                tx.send(Ok(data(buf[..n].to_vec())))
                    .await
                    .map_err(|_| Status::cancelled("receiver gone"))?;
            }
        }
    }
    tx.send(Ok(data(Vec::new())))
        .await
        .map_err(|_| Status::cancelled("receiver gone"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rel: &str, kind: Kind) -> Entry {
        Entry {
            rel: rel.to_string(),
            kind,
            mode: 0o644,
            size: 0,
        }
    }

    fn filter(follow: &[&str], exclude: &[&str]) -> Filter {
        Filter {
            follow: follow.iter().map(|s| s.to_string()).collect(),
            include: Vec::new(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn paths_are_ordered_per_component_as_fsutil_demands() {
        let mut v = vec!["src/x", "src.bak", "src", "a.txt", "a/b", "a"];
        v.sort_by(|a, b| compare_paths(a, b));
        assert_eq!(v, ["a", "a/b", "a.txt", "src", "src/x", "src.bak"]);
    }

    #[test]
    fn modes_are_go_file_modes() {
        assert_eq!(go_mode(0o100_644), 0o644);
        assert_eq!(go_mode(0o040_755), 0o755 | (1 << 31));
        assert_eq!(go_mode(0o120_777), 0o777 | (1 << 27));
        assert_eq!(go_mode(0o104_755), 0o755 | (1 << 23));
        assert_eq!(go_mode(0o041_777), 0o777 | (1 << 31) | (1 << 20));
    }

    #[test]
    fn followpaths_keep_their_subtree_parents_and_link_targets() {
        let entries = vec![
            entry(".dockerignore", Kind::File),
            entry("app", Kind::Dir),
            entry("app/api", Kind::Dir),
            entry("app/api/x", Kind::File),
            entry("app/link", Kind::Symlink("../shared".into())),
            entry("app/web", Kind::Dir),
            entry("app/web/y", Kind::File),
            entry("shared", Kind::Dir),
            entry("shared/z", Kind::File),
        ];
        let got = select(&entries, &filter(&["app/api", "app/link"], &[]));
        assert_eq!(
            got,
            [
                "app",
                "app/api",
                "app/api/x",
                "app/link",
                "shared",
                "shared/z"
            ]
        );
        assert_eq!(select(&entries, &filter(&["."], &[])).len(), entries.len());
    }

    #[test]
    fn excluded_entries_are_dropped_but_parents_of_kept_ones_stay() {
        let entries = vec![
            entry(".dockerignore", Kind::File),
            entry("docs/keep.txt", Kind::File),
            entry("src", Kind::Dir),
            entry("src/a.go", Kind::File),
        ];
        let got = select(&entries, &filter(&[], &["*", "!docs/keep.txt", "!src"]));
        assert_eq!(got, ["docs", "docs/keep.txt", "src", "src/a.go"]);
    }

    #[test]
    fn encoded_metadata_values_are_decoded() {
        assert_eq!(percent_decode("a%2Fb+c%"), "a/b c%");
    }

    #[test]
    fn links_leaving_the_context_resolve_to_nothing() {
        assert_eq!(resolve_link("a/l", "../b/c"), Some("b/c".to_string()));
        assert_eq!(resolve_link("l", "../x"), None);
        assert_eq!(resolve_link("a/l", "/etc"), Some("etc".to_string()));
    }
}
