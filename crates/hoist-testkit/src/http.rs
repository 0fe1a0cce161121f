//! A small HTTP/1.1 file server on a free `127.0.0.1` port, for `ADD <url>` tests: files
//! with an optional `ETag` and `Last-Modified`, `If-None-Match` answered with `304`, a count
//! of the bodies sent, and faults on demand (`503`s, bodies cut short).
//!
//! A few lines of `std::net` on a thread rather than a file server: tests need exact control
//! of the headers and to know whether a body was sent.
//!
//! ```no_run
//! use hoist_testkit::http::{FileServer, Served};
//! let server = FileServer::start().unwrap();
//! server.serve("/a.txt", Served::new("hello\n").etag("\"v1\""));
//! let url = server.url("/a.txt");
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::{Result, TestkitError};

/// A tar holding `files` (path, content) as regular files, mode 0644, owned by root and
/// dated 2020-09-13: a build context for a [`FileServer`] to serve.
pub fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_600_000_000);
        header.set_uid(0);
        header.set_gid(0);
        builder
            .append_data(&mut header, path, content.as_bytes())
            .expect("a tar in memory");
    }
    builder.into_inner().expect("a tar in memory")
}

/// One file the server serves.
#[derive(Debug, Clone, Default)]
pub struct Served {
    pub body: Vec<u8>,
    /// Sent as `ETag`, quotes included (`"v1"`).
    pub etag: Option<String>,
    /// Sent as `Last-Modified` (an HTTP date).
    pub last_modified: Option<String>,
}

impl Served {
    /// `body` without `ETag` or `Last-Modified`.
    pub fn new(body: impl Into<Vec<u8>>) -> Served {
        Served {
            body: body.into(),
            ..Served::default()
        }
    }

    pub fn etag(mut self, etag: &str) -> Served {
        self.etag = Some(etag.to_owned());
        self
    }

    pub fn last_modified(mut self, date: &str) -> Served {
        self.last_modified = Some(date.to_owned());
        self
    }
}

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<String, Served>,
    /// Full bodies sent (a GET answered 200), by path.
    bodies_sent: BTreeMap<String, usize>,
    /// Requests answered, by path.
    requests: BTreeMap<String, usize>,
    /// Requests still to answer `503 Service Unavailable`.
    unavailable: usize,
    /// GETs still to answer with half the body and a closed connection.
    cut_short: usize,
}

/// The server; it stops when dropped. One connection at a time, closed after each answer.
#[derive(Debug)]
pub struct FileServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FileServer {
    /// Listens on a free loopback port and answers on a thread of its own.
    pub fn start() -> Result<FileServer> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(TestkitError::io("listen on", "127.0.0.1:0"))?;
        let addr = listener
            .local_addr()
            .map_err(TestkitError::io("read the address of", "127.0.0.1:0"))?;
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopped) = (Arc::clone(&state), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = answer(stream, &shared);
                }
            }
        });
        Ok(FileServer { addr, state, stop })
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Serves `served` at `path` (replacing what was there).
    pub fn serve(&self, path: &str, served: Served) {
        self.state().files.insert(path.to_owned(), served);
    }

    /// The next `unavailable` requests get a `503`, then the next `cut_short` GETs half
    /// their body.
    pub fn fail_next(&self, unavailable: usize, cut_short: usize) {
        let mut state = self.state();
        state.unavailable = unavailable;
        state.cut_short = cut_short;
    }

    /// How many full bodies of `path` were sent.
    pub fn bodies_sent(&self, path: &str) -> usize {
        self.state().bodies_sent.get(path).copied().unwrap_or(0)
    }

    /// How many requests for `path` were answered, whatever the answer.
    pub fn requests(&self, path: &str) -> usize {
        self.state().requests.get(path).copied().unwrap_or(0)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Reads one request and answers it from `state`.
fn answer(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut if_none_match = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(value.trim().to_owned());
            }
        }
    }
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    *state.requests.entry(path.clone()).or_default() += 1;
    let mut out = stream;
    if state.unavailable > 0 {
        state.unavailable -= 1;
        return write!(
            out,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    let Some(served) = state.files.get(&path).cloned() else {
        let body = b"404 page not found\n";
        write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        return out.write_all(body);
    };
    let mut headers = String::new();
    if let Some(etag) = &served.etag {
        headers.push_str(&format!("ETag: {etag}\r\n"));
    }
    if let Some(date) = &served.last_modified {
        headers.push_str(&format!("Last-Modified: {date}\r\n"));
    }
    let not_modified = match (&served.etag, &if_none_match) {
        (Some(etag), Some(asked)) => asked.split(',').any(|e| e.trim() == etag),
        _ => false,
    };
    if not_modified {
        return write!(
            out,
            "HTTP/1.1 304 Not Modified\r\n{headers}Connection: close\r\n\r\n"
        );
    }
    write!(
        out,
        "HTTP/1.1 200 OK\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        served.body.len()
    )?;
    if method == "GET" {
        if state.cut_short > 0 {
            state.cut_short -= 1;
            return out.write_all(&served.body[..served.body.len() / 2]);
        }
        *state.bodies_sent.entry(path).or_default() += 1;
        out.write_all(&served.body)?;
    }
    Ok(())
}
