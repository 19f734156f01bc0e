//! The follower's end of a beat stream: `GET /watch?beat_ms=N` with `Upgrade: bully-beat` on a
//! socket of its own (ureq cannot take over a connection), TLS on it when the node speaks TLS
//! (one handshake for the whole stream), then one line per beat. It reports what it read,
//! typed, and leaves judging it to the caller.

use super::peer::PeerError;
use super::server::NODE_HEADER;
use crate::core::event::Unreachable;
use crate::sync::assert_no_state_lock;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The protocol named in `Upgrade`.
pub const PROTOCOL: &str = "bully-beat";
/// Longest response head or beat line read from a coordinator.
const MAX_LINE: u64 = 4096;

/// How an opened stream ended, or why it never opened.
#[derive(Debug)]
pub enum StreamEnd {
    /// The coordinator answered with a plain status instead of switching (409, 503, ...);
    /// and the `reason` field of its JSON body, if any.
    Refused { status: u16, reason: Option<String> },
    /// It wrote `demoted`: it stopped leading.
    Demoted,
    /// It wrote `shutdown`: it is leaving, its hooks have let go.
    ShuttingDown,
    /// No beat came within the deadline.
    Silent,
    /// The connection failed or closed without a word.
    Lost(PeerError),
}

/// A beat stream to a coordinator.
pub struct Stream {
    reader: BufReader<Conn>,
    /// Whose stream it is, as its `101` said ([`NODE_HEADER`]): name and id.
    node: Option<(String, u64)>,
}

/// The stream's connection: the bare socket, or TLS on it with the node's identity (one
/// handshake for the whole stream).
enum Conn {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn socket(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            #[cfg(feature = "tls")]
            Conn::Tls(t) => &t.sock,
        }
    }

    /// Speaks TLS on `socket` when the node does (handshake within its timeouts).
    fn open(socket: TcpStream, address: &str) -> std::io::Result<Conn> {
        #[cfg(feature = "tls")]
        if let Some(tls) = crate::tls::node::active() {
            let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
            let stream = crate::tls::client::wrap(&tls.client, host, socket)?;
            return Ok(Conn::Tls(Box::new(stream)));
        }
        let _ = address;
        Ok(Conn::Plain(socket))
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Conn::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Conn::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            Conn::Tls(t) => t.flush(),
        }
    }
}

impl Stream {
    /// Connects to `address`, asks for a beat every `every`, and waits (at most `timeout`
    /// per step) for the switch. `Err` with how it ended when it does not switch.
    pub fn open(address: &str, every: Duration, timeout: Duration) -> Result<Stream, StreamEnd> {
        assert_no_state_lock("a beat stream");
        let lost = |kind, detail: String| StreamEnd::Lost(PeerError { kind, detail });
        let addr = address
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| lost(Unreachable::Other, format!("cannot resolve {address}")))?;
        let socket = TcpStream::connect_timeout(&addr, timeout).map_err(|e| io_end(&e))?;
        socket
            .set_read_timeout(Some(timeout))
            .map_err(|e| io_end(&e))?;
        socket
            .set_write_timeout(Some(timeout))
            .map_err(|e| io_end(&e))?;
        let _ = socket.set_nodelay(true);
        let mut conn = Conn::open(socket, address).map_err(|e| io_end(&e))?;
        let request = format!(
            "GET /watch?beat_ms={} HTTP/1.1\r\nHost: {address}\r\nConnection: Upgrade\r\n\
             Upgrade: {PROTOCOL}\r\nUser-Agent: bully/{}\r\n\r\n",
            every.as_millis(),
            env!("CARGO_PKG_VERSION")
        );
        conn.write_all(request.as_bytes())
            .and_then(|()| conn.flush())
            .map_err(|e| io_end(&e))?;
        let mut reader = BufReader::new(conn);
        let (status, node) = read_head(&mut reader)?;
        if status != 101 {
            return Err(StreamEnd::Refused {
                status,
                reason: read_reason(&mut reader),
            });
        }
        Ok(Stream { reader, node })
    }

    /// The name and id of the node that switched, when it said (older nodes do not).
    pub fn node(&self) -> Option<(&str, u64)> {
        self.node.as_ref().map(|(name, id)| (name.as_str(), *id))
    }

    /// Reads beats until the stream ends; each beat must come within `deadline` of the
    /// last. Calls `beat` with each one's term; it returns false to stop following (the
    /// returned end is then [`StreamEnd::Silent`], to be ignored).
    pub fn follow(mut self, deadline: Duration, mut beat: impl FnMut(u64) -> bool) -> StreamEnd {
        if let Err(e) = self
            .reader
            .get_ref()
            .socket()
            .set_read_timeout(Some(deadline))
        {
            return io_end(&e);
        }
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut self.reader)
                .take(MAX_LINE)
                .read_until(b'\n', &mut line)
            {
                Ok(0) => {
                    return StreamEnd::Lost(PeerError {
                        kind: Unreachable::Closed,
                        detail: "the coordinator closed the stream".into(),
                    })
                }
                Ok(_) => {}
                Err(e) => return io_end(&e),
            }
            let text = String::from_utf8_lossy(&line);
            match text.trim() {
                "demoted" => return StreamEnd::Demoted,
                "busy" => {
                    return StreamEnd::Refused {
                        status: 503,
                        reason: None,
                    }
                }
                "shutdown" => return StreamEnd::ShuttingDown,
                t => match t.strip_prefix("beat ").and_then(|n| n.parse().ok()) {
                    Some(term) => {
                        if !beat(term) {
                            return StreamEnd::Silent;
                        }
                    }
                    None => {
                        return StreamEnd::Lost(PeerError {
                            kind: Unreachable::Other,
                            detail: format!(
                                "not a beat: {:?}",
                                t.chars().take(80).collect::<String>()
                            ),
                        })
                    }
                },
            }
        }
    }
}

