//! What the command line prints itself (help, errors, `bully status`), written so that a
//! closed pipe or terminal never panics: `println!` and `eprintln!` do, and a panic at exit
//! would turn exit code 1 or 2 into 101.

use std::io::Write;

/// `text` on stdout; a failed write is ignored.
pub fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// `line` and a newline on stderr; a failed write is ignored.
pub fn err(line: &str) {
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("{line}\n").as_bytes());
}
