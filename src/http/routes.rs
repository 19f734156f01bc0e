//! The route table, spelled once: every path the node serves, the method it takes and its
//! label in the metrics. A request's path is parsed into a [`Route`] once, at the door.

/// What a route takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// A route of the node's HTTP API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    Health,
    NodeDetails,
    Metrics,
    Watch,
    Proxy,
    Response,
    Announce,
    Release,
    TakeOver,
    /// Operator requests: local, or signed with the cluster key.
    StepDown,
    Maintenance,
    /// Any other path: `404`.
    Unknown,
}

impl Route {
    /// Every route but [`Route::Unknown`].
    pub const ALL: [Route; 11] = [
        Route::Health,
        Route::NodeDetails,
        Route::Metrics,
        Route::Watch,
        Route::Proxy,
        Route::Response,
        Route::Announce,
        Route::Release,
        Route::TakeOver,
        Route::StepDown,
        Route::Maintenance,
    ];

    /// The route of a request target, and its query (empty when none).
    pub fn parse(target: &str) -> (Route, &str) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let route = Route::ALL
            .into_iter()
            .find(|r| r.path() == path)
            .unwrap_or(Route::Unknown);
        (route, query)
    }

    pub fn path(self) -> &'static str {
        match self {
            Route::Health => "/",
            Route::NodeDetails => "/nodeDetails",
            Route::Metrics => "/metrics",
            Route::Watch => "/watch",
            Route::Proxy => "/proxy",
            Route::Response => "/response",
            Route::Announce => "/announce",
            Route::Release => "/release",
            Route::TakeOver => "/takeover",
            Route::StepDown => "/step-down",
            Route::Maintenance => "/maintenance",
            Route::Unknown => "other",
        }
    }

    /// The metrics label: a bounded set whatever paths clients send.
    pub fn label(self) -> &'static str {
        self.path()
    }

    /// An operator's request rather than a peer's: taken from this host only, unless the
    /// cluster has a key (then its signature is what counts).
    pub fn is_operator(self) -> bool {
        matches!(self, Route::StepDown | Route::Maintenance)
    }

    /// The method the route takes; `None` for an unknown path.
    pub fn method(self) -> Option<Method> {
        match self {
            Route::Health | Route::NodeDetails | Route::Metrics | Route::Watch => Some(Method::Get),
            Route::Proxy
            | Route::Response
            | Route::Announce
            | Route::Release
            | Route::TakeOver
            | Route::StepDown
            | Route::Maintenance => Some(Method::Post),
            Route::Unknown => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_to_routes_and_back() {
        for r in Route::ALL {
            assert_eq!(Route::parse(r.path()), (r, ""));
        }
        assert_eq!(
            Route::parse("/watch?hold_ms=5"),
            (Route::Watch, "hold_ms=5")
        );
        assert_eq!(Route::parse("/nodedetails").0, Route::Unknown);
        assert_eq!(Route::parse("").0, Route::Unknown);
        assert_eq!(Route::Unknown.label(), "other");
        assert_eq!(Route::Announce.method(), Some(Method::Post));
    }
}
