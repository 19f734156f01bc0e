//! A configuration that a reload can swap: connections opened after the swap use the new one,
//! open ones keep theirs.

use std::sync::{Arc, RwLock};

/// Where a connector or a listener takes its TLS configuration at each new connection.
pub struct Source<T>(Arc<RwLock<Arc<T>>>);

/// Without the configuration: rustls' `Debug` of a whole `ClientConfig` or `ServerConfig`
/// (provider, verifier, revocation lists, ...) would be linked in for a line nobody prints.
impl<T> std::fmt::Debug for Source<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Source(..)")
    }
}

impl<T> Clone for Source<T> {
    fn clone(&self) -> Self {
        Source(Arc::clone(&self.0))
    }
}

impl<T> Source<T> {
    pub fn new(config: T) -> Self {
        Source(Arc::new(RwLock::new(Arc::new(config))))
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<T> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Connections opened from now on use `config`; open ones keep theirs.
    pub fn replace(&self, config: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }
}
