//! Abstractions of Tcp and Unix socket types

#[cfg(unix)]
use std::os::{fd::AsRawFd, unix::net as unix_net};
use std::{
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs}, os::fd::AsFd, path::PathBuf,
};

/// Unified listener. Either a [`TcpListener`] or [`std::os::unix::net::UnixListener`]
#[derive(Debug)]
pub enum Listener 
{
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(unix_net::UnixListener),
}

#[cfg(unix)]
impl AsFd for Listener
{
    fn as_fd(&self) -> std::os::unix::prelude::BorrowedFd<'_> 
    {
        match self
        {
            Listener::Tcp(tcp_listener) => 
                tcp_listener.as_fd(),
            #[cfg(unix)]
            Listener::Unix(unix_listener) => 
                unix_listener.as_fd(),
        }
    }
}

#[cfg(unix)]
impl AsRawFd for Listener
{
    fn as_raw_fd(&self) -> std::os::unix::prelude::RawFd 
    {
        match self
        {
            Listener::Tcp(tcp_listener) => 
                tcp_listener.as_raw_fd(),
            #[cfg(unix)]
            Listener::Unix(unix_listener) => 
                unix_listener.as_raw_fd(),
        }
    }
}

impl Listener 
{
    pub(crate) fn local_addr(&self) -> std::io::Result<ListenAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().map(ListenAddr::from),
            #[cfg(unix)]
            Self::Unix(l) => l.local_addr().map(ListenAddr::from),
        }
    }

    pub(crate) fn accept(&self) -> std::io::Result<(Connection, Option<SocketAddr>)> {
        match self {
            Self::Tcp(l) => l
                .accept()
                .map(|(conn, addr)| (Connection::from(conn), Some(addr))),
            #[cfg(unix)]
            Self::Unix(l) => l.accept().map(|(conn, _)| (Connection::from(conn), None)),
        }
    }
}
impl From<TcpListener> for Listener 
{
    fn from(s: TcpListener) -> Self {
        Self::Tcp(s)
    }
}

#[cfg(unix)]
impl From<unix_net::UnixListener> for Listener 
{
    fn from(s: unix_net::UnixListener) -> Self 
    {
        Self::Unix(s)
    }
}

/// bully patch 11: a stream the server speaks through instead of the bare TCP socket (TLS).
/// The crate knows no cryptography: the caller wraps each accepted socket.
pub trait WrappedStream: std::io::Read + std::io::Write + Send
{
    /// Called when the write half closes, before the socket is shut for writing (TLS sends
    /// its `close_notify` here).
    fn shutdown_write(&mut self) {}
}

/// bully patch 11: wraps each accepted socket; called on the accept thread, so it must not
/// block (a TLS handshake runs later, on the connection's thread, at its first read).
pub type StreamWrapper =
    std::sync::Arc<dyn Fn(TcpStream) -> std::io::Result<Box<dyn WrappedStream>> + Send + Sync>;

/// bully patch 11: the wrapped stream, shared by the read and the write halves. One request
/// per connection (patch 6) means the halves take turns: the lock is never held by a read
/// while a write waits, but on a held upgrade, where only the server writes.
#[derive(Clone)]
pub(crate) struct Shared(std::sync::Arc<std::sync::Mutex<Box<dyn WrappedStream>>>);

impl std::fmt::Debug for Shared
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result
    {
        f.write_str("WrappedStream")
    }
}

