//! A fault-injecting TCP proxy for the fault tests: it listens on
//! 127.0.0.1:<free port> in front of a test registry, so that both
//! stackbake's own HTTP client and the Docker engine (which treats
//! 127.0.0.0/8 as an insecure, plain-HTTP registry) reach the registry only
//! through it when a test passes `--registry 127.0.0.1:<proxy port>`.
//!
//! Its [`Fault`] can be switched while a run is in flight: pass bytes
//! through, answer every Nth connection with `503` and close it, close
//! every Nth connection without an answer, stall (read, never answer), or
//! go down (close the listener, cut every open connection). It counts
//! connections and injected faults, so a test can prove its faults were
//! actually hit.
//!
//! [`EngineProxy`] does the same for the Docker engine's unix socket
//! (`DOCKER_HOST=unix://…`): pass through, close every connection at
//! once, or be cut mid-build (every open connection closed, the socket
//! file removed). Only std threads; nothing is left running after drop.

// Tests use different subsets of the proxies' controls.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What the proxy does to the connections it accepts from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Forward bytes both ways, untouched.
    Pass,
    /// Every `n`th connection (counted since the proxy started) gets an
    /// immediate `HTTP/1.1 503 Service Unavailable` after its request head,
    /// then is closed; the others pass.
    Fail503Every(usize),
    /// Every `n`th connection is closed after its request head, without an
    /// answer; the others pass.
    ResetEvery(usize),
    /// Accept and read, never answer, never close (until the mode changes
    /// to [`Fault::Down`] or the proxy drops).
    Stall,
    /// Refuse: the listener is closed (connect gets `ECONNREFUSED`) and
    /// every open connection is cut, as if the registry died.
    Down,
}

/// State shared by the accept thread, the connection threads and the test.
struct Shared {
    fault: Mutex<Fault>,
    connections: AtomicUsize,
    faults: AtomicUsize,
    /// How many more 503s/resets may be injected (`usize::MAX`: no limit).
    budget: AtomicUsize,
    stop: AtomicBool,
    /// Open sockets (client side, and upstream when connected), by id, so
    /// going down can cut them.
    live: Mutex<HashMap<usize, Vec<TcpStream>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn fault(&self) -> Fault {
        *lock(&self.fault)
    }

    /// Takes one unit of the fault budget; false once it is spent.
    fn take_budget(&self) -> bool {
        self.budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
            .is_ok()
    }

    fn track(&self, id: usize, socket: &TcpStream) {
        if let Ok(s) = socket.try_clone() {
            lock(&self.live).entry(id).or_default().push(s);
        }
    }

    fn forget(&self, id: usize) {
        lock(&self.live).remove(&id);
    }

