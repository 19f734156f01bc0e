//! What a supervisor does last when its node is gone (`kill -9`, a crash) and the command's
//! group is dead: one POST the node asked for, such as revoking the etcd lease that holds the
//! leader key (`--etcd-lock`), so the next node need not wait out the lease. It comes after
//! the kill, never before: the next leader's work cannot overlap this one's.
//!
//! The node sends `orphaned [tls:...] URL[,URL...] TOKEN BODY` (TOKEN `-` for none, sent as
//! `Authorization`); each URL is tried in turn until one answers 2xx, each within a second.
//! The optional first word names the registry's TLS files (`RegistryTls::field`), loaded
//! again here when the request is sent, so `https` endpoints work as they do in the node.

use crate::registry::tls_files::{self, RegistryTls};
use std::time::Duration;

/// How long each URL gets: a loaded etcd may be slow to answer, and anything below the
/// lease's TTL still beats waiting it out.
const TIMEOUT: Duration = Duration::from_secs(2);

/// A request to send: the TLS word if any, the URLs, the token and the body.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec<'a> {
    pub tls: Option<&'a str>,
    pub urls: Vec<&'a str>,
    pub token: Option<&'a str>,
    pub body: &'a str,
}

/// The request in `spec`; `None` when `spec` is not one (an `https` URL without TLS files
/// included).
pub fn parse(spec: &str) -> Option<Spec<'_>> {
    let (tls, spec) = match spec.strip_prefix("tls:") {
        Some(_) => {
            let (word, rest) = spec.split_once(' ')?;
            (Some(word), rest)
        }
        None => (None, spec),
    };
    let mut parts = spec.splitn(3, ' ');
    let urls: Vec<&str> = parts.next()?.split(',').collect();
    let token = parts.next()?;
    let body = parts.next()?;
    let scheme_ok =
        |u: &&str| u.starts_with("http://") || (tls.is_some() && tls_files::is_https(u));
    if !urls.iter().all(scheme_ok) || body.is_empty() {
        return None;
    }
    Some(Spec {
        tls,
        urls,
        token: (token != "-").then_some(token),
        body,
    })
}

/// Sends it; whether some URL took it. Says nothing: the node it would tell is gone.
pub fn post(spec: &str) -> bool {
    let Some(spec) = parse(spec) else {
        return false;
    };
    let tls = match spec.tls.map(RegistryTls::from_field) {
        // The files no longer load: nothing can be sent, the lease runs out on its own.
        Some(None) => return false,
        Some(t) => t,
        None => None,
    };
    let agent = tls_files::agent(tls.as_ref(), TIMEOUT, TIMEOUT);
    spec.urls.iter().any(|url| {
        let mut rq = agent.post(*url).header("Content-Type", "application/json");
        if let Some(t) = spec.token {
            rq = rq.header("Authorization", t);
        }
        rq.send(spec.body).is_ok_and(|r| r.status().is_success())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_parsed_and_odd_ones_refused() {
        assert_eq!(
            parse(r#"http://a:1/v3/lease/revoke,http://b:2/x - {"ID":"5"}"#),
            Some(Spec {
                tls: None,
                urls: vec!["http://a:1/v3/lease/revoke", "http://b:2/x"],
                token: None,
                body: r#"{"ID":"5"}"#
            })
        );
        assert_eq!(
            parse("http://a:1/x tok {}").map(|p| p.token),
            Some(Some("tok"))
        );
        assert_eq!(
            parse("tls:61:: https://a:1/x - {}").map(|p| (p.tls, p.urls)),
            Some((Some("tls:61::"), vec!["https://a:1/x"]))
        );
        for bad in [
            "",
            "http://a:1/x",
            "http://a:1/x -",
            "ftp://a/x - {}",
            "http://a:1/x - ",
            "https://a:1/x - {}",
            "tls:61::",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(!post("http://127.0.0.1:1/x - {}"));
    }
}
