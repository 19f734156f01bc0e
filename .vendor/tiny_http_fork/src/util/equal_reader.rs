use std::io::Read;
use std::io::Result as IoResult;
use std::sync::mpsc::channel;
use std::sync::mpsc::{Receiver, Sender};

/// A `Reader` that reads exactly the number of bytes from a sub-reader.
///
/// If the limit is reached, it returns EOF. If the limit is not reached
/// when the destructor is called, the remaining bytes will be read and
/// thrown away.
pub struct EqualReader<R>
where
    R: Read,
{
    reader: R,
    size: usize,
    last_read_signal: Sender<IoResult<()>>,
    // bully patch: a read failed (a timeout): the stream is of no further use
    failed: bool,
}

/// bully patch: the most of an unread body thrown away on drop before the connection is
/// simply closed; draining all of it let a client that kept sending hold the thread forever.
const MAX_DRAIN: usize = 64 * 1024;

impl<R> EqualReader<R>
where
    R: Read,
{
    pub fn new(reader: R, size: usize) -> (EqualReader<R>, Receiver<IoResult<()>>) {
        let (tx, rx) = channel();

        let r = EqualReader {
            reader,
            size,
            last_read_signal: tx,
            failed: false,
        };

        (r, rx)
    }
}

impl<R> Read for EqualReader<R>
where
    R: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.size == 0 {
            return Ok(0);
        }

        let buf = if buf.len() < self.size {
            buf
        } else {
            &mut buf[..self.size]
        };

        match self.reader.read(buf) {
            Ok(len) => {
                self.size -= len;
                Ok(len)
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

impl<R> Drop for EqualReader<R>
where
    R: Read,
{
    fn drop(&mut self) 
    {
        // bully patch: no draining after a failed read, and at most MAX_DRAIN bytes.
        let mut remaining_to_read = if self.failed { 0 } else { self.size.min(MAX_DRAIN) };

        // TODO: reimplement the whole sicket and thread system to use async/await for internal handling not
        // exposing the async/await to the user. Also replace the below with the splice() sendfile() to /dev/null
        // instead of copying it to userland.
        let mut buf = [0_u8; 4096];

        while remaining_to_read > 0 
        {
            let r = remaining_to_read.min(buf.len());

            match self.reader.read(&mut buf[..r]) 
            {
                Err(e) => 
                {
                    self.last_read_signal.send(Err(e)).ok();
                    break;
                },
                Ok(0) => 
                {
                    self.last_read_signal.send(Ok(())).ok();
                    break;
                },
                Ok(n) => 
                {
                    remaining_to_read -= n;
                }
            }
        }
    }
}
