//! TLS (feature `tls`): PEM loading, the rustls client configuration with the ureq connector
//! that uses it (shared by the node's mutual TLS and the registry clients), the server side,
//! and the node's own identity. See src/http/README.md "Mutual TLS" for the design.

pub mod client;
pub mod node;
pub mod pem;
pub mod server;
pub mod source;
