use std::io::Result as IoResult;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};

use crate::connection::Connection;

/// One half of a connection: dropping the read half shuts the socket for reading, dropping
/// the write half shuts it for writing.
pub struct RefinedTcpStream 
{
    stream: Connection,
    close_read: bool,
    close_write: bool,
}

impl RefinedTcpStream {
    /// bully patch: a failed `dup` (out of descriptors) is returned, not a panic of the
    /// accept thread, which then backs off as for a failed accept (patch 3).
    pub(crate) fn new(stream: Connection) -> IoResult<(RefinedTcpStream, RefinedTcpStream)>
    {
        let (read, write) = (stream.try_clone()?, stream);

        let read = RefinedTcpStream {
            stream: read,
            close_read: true,
            close_write: false,
        };

        let write = RefinedTcpStream {
            stream: write,
            close_read: false,
            close_write: true,
        };

        Ok((read, write))
    }

    /// bully patch 10: the socket's descriptor.
    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        self.stream.raw_fd()
    }

    pub(crate) fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        self.stream.peer_addr()
    }

}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        if self.close_read {
            self.stream.shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            self.stream.shutdown(Shutdown::Write).ok();
        }
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        self.stream.read(buf)
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.stream.flush()
    }
}