/// What an I/O error on the stream means.
fn io_end(e: &std::io::Error) -> StreamEnd {
    use std::io::ErrorKind::*;
    match e.kind() {
        WouldBlock | TimedOut => StreamEnd::Silent,
        kind => StreamEnd::Lost(PeerError {
            kind: match kind {
                ConnectionRefused => Unreachable::Refused,
                ConnectionReset | ConnectionAborted | UnexpectedEof | BrokenPipe => {
                    Unreachable::Closed
                }
                _ => Unreachable::Other,
            },
            detail: e.to_string(),
        }),
    }
}

/// `NAME ID` as the coordinator sends it.
fn parse_node(value: &str) -> Option<(String, u64)> {
    let (name, id) = value.trim().rsplit_once(' ')?;
    Some((name.to_string(), id.parse().ok()?))
}

/// The status of a response head, and the node it names ([`NODE_HEADER`]), if it does.
fn read_head(reader: &mut BufReader<Conn>) -> Result<(u16, Option<(String, u64)>), StreamEnd> {
    let mut line = String::new();
    let mut status = None;
    let mut node = None;
    let mut total = 0;
    loop {
        line.clear();
        let n = reader
            .take(MAX_LINE)
            .read_line(&mut line)
            .map_err(|e| io_end(&e))?;
        total += n;
        if n == 0 || total > MAX_LINE as usize * 4 {
            return Err(StreamEnd::Lost(PeerError {
                kind: Unreachable::Closed,
                detail: "the coordinator closed before answering".into(),
            }));
        }
        if status.is_none() {
            status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
            if status.is_none() {
                return Err(StreamEnd::Lost(PeerError {
                    kind: Unreachable::Other,
                    detail: "not an HTTP answer".into(),
                }));
            }
        } else if line == "\r\n" || line == "\n" {
            return Ok((status.unwrap_or(0), node));
        } else if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case(NODE_HEADER) {
                node = parse_node(value);
            }
        }
    }
}

/// The `reason` of a small JSON error body (a 410 says `demoted` or `shutdown`).
fn read_reason(reader: &mut BufReader<Conn>) -> Option<String> {
    let mut body = Vec::new();
    let _ = reader.take(MAX_LINE).read_to_end(&mut body);
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    v["reason"].as_str().map(String::from)
}

#[cfg(test)]
mod tests {
    use super::parse_node;

    #[test]
    fn the_node_header_names_a_node_or_nothing() {
        assert_eq!(parse_node(" node4 4\r\n"), Some(("node4".into(), 4)));
        assert_eq!(parse_node(" web 1 7\r\n"), Some(("web 1".into(), 7)));
        assert_eq!(parse_node(" node4\r\n"), None);
        assert_eq!(parse_node(" node4 four\r\n"), None);
    }
}
