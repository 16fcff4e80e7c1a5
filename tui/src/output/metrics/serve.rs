//! The HTTP endpoint: hyper (HTTP/1.1) on a single-threaded tokio runtime of its own thread.
//!
//! It never makes the session wait: a scrape raises a flag and waits (at most [`FRESH_WAIT`]) for
//! the session to hand over a snapshot, then encodes it here. What a hostile or broken client can
//! cost is bounded: at most [`MAX_CONNECTIONS`] connections (more are closed at once), a request
//! head of at most [`MAX_HEAD`] bytes (hyper answers 431 past it), [`HEAD_TIMEOUT`] to send it (a
//! slowloris is closed), [`BODY_DEADLINE`] to take a page (a reader that stops reading is
//! dropped) and [`CONNECTION_LIFETIME`] per connection. Pages are shared: one is encoded at a
//! time, and every scrape within [`PAGE_REUSE`] of it gets the same bytes, so at most
//! `2 formats × (BODY_DEADLINE / PAGE_REUSE + 1)` pages are alive however many clients read slowly.

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context as TaskContext, Poll},
    thread::JoinHandle,
    time::Duration,
};

use anyhow::Context;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Frame, Incoming},
    header,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Semaphore, watch};

use super::{
    Snapshot,
    encode::{Format, ServerCounters, encode},
};

pub const MAX_CONNECTIONS: usize = 256;
/// hyper's smallest read buffer: a request line or head longer than this is refused.
pub const MAX_HEAD: usize = 8192;
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// Longest a response may take to be read: a page of 10 000 series is a few MB, read in well under
/// a second on any network a scraper uses.
pub const BODY_DEADLINE: Duration = Duration::from_secs(5);
/// How long a scrape waits for the session to hand over the numbers of now; past it (a stalled or
/// finished session) it gets the latest it has.
pub const FRESH_WAIT: Duration = Duration::from_millis(500);
/// A page this young is served again instead of encoding a new one.
pub const PAGE_REUSE: Duration = Duration::from_secs(1);

/// What the endpoint reads: the latest snapshot, and the flag that asks for a newer one.
pub struct Snapshots {
    pub(super) rx: watch::Receiver<Arc<Snapshot>>,
    pub(super) wanted: Arc<AtomicBool>,
}

impl Snapshots {
    /// The numbers of now: asks the session and waits for its answer, unless it has ended.
    async fn fresh(&mut self) -> Arc<Snapshot> {
        if !self.rx.borrow().last {
            self.rx.mark_unchanged();
            self.wanted.store(true, Ordering::Release);
            let _ = tokio::time::timeout(FRESH_WAIT, self.rx.changed()).await;
        }
        Arc::clone(&self.rx.borrow())
    }
}

impl Clone for Snapshots {
    fn clone(&self) -> Self {
        Self {
            rx: self.rx.clone(),
            wanted: Arc::clone(&self.wanted),
        }
    }
}

/// The running endpoint; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The endpoint's socket, bound but not served yet.
pub struct Bound {
    listener: std::net::TcpListener,
    pub addr: SocketAddr,
}

impl Server {
    /// Binds `addr` now, so a taken port is an error before capture starts. Serving
    /// ([`Bound::serve`]) comes after privileges are dropped: a thread started before would keep
    /// root's capabilities (capset(2) changes only the calling thread).
    pub fn bind(addr: SocketAddr) -> anyhow::Result<Bound> {
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr} for --metrics"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(Bound { listener, addr })
    }

    /// Binds and serves at once (no privileges to drop in between).
    pub fn start(addr: SocketAddr, snapshots: Snapshots) -> anyhow::Result<Self> {
        Self::bind(addr)?.serve(snapshots)
    }
}

