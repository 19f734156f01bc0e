
use std::{io, net::ToSocketAddrs};

use crate::connection::{ConfigListenAddr, StreamWrapper};

/// bully patch 11: the wrapper as a field of a `Debug` configuration.
#[derive(Clone)]
pub struct Wrapper(pub StreamWrapper);

impl std::fmt::Debug for Wrapper
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result
    {
        f.write_str("StreamWrapper")
    }
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig 
{
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// Minimum threads which always runs.
    pub min_threads: Option<usize>,

    /// Maximum threads which can be allocated.
    pub max_threads: Option<usize>,

    /// bully patch: the most bytes a request line and its headers may take; past it the
    /// client gets `431` and the connection closes. 64 KiB unless set.
    pub max_head_bytes: usize,

    /// bully patch 11: what each accepted TCP socket is spoken through (TLS); none: plain.
    pub wrapper: Option<Wrapper>,
}

impl ServerConfig
{
    pub 
    fn new_http<A>(addr: A) -> io::Result<ServerConfig>
    where
        A: ToSocketAddrs,
    {
        Ok(
            ServerConfig 
            {
                addr: 
                    ConfigListenAddr::from_socket_addrs(addr)?,
                min_threads: 
                    None,
                max_threads: 
                    None,
                max_head_bytes: 
                    crate::client::MAX_HEAD,
                wrapper:
                    None,
            }
        )
    }

    pub 
    fn set_min_threads(mut self, cnt: usize) -> Self
    {
        self.min_threads = Some(cnt);

        return self;
    }

    pub 
    fn set_max_threads(mut self, cnt: usize) -> Self
    {
        self.max_threads = Some(cnt);

        return self;
    }

    /// bully patch: the head limit is the embedding server's to choose, so its own limits and
    /// this crate's are set in one place.
    pub 
    fn set_max_head_bytes(mut self, bytes: usize) -> Self
    {
        self.max_head_bytes = bytes;

        return self;
    }

    /// bully patch 11: speak every accepted TCP connection through `wrap` (TLS).
    pub
    fn set_stream_wrapper(mut self, wrap: StreamWrapper) -> Self
    {
        self.wrapper = Some(Wrapper(wrap));

        return self;
    }
}
