//! What a supervisor does last when its node is gone (`kill -9`, a crash) and the command's
//! group is dead: one POST the node asked for, such as revoking the etcd lease that holds the
//! leader key (`--etcd-lock`), so the next node need not wait out the lease. It comes after
//! the kill, never before: the next leader's work cannot overlap this one's.
//!
//! The node sends `orphaned URL[,URL...] TOKEN BODY` (TOKEN `-` for none, sent as
//! `Authorization`); each URL is tried in turn until one answers 2xx, each within a second.

use std::time::Duration;

/// How long each URL gets: a loaded etcd may be slow to answer, and anything below the
/// lease's TTL still beats waiting it out.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The URLs, the token and the body of a request; `None` when `spec` is not one.
pub fn parse(spec: &str) -> Option<(Vec<&str>, Option<&str>, &str)> {
    let mut parts = spec.splitn(3, ' ');
    let urls: Vec<&str> = parts.next()?.split(',').collect();
    let token = parts.next()?;
    let body = parts.next()?;
    if urls.iter().any(|u| !u.starts_with("http://")) || body.is_empty() {
        return None;
    }
    Some((urls, (token != "-").then_some(token), body))
}

/// Sends it; whether some URL took it. Says nothing: the node it would tell is gone.
pub fn post(spec: &str) -> bool {
    let Some((urls, token, body)) = parse(spec) else {
        return false;
    };
    let agent = crate::http::peer::agent(TIMEOUT, TIMEOUT);
    urls.iter().any(|url| {
        let mut rq = agent.post(*url).header("Content-Type", "application/json");
        if let Some(t) = token {
            rq = rq.header("Authorization", t);
        }
        rq.send(body).is_ok_and(|r| r.status().is_success())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_parsed_and_odd_ones_refused() {
        assert_eq!(
            parse(r#"http://a:1/v3/lease/revoke,http://b:2/x - {"ID":"5"}"#),
            Some((
                vec!["http://a:1/v3/lease/revoke", "http://b:2/x"],
                None,
                r#"{"ID":"5"}"#
            ))
        );
        assert_eq!(parse("http://a:1/x tok {}").map(|p| p.1), Some(Some("tok")));
        for bad in [
            "",
            "http://a:1/x",
            "http://a:1/x -",
            "ftp://a/x - {}",
            "http://a:1/x - ",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(!post("http://127.0.0.1:1/x - {}"));
    }
}
