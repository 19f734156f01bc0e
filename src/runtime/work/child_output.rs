//! A child's output in the node's log: one thread per pipe logs its lines (`WHAT: line`), and
//! says when the pipe closed, so a hook's last lines are in the log before the next step.

use crate::sync::spawn_named;
use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// Longer output lines are logged in pieces rather than buffered without bound.
const MAX_LINE: u64 = 8 * 1024;

/// The threads that log a child's stdout and stderr; each reports when its pipe closed.
pub struct Output {
    closed: Receiver<()>,
    pipes: usize,
}

impl Output {
    pub fn log(
        what: &'static str,
        stdout: Option<impl Read + Send + 'static>,
        stderr: Option<impl Read + Send + 'static>,
    ) -> Output {
        let (tx, closed) = channel();
        let mut pipes = 0;
        let readers: [Option<Box<dyn Read + Send>>; 2] = [
            stdout.map(|r| Box::new(r) as Box<dyn Read + Send>),
            stderr.map(|r| Box::new(r) as Box<dyn Read + Send>),
        ];
        for pipe in readers.into_iter().flatten() {
            let tx = tx.clone();
            let spawned = spawn_named(&format!("{what}-output"), move || {
                log_lines(what, pipe);
                let _ = tx.send(());
            });
            match spawned {
                Ok(_) => pipes += 1,
                Err(e) => log::warn!("{what}: cannot log its output: {e}"),
            }
        }
        Output { closed, pipes }
    }

    /// Waits until both pipes closed, at most `within`: a background process the command
    /// left behind may hold them open for good.
    pub fn drain(&self, within: Duration) {
        let end = Instant::now() + within;
        for _ in 0..self.pipes {
            let left = end.saturating_duration_since(Instant::now());
            if self.closed.recv_timeout(left).is_err() {
                return;
            }
        }
    }
}

fn log_lines(what: &str, pipe: Box<dyn Read + Send>) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                log::info!("{what}: {}", text.trim_end());
            }
        }
    }
}
