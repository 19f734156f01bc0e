//! TLS (feature `tls`): PEM loading and the rustls client configuration with the ureq
//! connector that uses it. Shared by the node's mutual TLS and the registry clients; see
//! src/http/README.md "Mutual TLS" for the design.

pub mod client;
pub mod pem;
