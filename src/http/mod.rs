//! HTTP, both ways: the server loop and its guards, the route table, the client for peer
//! calls, and the cluster key that signs what they exchange. It knows the wire format and the
//! rules every input must pass, never the election.

pub mod auth;
pub mod limits;
pub mod peer;
pub mod routes;
pub mod server;
pub mod stream;