impl Bound {
    /// Serves on a thread of its own.
    pub fn serve(self, snapshots: Snapshots) -> anyhow::Result<Server> {
        let Self { listener, addr } = self;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("metrics endpoint: cannot start its runtime: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => serve(l, snapshots, stopped).await,
                        Err(e) => tracing::error!("metrics endpoint: {e}"),
                    }
                });
            })
            .context("starting the metrics thread")?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Server {
    /// Keeps serving for `linger` after the session ended (a last scrape), or until `stop`.
    pub fn linger(&self, linger: Duration, stop: &AtomicBool) {
        let until = std::time::Instant::now() + linger;
        while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The last page of a format: when it was made, the page while it may be shared, its size.
struct Made {
    made: tokio::time::Instant,
    page: Option<Bytes>,
    len: usize,
}

impl Default for Made {
    fn default() -> Self {
        Self {
            made: tokio::time::Instant::now(),
            page: None,
            len: 0,
        }
    }
}

/// The last page of each format.
type Pages = [Made; 2];

/// Everything a connection's requests share.
#[derive(Clone)]
struct Shared {
    snapshots: Snapshots,
    counters: Arc<ServerCounters>,
    /// Held while a page is made, so that a burst of scrapes makes one.
    pages: Arc<tokio::sync::Mutex<Pages>>,
}

async fn serve(
    listener: tokio::net::TcpListener,
    snapshots: Snapshots,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let shared = Shared {
        snapshots,
        counters: Arc::default(),
        pages: Arc::default(),
    };
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stopped => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors, or a connection reset before it was accepted: try again soon.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let sending = Sending::default();
            let watched = sending.clone();
            let service = hyper::service::service_fn(move |req| {
                let (shared, sending) = (shared.clone(), sending.clone());
                async move { Ok::<_, Infallible>(respond(req, shared, sending).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => {}
                _ = watched.stalled() => {}
            }
            drop(permit);
        });
    }
}

/// When the response a connection is sending began, if one is; a watchdog closes the connection
/// once it is older than [`BODY_DEADLINE`].
#[derive(Clone, Default)]
struct Sending(Arc<std::sync::Mutex<Option<tokio::time::Instant>>>);

impl Sending {
    fn set(&self, v: Option<tokio::time::Instant>) {
        if let Ok(mut s) = self.0.lock() {
            *s = v;
        }
    }

    /// Resolves once a response has been in progress for longer than [`BODY_DEADLINE`].
    async fn stalled(&self) {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let since = self.0.lock().ok().and_then(|s| *s);
            if since.is_some_and(|t| t.elapsed() > BODY_DEADLINE) {
                return;
            }
        }
    }
}

async fn respond(req: Request<Incoming>, mut shared: Shared, sending: Sending) -> Response<Page> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut r = Response::new(Page::new(
            Bytes::from_static(text.as_bytes()),
            sending.clone(),
        ));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if req.uri().path() != "/metrics" {
        shared.counters.not_found.fetch_add(1, Ordering::Relaxed);
        return plain(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        shared.counters.not_found.fetch_add(1, Ordering::Relaxed);
        return plain(StatusCode::METHOD_NOT_ALLOWED, "use GET /metrics\n");
    }
    let format = Format::from_accept(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    shared.counters.scrapes.fetch_add(1, Ordering::Relaxed);
    let page = {
        let mut pages = shared.pages.lock().await;
        let slot = &mut pages[format as usize];
        match &slot.page {
            Some(page) if slot.made.elapsed() < PAGE_REUSE => page.clone(),
            _ => {
                let snap = shared.snapshots.fresh().await;
                // Sized like the last page: a growing string would double past it.
                let page = Bytes::from(encode(
                    snap,
                    &shared.counters,
                    format,
                    slot.len + slot.len / 8,
                ));
                let made = tokio::time::Instant::now();
                *slot = Made {
                    made,
                    page: Some(page.clone()),
                    len: page.len(),
                };
                // Forgotten once it may no longer be shared: between scrapes only its size is
                // kept, not the page.
                let pages = Arc::clone(&shared.pages);
                tokio::spawn(async move {
                    tokio::time::sleep(PAGE_REUSE).await;
                    let slot = &mut pages.lock().await[format as usize];
                    if slot.made == made {
                        slot.page = None;
                    }
                });
                page
            }
        }
    };
    let mut r = Response::new(Page::new(page, sending));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(format.content_type()),
    );
    r
}

/// A response body handed to hyper a piece at a time (hyper asks for the next piece only when
/// its write buffer has room); while it lasts, the connection's watchdog times it.
pub struct Page {
    rest: Bytes,
    sending: Sending,
}

/// Bytes handed to hyper at once.
const PIECE: usize = 64 * 1024;

impl Page {
    fn new(rest: Bytes, sending: Sending) -> Self {
        sending.set(Some(tokio::time::Instant::now()));
        Self { rest, sending }
    }

    fn finished(&mut self) {
        self.sending.set(None);
    }
}

impl Drop for Page {
    /// A body dropped unread (a HEAD request, a closed connection) is not in progress either.
    fn drop(&mut self) {
        self.finished();
    }
}

impl hyper::body::Body for Page {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.rest.is_empty() {
            self.finished();
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(PIECE);
        let piece = self.rest.split_to(n);
        if self.rest.is_empty() {
            self.finished();
        }
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.rest.len() as u64)
    }
}
