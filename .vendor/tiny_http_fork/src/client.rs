

use std::fmt;
use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, Cursor, ErrorKind, Read};

use std::net::SocketAddr;
use std::str::FromStr;

use ascii::AsciiString;

use crate::Header;
use crate::Headers;
use crate::common::{HeaderError, HEADER_CONTENT_TYPE_JSON};
use crate::common::{HTTPVersion, Method};
use crate::log;
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::{Request, Response, StatusCode};

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,
    /// bully patch 10: the connection's socket, handed to each request.
    socket_fd: std::os::fd::RawFd,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // bully patch: the most bytes the request line and headers may take (`ServerConfig`)
    max_head: usize,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
pub enum ReadError 
{
    /// Issued when parsing headers or any other things fails
    ProtocolViolation(String),
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    ReadIoError(IoError),
    /// bully patch: the request line and headers exceed the head limit
    HeadTooLarge,
}

/// bully patch: the most bytes a request line and its headers may take unless
/// `ServerConfig::set_max_head_bytes` says otherwise. Lines were read into memory without a
/// limit, so one endless header line could take all the memory there is.
pub const MAX_HEAD: usize = 64 * 1024;

impl fmt::Display for ReadError
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result 
    {
        match self
        {
            Self::ProtocolViolation(errmsg) => 
                write!(f, "[ProtocolViolation] {}", errmsg),
            Self::WrongRequestLine => 
                write!(f, "[WrongRequestLine]"),
            Self::WrongHeader(_httpversion) => 
                write!(f, "[WrongHeader]"),
            Self::ExpectationFailed(_httpversion) => 
                write!(f, "[ExpectationFailed]"),
            Self::ReadIoError(error) => 
                write!(f, "[ReadIoError] {}", error),
            Self::HeadTooLarge => 
                write!(f, "[HeadTooLarge]"),
        }
    }
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        max_head: usize,
    ) -> ClientConnection 
    {
        let remote_addr = read_socket.peer_addr();
        let socket_fd = read_socket.raw_fd();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection 
        {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            socket_fd,
            next_header_source: first_header,
            no_more_requests: false,
            max_head,
        }
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    /// 
    /// CVE-2026-66753 fixed
    fn read_next_line(&mut self, budget: &mut usize) -> Result<AsciiString, ReadError> 
    {
        let mut buf = Vec::new();
        let mut rn = [0_u8; 2];
        let mut rn_p = 0;
        const RNC: u16 = u16::from_le_bytes([b'\r', b'\n']);

        
        loop 
        {
            let cur_byte = 
                self.next_header_source.by_ref().bytes().next()
                    .ok_or_else(||
                       ReadError::ReadIoError(IoError::new(ErrorKind::ConnectionAborted, "Unexpected EOF"))
                    )?
                    .map_err(|e|
                        ReadError::ReadIoError(e)
                    )?;

            // bully patch: every byte of the head counts against the budget.
            *budget = budget.checked_sub(1).ok_or(ReadError::HeadTooLarge)?;

            match rn_p
            {
                0 => 
                {
                    if cur_byte != b'\r' && cur_byte != b'\n'
                    { // most times true
                        buf.push(cur_byte);
                    }
                    else
                    {
                        rn[rn_p] = cur_byte;
                        rn_p += 1;
                    }
                },
                _ =>
                {
                    rn[rn_p] = cur_byte;

                    if u16::from_le_bytes(rn) != RNC
                    {
                        // error
                        return Err(ReadError::WrongRequestLine);
                    }

                    return
                        AsciiString::from_ascii(buf)
                            .map_err(|_| ReadError::ProtocolViolation(format!("Header is not in ASCII")));
                }
            }
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> 
    {
        let mut budget = self.max_head;
        let (method, path, version, headers) = 
            {
                // reading the request line
                let (method, path, version) = {
                    let line = self.read_next_line(&mut budget)?;

                    parse_request_line(
                        line.as_str().trim(), // TODO: remove this conversion
                    )?
                };

                // getting all headers
                let headers = 
                    {
                        let mut headers = Headers::new();
                        loop 
                        {
                            let line = self.read_next_line(&mut budget)?;

                            if line.is_empty() == true
                            {
                                break;
                            }

                            let header_res: Result<Header, HeaderError> = FromStr::from_str(line.as_str().trim());

                            match header_res
                            {
                                Ok(hd) => 
                                {
                                    headers.push(hd);
                                },
                                Err(e) => 
                                {
                                    log::error!("{}", e);

                                    return Err(ReadError::ProtocolViolation(e.to_string()));
                                }
                            }
                        }

                        headers
                    };

                (method, path, version, headers)
            };

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // fix https://github.com/tiny-http/tiny-http/pull/285
        let remote_addr = 
            self.remote_addr.as_ref()
                .map_err(|e| ReadError::ReadIoError(IoError::from(e.kind())))
                .map(|addr| *addr)?;

        // building the next reader
        let request = 
            crate::request::new_request(
                method,
                path,
                version.clone(),
                headers,
                remote_addr,
                self.socket_fd,
                data_source,
                writer,
            )
            .map_err(|e| 
                {
                    use crate::request;
                    match e 
                    {
                        request::RequestCreationError::ProtocolViolation => 
                            ReadError::WrongRequestLine, // 400
                        request::RequestCreationError::CreationIoError(e) => 
                            ReadError::ReadIoError(e),
                        request::RequestCreationError::ExpectationFailed => 
                        {
                            ReadError::ExpectationFailed(version)
                        }
                    }
                }
            )?;

        // return the request
        Ok(request)
    }
}

impl Iterator for ClientConnection 
{
    type Item = Result<Request, ReadError>;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Self::Item> 
    {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests == true 
        {
            return None;
        }


        loop 
        {
            let rq_res = self.read();

            if let Err(e) = rq_res
            {
                // bully patch: every answer this crate writes itself is JSON
                // `{"error": "..."}`, like the node's own.
                let (status, version, error) = 
                    match &e
                    {
                        ReadError::ProtocolViolation(_err_descr) =>
                            (StatusCode::BAD_REQUEST, HTTPVersion(1, 1), "malformed request head".to_owned()),
                        ReadError::WrongRequestLine => 
                            (StatusCode::BAD_REQUEST, HTTPVersion(1, 1), "malformed request".to_owned()),
                        ReadError::WrongHeader(ver) => 
                            (StatusCode::BAD_REQUEST, ver.clone(), "malformed header".to_owned()),
                        // bully patch: a read timeout (SO_RCVTIMEO) reports WouldBlock on
                        // Linux, which got 400 instead of 408.
                        ReadError::ReadIoError(err) 
                            if matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => 
                            (StatusCode::REQUEST_TIMEOUT, HTTPVersion(1, 1), "request not received in time".to_owned()),
                        ReadError::HeadTooLarge => 
                            (
                                StatusCode(431),
                                HTTPVersion(1, 1),
                                format!("request line and headers exceed {} bytes", self.max_head),
                            ),
                        ReadError::ExpectationFailed(ver) => 
                            (StatusCode::EXPECTATION_FAILED, ver.clone(), "unsupported Expect header".to_owned()),
                        _ => 
                            (StatusCode::BAD_REQUEST, HTTPVersion(1, 1), "malformed request".to_owned()),
                    };

                let writer = self.sink.next().unwrap();
                error_response(status, &error)
                    .raw_print(writer, version, None, false, None)
                    .ok();

                // workaround
                self.no_more_requests = true;

                return Some(Err(e));
            }

            let rq = rq_res.unwrap();

            // checking HTTP version
            if *rq.http_version() > (1, 1) 
            {
                // bully patch: answer through the request's own writer. Taking a second writer
                // from `self.sink` while `rq` still holds the first one waited forever for it
                // to be dropped, leaking this thread and its socket.
                let response = error_response(
                    StatusCode::HTTPVERSION_NOT_SUPPORTED,
                    "only HTTP/1.0 and HTTP/1.1 are supported",
                );

                rq.respond(response).ok();
                self.no_more_requests = true;

                return None;
            }

            // bully patch: one request per connection. bully answers every request with
            // `Connection: close`; waiting for a second request that never comes held this
            // thread (and the socket) for another read timeout after every stalled client.
            self.no_more_requests = true;

            // returning the request
            return Some(Ok(rq));
        }
    }
}

/// bully patch: a JSON error answer, `{"error": "..."}`; `error` holds no quote or backslash.
fn error_response(status: StatusCode, error: &str) -> Response<Cursor<Vec<u8>>>
{
    Response::from_string(format!("{{\"error\":\"{}\"}}", error))
        .with_status_code(status)
        .with_header(Header::from(&HEADER_CONTENT_TYPE_JSON))
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> 
{
    let (major, minor) = 
        match version 
        {
            "HTTP/0.9" => (0, 9),
            "HTTP/1.0" => (1, 0),
            "HTTP/1.1" => (1, 1),
            "HTTP/2.0" => (2, 0),
            "HTTP/3.0" => (3, 0),
            _ => return Err(ReadError::WrongRequestLine),
        };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> 
{
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}
