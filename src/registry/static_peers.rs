//! A fixed peer list: the members are those listed peers that answer `GET /nodeDetails` for
//! the same cluster, plus this node. A peer that answered before and is slow now is listed as
//! it last answered (see [`PeerAnswers`]), so a frozen peer does not hold up every list.

use super::peer_answers::PeerAnswers;
use super::Registry;
use crate::core::member::Member;
use crate::core::wire::NodeDetails;
use crate::http::peer::PeerClient;
use crate::sync::lock;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct StaticRegistry {
    peers: Vec<String>,
    asker: Arc<Asker>,
    answers: PeerAnswers,
    timeout: Duration,
    me: Mutex<Option<Member>>,
}

/// Asks one peer who it is.
struct Asker {
    cluster: String,
    client: PeerClient,
}

impl StaticRegistry {
    pub fn new(peers: Vec<String>, cluster: &str, timeout: Duration) -> Self {
        StaticRegistry {
            peers,
            asker: Arc::new(Asker {
                cluster: cluster.to_string(),
                client: PeerClient::new(timeout),
            }),
            answers: PeerAnswers::default(),
            timeout,
            me: Mutex::new(None),
        }
    }
}

impl Asker {
    fn ask(&self, address: &str) -> Option<Member> {
        let (status, details) = self
            .client
            .get::<NodeDetails>(address, "/nodeDetails")
            .ok()?;
        let d = details.filter(|d| status == 200 && d.cluster == self.cluster)?;
        let host = address
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))?;
        Some(Member {
            name: d.node_name,
            id: d.node_id,
            host: host.to_string(),
            port: address.rsplit_once(':')?.1.parse().ok()?,
            witness: d.witness,
        })
    }
}

impl Registry for StaticRegistry {
    fn register(&self, me: &Member) -> Result<(), String> {
        *lock(&self.me) = Some(me.clone());
        Ok(())
    }

    fn deregister(&self, _me: &Member) -> Result<(), String> {
        Ok(())
    }

    fn members(&self) -> Result<Vec<Member>, String> {
        let asker = Arc::clone(&self.asker);
        let mut members = self
            .answers
            .collect(&self.peers, self.timeout, move |p| asker.ask(p));
        if let Some(me) = lock(&self.me).clone() {
            members.retain(|m| m.name != me.name);
            members.push(me);
        }
        members.sort_by_key(|m| m.node_ref());
        Ok(members)
    }

    fn describe(&self) -> String {
        format!("static [{}]", self.peers.join(", "))
    }
}