    fn cut_all(&self) {
        for (_, sockets) in lock(&self.live).drain() {
            for s in sockets {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// The proxy; stops its threads and cuts its connections on drop.
pub(crate) struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// A pass-through proxy on 127.0.0.1:<free port> in front of
    /// `upstream` (`HOST:PORT`).
    pub(crate) fn start(upstream: &str) -> FaultProxy {
        FaultProxy::start_with(upstream, Fault::Pass)
    }

    /// A proxy starting in mode `fault` ([`Fault::Down`]: the port is
    /// reserved but refuses until the mode changes).
    pub(crate) fn start_with(upstream: &str, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            fault: Mutex::new(fault),
            connections: AtomicUsize::new(0),
            faults: AtomicUsize::new(0),
            budget: AtomicUsize::new(usize::MAX),
            stop: AtomicBool::new(false),
            live: Mutex::new(HashMap::new()),
        });
        let upstream = upstream.to_owned();
        let acceptor = {
            let shared = shared.clone();
            thread::spawn(move || accept_loop(listener, port, &upstream, &shared))
        };
        FaultProxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.1:PORT`, for `--registry`.
    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Switches the mode for the connections accepted from now on
    /// ([`Fault::Down`] also cuts the open ones).
    pub(crate) fn set(&self, fault: Fault) {
        *lock(&self.shared.fault) = fault;
        if fault == Fault::Down {
            self.shared.cut_all();
        }
    }

    /// Injects at most `n` more 503s/resets, then passes everything: a
    /// burst of hiccups rather than a permanently broken registry.
    pub(crate) fn limit_faults(&self, n: usize) {
        self.shared.budget.store(n, Ordering::SeqCst);
    }

    /// The current mode.
    pub(crate) fn fault(&self) -> Fault {
        self.shared.fault()
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections that got a fault (503, reset or stall) so far.
    pub(crate) fn faults(&self) -> usize {
        self.shared.faults.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.cut_all();
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// Accepts while the mode is not `Down`; while it is, holds no listener at
/// all (so connects are refused) and re-binds the same port afterwards.
fn accept_loop(listener: TcpListener, port: u16, upstream: &str, shared: &Arc<Shared>) {
    let mut listener = Some(listener);
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.fault() == Fault::Down {
            listener = None;
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        if listener.is_none() {
            // Back up: take the port again (retrying while the old socket lingers).
            listener = TcpListener::bind(("127.0.0.1", port)).ok();
            if listener.is_none() {
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        }
        let Some(l) = &listener else { continue };
        if l.set_nonblocking(true).is_err() {
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        match l.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                let n = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                let fault = shared.fault();
                let shared = shared.clone();
                let upstream = upstream.to_owned();
                thread::spawn(move || serve(n, fault, client, &upstream, &shared));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Reads until the end of an HTTP request head (or 5 s, or EOF); returns
/// what was read.
fn read_head(client: &mut TcpStream) -> Vec<u8> {
    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = client.set_read_timeout(None);
    head
}

fn serve(n: usize, fault: Fault, mut client: TcpStream, upstream: &str, shared: &Arc<Shared>) {
    shared.track(n, &client);
    match fault {
        Fault::Fail503Every(k) if k > 0 && n.is_multiple_of(k) && shared.take_budget() => {
            shared.faults.fetch_add(1, Ordering::SeqCst);
            read_head(&mut client);
            let _ = client.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
                  Content-Length: 21\r\nConnection: close\r\n\r\nfault proxy says 503\n",
            );
            let _ = client.flush();
            let _ = client.shutdown(Shutdown::Both);
        }
        Fault::ResetEvery(k) if k > 0 && n.is_multiple_of(k) && shared.take_budget() => {
            shared.faults.fetch_add(1, Ordering::SeqCst);
            read_head(&mut client);
            let _ = client.shutdown(Shutdown::Both);
        }
        Fault::Stall => {
            shared.faults.fetch_add(1, Ordering::SeqCst);
            // Swallow whatever arrives until the client or the proxy gives up.
            let mut buf = [0u8; 8192];
            while !shared.stop.load(Ordering::SeqCst) {
                match client.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        Fault::Down => {
            let _ = client.shutdown(Shutdown::Both);
        }
        _ => pass(n, client, upstream, shared),
    }
    shared.forget(n);
}

/// Copies bytes both ways until either side closes.
fn pass(n: usize, client: TcpStream, upstream: &str, shared: &Arc<Shared>) {
    let Ok(server) = TcpStream::connect(upstream) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    shared.track(n, &server);
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let shared2 = shared.clone();
    let up = thread::spawn(move || copy(client, server, &shared2));
    copy(server2, client2, shared);
    let _ = up.join();
}

/// Forwards `from` to `to`; while the mode is [`Fault::Stall`] the bytes
/// read are held back, so open connections stall too.
fn copy(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                while shared.fault() == Fault::Stall && !shared.stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(20));
                }
                if to.write_all(&buf[..k]).is_err() {
                    break;
                }
            }
        }
    }
    // Propagate the close to the other side (both directions end).
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

// ------------------------------------------------------------ engine socket

/// A unix-socket proxy in front of the Docker engine's socket.
pub(crate) struct EngineProxy {
    path: PathBuf,
    shared: Arc<EngineShared>,
    acceptor: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

struct EngineShared {
    /// Close every accepted connection at once, unanswered.
    close_all: bool,
    /// Cut: no more connections (socket removed), open ones closed.
    down: AtomicBool,
    stop: AtomicBool,
    connections: AtomicUsize,
    live: Mutex<HashMap<usize, Vec<UnixStream>>>,
}

impl EngineShared {
    fn track(&self, id: usize, s: &UnixStream) {
        if let Ok(s) = s.try_clone() {
            lock(&self.live).entry(id).or_default().push(s);
        }
    }

    fn cut_all(&self) {
        for (_, sockets) in lock(&self.live).drain() {
            for s in sockets {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

impl EngineProxy {
    /// A pass-through proxy to the engine socket `upstream`.
    pub(crate) fn start(upstream: &Path) -> EngineProxy {
        EngineProxy::launch(upstream, false)
    }

    /// A socket that accepts every connection and closes it unanswered.
    pub(crate) fn closing() -> EngineProxy {
        EngineProxy::launch(Path::new("/nonexistent"), true)
    }

    fn launch(upstream: &Path, close_all: bool) -> EngineProxy {
        let dir = tempfile::Builder::new()
            .prefix("stackbake-engine-proxy-")
            .tempdir()
            .expect("temp dir for the engine proxy");
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).expect("bind the engine proxy socket");
        listener
            .set_nonblocking(true)
            .expect("non-blocking engine proxy socket");
        let shared = Arc::new(EngineShared {
            close_all,
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            live: Mutex::new(HashMap::new()),
        });
        let acceptor = {
            let shared = shared.clone();
            let upstream = upstream.to_owned();
            let path = path.clone();
            thread::spawn(move || engine_accept_loop(listener, &path, &upstream, &shared))
        };
        EngineProxy {
            path,
            shared,
            acceptor: Some(acceptor),
            _dir: dir,
        }
    }

    /// `unix:///…/docker.sock`, for `DOCKER_HOST`.
    pub(crate) fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// The engine goes away: open connections are closed, the socket file
    /// is removed (new connects fail with "no such file").
    pub(crate) fn cut(&self) {
        self.shared.down.store(true, Ordering::SeqCst);
        self.shared.cut_all();
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.cut_all();
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn engine_accept_loop(
    listener: UnixListener,
    path: &Path,
    upstream: &Path,
    shared: &Arc<EngineShared>,
) {
    let mut listener = Some(listener);
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.down.load(Ordering::SeqCst) {
            if listener.take().is_some() {
                let _ = std::fs::remove_file(path);
            }
            shared.cut_all();
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        let Some(l) = &listener else { break };
        match l.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                let n = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                if shared.close_all {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = UnixStream::connect(upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                shared.track(n, &client);
                shared.track(n, &server);
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                thread::spawn(move || copy_unix(client, server));
                thread::spawn(move || copy_unix(s2, c2));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn copy_unix(mut from: UnixStream, mut to: UnixStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                if to.write_all(&buf[..k]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
