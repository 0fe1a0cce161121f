//! A registry that fails mid-export: a TCP proxy on loopback in front of a real registry
//! that passes every request on except those a [`Fault`] names, which it answers with a
//! `500` or by dropping the connection. Each forwarded request is sent upstream with
//! `Connection: close`, so every request of a keep-alive client opens a connection of its
//! own and passes the proxy's check; the upstream registry builds its `Location`s from the
//! `Host` the client sent, so upload sessions stay on the proxy.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What the proxy does to a request that matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `500 Internal Server Error`, then the connection closed.
    ServerError,
    /// The connection closed without an answer.
    Drop,
}

/// Requests with `method` whose path contains `path` get `answer`.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub method: &'static str,
    pub path: &'static str,
    pub answer: Answer,
}

pub struct FaultProxy {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub fn start(upstream: &str, faults: Vec<Fault>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (upstream, shared_log) = (upstream.to_owned(), Arc::clone(&log));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (upstream, faults, log) =
                    (upstream.clone(), faults.clone(), Arc::clone(&shared_log));
                std::thread::spawn(move || serve(stream, &upstream, &faults, &log));
            }
        });
        FaultProxy { addr, log }
    }

    /// `host:port` of the proxy.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `METHOD /path -> what` of every request seen.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests got a fault.
    pub fn faults(&self) -> usize {
        self.requests()
            .iter()
            .filter(|l| l.ends_with("(fault)"))
            .count()
    }
}

fn serve(client: TcpStream, upstream: &str, faults: &[Fault], log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let end = line == "\r\n";
        head.push(line);
        if end {
            break;
        }
    }
    let mut words = head[0].split_whitespace();
    let (method, path) = (
        words.next().unwrap_or_default().to_owned(),
        words.next().unwrap_or_default().to_owned(),
    );
    let path = path.split('?').next().unwrap_or_default().to_owned();
    let line = format!("{method} {path}");
    if let Some(fault) = faults
        .iter()
        .find(|f| f.method == method && path.contains(f.path))
    {
        log.lock()
            .unwrap()
            .push(format!("{line} -> {:?} (fault)", fault.answer));
        let mut client = client;
        if fault.answer == Answer::ServerError {
            let _ = client.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\
                  Connection: close\r\n\r\n",
            );
        }
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    log.lock().unwrap().push(format!("{line} -> forwarded"));
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    let mut forwarded = String::new();
    for line in &head[..head.len() - 1] {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            forwarded.push_str(line);
        }
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    if up.write_all(forwarded.as_bytes()).is_err() {
        return;
    }
    // The request's body (and anything after it) upstream, the answer back, until the
    // registry closes the connection after its answer.
    let mut up_write = up.try_clone().unwrap();
    let body = std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut up_write);
    });
    let mut client_write = client.try_clone().unwrap();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match up.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if client_write.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
    let _ = body.join();
}