impl Shared
{
    fn lock(&self) -> std::sync::MutexGuard<'_, Box<dyn WrappedStream>>
    {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Unified connection. Either a [`TcpStream`] or [`std::os::unix::net::UnixStream`].
#[derive(Debug)]
pub(crate) enum Connection 
{
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(unix_net::UnixStream),
    /// bully patch 11: a TCP socket spoken through a wrapper; `tcp` is kept for the
    /// descriptor, the peer's address and shutting down.
    Wrapped { tcp: TcpStream, io: Shared },
}

impl std::io::Read for Connection 
{
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> 
    {
        match self 
        {
            Self::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Self::Unix(s) => s.read(buf),
            Self::Wrapped { io, .. } => io.lock().read(buf),
        }
    }
}

impl std::io::Write for Connection 
{
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> 
    {
        match self 
        {
            Self::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Self::Unix(s) => s.write(buf),
            Self::Wrapped { io, .. } => io.lock().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> 
    {
        match self 
        {
            Self::Tcp(s) => s.flush(),
            #[cfg(unix)]
            Self::Unix(s) => s.flush(),
            Self::Wrapped { io, .. } => io.lock().flush(),
        }
    }
}

impl Connection 
{
    /// Gets the peer's address. Some for TCP, None for Unix sockets.
    pub(crate) 
    fn peer_addr(&mut self) -> std::io::Result<Option<SocketAddr>> 
    {
        match self 
        {
            Self::Tcp(s) => s.peer_addr().map(Some),
            #[cfg(unix)]
            Self::Unix(_) => Ok(None),
            Self::Wrapped { tcp, .. } => tcp.peer_addr().map(Some),
        }
    }

    pub(crate) 
    fn shutdown(&self, how: Shutdown) -> std::io::Result<()> 
    {
        match self 
        {
            Self::Tcp(s) => s.shutdown(how),
            #[cfg(unix)]
            Self::Unix(s) => s.shutdown(how),
            Self::Wrapped { tcp, io } =>
            {
                if how != Shutdown::Read
                {
                    let mut io = io.lock();
                    io.shutdown_write();
                    let _ = io.flush();
                }
                tcp.shutdown(how)
            }
        }
    }

    /// bully patch 10: the socket's descriptor, for options such as a send timeout on a
    /// connection handed over by `Request::upgrade`.
    pub(crate)
    fn raw_fd(&self) -> std::os::fd::RawFd
    {
        match self
        {
            Self::Tcp(s) => s.as_raw_fd(),
            #[cfg(unix)]
            Self::Unix(s) => s.as_raw_fd(),
            Self::Wrapped { tcp, .. } => tcp.as_raw_fd(),
        }
    }

    pub(crate) 
    fn try_clone(&self) -> std::io::Result<Self> 
    {
        match self 
        {
            Self::Tcp(s) => s.try_clone().map(Self::from),
            #[cfg(unix)]
            Self::Unix(s) => s.try_clone().map(Self::from),
            Self::Wrapped { tcp, io } => Ok(Self::Wrapped { tcp: tcp.try_clone()?, io: io.clone() }),
        }
    }
}
impl Connection
{
    /// bully patch 11: a TCP connection spoken through `wrap`; others are left as they are.
    pub(crate) fn wrapped(self, wrap: &StreamWrapper) -> std::io::Result<Self>
    {
        match self
        {
            Self::Tcp(tcp) =>
            {
                let io = wrap(tcp.try_clone()?)?;
                Ok(Self::Wrapped { tcp, io: Shared(std::sync::Arc::new(std::sync::Mutex::new(io))) })
            }
            other => Ok(other),
        }
    }
}

impl From<TcpStream> for Connection {
    fn from(s: TcpStream) -> Self {
        Self::Tcp(s)
    }
}
#[cfg(unix)]
impl From<unix_net::UnixStream> for Connection {
    fn from(s: unix_net::UnixStream) -> Self {
        Self::Unix(s)
    }
}

#[derive(Debug, Clone)]
pub enum ConfigListenAddr 
{
    IP(Vec<SocketAddr>),
    #[cfg(unix)]
    // TODO: use SocketAddr when bind_addr is stabilized
    Unix(std::path::PathBuf),
}

impl ConfigListenAddr 
{
    pub fn from_socket_addrs<A: ToSocketAddrs>(addrs: A) -> std::io::Result<Self> {
        addrs.to_socket_addrs().map(|it| Self::IP(it.collect()))
    }

    #[cfg(unix)]
    pub fn unix_from_path<P: Into<PathBuf>>(path: P) -> Self {
        Self::Unix(path.into())
    }

    pub(crate) 
    fn bind(&self) -> std::io::Result<(Listener, ListenAddr)> 
    {
        match self 
        {
            Self::IP(a) => 
            {
                let bind = TcpListener::bind(a.as_slice()).map(Listener::from)?;

                let la = bind.local_addr()?;

                Ok((bind, la))
            },
            #[cfg(unix)]
            Self::Unix(a) => 
            {
                let la = unix_net::SocketAddr::from_pathname(a)?;
                let bind = unix_net::UnixListener::bind(a).map(Listener::from)?;

                Ok((bind, ListenAddr::Unix(la)))
            }
        }
    }
}

/// Unified listen socket address. Either a [`SocketAddr`] or [`std::os::unix::net::SocketAddr`].
#[derive(Debug, Clone)]
pub enum ListenAddr 
{
    IP(SocketAddr),
    #[cfg(unix)]
    Unix(unix_net::SocketAddr),
}

impl ListenAddr 
{
    pub fn to_ip(&self) -> Option<&SocketAddr> 
    {
        match self 
        {
            Self::IP(s) => Some(s),
            #[cfg(unix)]
            Self::Unix(_) => None,
        }
    }

    /// Gets the Unix socket address.
    ///
    /// This is also available on non-Unix platforms, for ease of use, but always returns `None`.
    #[cfg(unix)]
    pub fn to_unix(&self) -> Option<unix_net::SocketAddr> 
    {
        match self 
        {
            Self::IP(_) => None,
            Self::Unix(s) => Some(s.clone()),
        }
    }
    #[cfg(not(unix))]
    pub fn to_unix(self) -> Option<SocketAddr> 
    {
        None
    }
}

impl From<SocketAddr> for ListenAddr 
{
    fn from(s: SocketAddr) -> Self 
    {
        Self::IP(s)
    }
}

#[cfg(unix)]
impl From<unix_net::SocketAddr> for ListenAddr 
{
    fn from(s: unix_net::SocketAddr) -> Self 
    {
        Self::Unix(s)
    }
}
impl std::fmt::Display for ListenAddr 
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result 
    {
        match self 
        {
            Self::IP(s) => s.fmt(f),
            #[cfg(unix)]
            Self::Unix(s) => std::fmt::Debug::fmt(s, f),
        }
    }
}

impl Drop for ListenAddr
{
    fn drop(&mut self) 
    {
        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = self
        {
            if let Some(path) = addr.as_pathname() 
            {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
