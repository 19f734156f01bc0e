//! A request handler that panics takes down its own thread only: the node's real HTTP server
//! (one std thread per request, unwinding kept in every build) goes on answering, and the
//! panicked requests give their slots back. Run with the library's server on a real socket,
//! as the node's API cannot be made to panic from outside.

mod support;

use bully::http::auth::Verifier;
use bully::http::limits::MAX_HANDLERS;
use bully::http::routes::Route;
use bully::http::server::{self, Answer, Call, Service, UpgradedIo};
use serde_json::json;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

/// Panics on `GET /`, answers `GET /nodeDetails`.
struct Fragile {
    panicked: AtomicUsize,
}

impl Service for Fragile {
    fn answer(&self, call: Call) -> Answer {
        match call {
            Call::Health => {
                self.panicked.fetch_add(1, Ordering::SeqCst);
                panic!("a handler bug");
            }
            _ => Answer::ok(json!({"still": "here"})),
        }
    }
    fn accept_stream(&self) -> Result<String, Answer> {
        Err(Answer::error(409, "no streams here"))
    }
    fn take_stream(&self, _: Box<dyn UpgradedIo>, _: RawFd, _: Duration) {}
    fn verifier(&self) -> Option<&Verifier> {
        None
    }
    fn answered(&self, _: Route, _: u16) {}
}

#[test]
fn a_panicking_handler_kills_only_its_own_thread() {
    // Eighty expected panics would flood the test output; any other panic still prints.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"a handler bug") {
            default(info);
        }
    }));
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let port = listener.local_addr().unwrap().port();
    let service = Arc::new(Fragile {
        panicked: AtomicUsize::new(0),
    });
    let shared: Arc<dyn Service> = service.clone();
    std::thread::spawn(move || server::serve(listener, shared));

    // More panics than there are request slots: had a panic kept its slot, the last ones
    // and everything after would get 503.
    let panics = MAX_HANDLERS + 16;
    for i in 0..panics {
        let (status, body) = raw(
            port,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert_ne!(status, 503, "request {i} found no free slot: {body}");
        assert_ne!(
            status, 200,
            "request {i} was answered although its handler panicked"
        );
    }
    wait_for("every handler to have panicked", secs(30), || {
        let n = service.panicked.load(Ordering::SeqCst);
        (n == panics)
            .then_some(())
            .ok_or(format!("{n} of {panics}"))
    });
    let (status, body) = send(port, "GET", "/nodeDetails", b"");
    assert_eq!((status, body.as_str()), (200, r#"{"still":"here"}"#));
}
