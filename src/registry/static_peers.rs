//! A peer list: the members are those listed peers that answer `GET /nodeDetails` for the
//! same cluster, plus this node. The list comes from `--peers` or from `--peers-file`, which
//! SIGHUP reads again. A peer that answered before and is slow now is listed as it last
//! answered (see [`PeerAnswers`]), so a frozen peer does not hold up every list.

use super::peer_answers::PeerAnswers;
use super::{name_taken, Registry, RegistryError};
use crate::core::member::Member;
use crate::core::rules::valid_host_port;
use crate::core::wire::NodeDetails;
use crate::http::peer::PeerClient;
use crate::sync::lock;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A peers file larger than this is not a list of peers.
const MAX_PEERS_FILE: u64 = 1024 * 1024;

pub struct StaticRegistry {
    peers: Mutex<Vec<String>>,
    /// Where the list came from, when it came from a file.
    file: Option<PathBuf>,
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

/// One `HOST:PORT` per line; blank lines and `#` comments are skipped. The error names the
/// line.
pub fn read_peers_file(path: &Path) -> Result<Vec<String>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_PEERS_FILE {
        return Err(format!(
            "{}: larger than {MAX_PEERS_FILE} bytes",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut peers = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let peer = line.split('#').next().unwrap_or("").trim();
        if peer.is_empty() {
            continue;
        }
        if !valid_host_port(peer) {
            return Err(format!(
                "{} line {}: expected HOST:PORT, got '{peer}'",
                path.display(),
                n + 1
            ));
        }
        if !peers.iter().any(|p| p == peer) {
            peers.push(peer.to_string());
        }
    }
    Ok(peers)
}

impl StaticRegistry {
    pub fn new(
        peers: Vec<String>,
        file: Option<PathBuf>,
        cluster: &str,
        timeout: Duration,
    ) -> Self {
        StaticRegistry {
            peers: Mutex::new(peers),
            file,
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
    fn register(&self, me: &Member) -> Result<(), RegistryError> {
        *lock(&self.me) = Some(me.clone());
        Ok(())
    }

    /// A listed peer that answers under our name: every peer is asked afresh and waited for,
    /// not taken as it last answered.
    fn check_name(&self, me: &Member) -> Result<(), RegistryError> {
        let peers = lock(&self.peers).clone();
        let answering: Vec<Member> = PeerClient::fan_out(&peers, |p| self.asker.ask(p))
            .into_iter()
            .flatten()
            .collect();
        // `ask` only lists peers that answered for this cluster.
        match answering
            .iter()
            .find(|m| m.name == me.name && m.address() != me.address())
        {
            Some(m) => Err(name_taken(me, m, &self.describe())),
            None => Ok(()),
        }
    }

    fn deregister(&self, _me: &Member) -> Result<(), String> {
        Ok(())
    }

    fn members(&self) -> Result<Vec<Member>, String> {
        let peers = lock(&self.peers).clone();
        let asker = Arc::clone(&self.asker);
        let mut members = self
            .answers
            .collect(&peers, self.timeout, move |p| asker.ask(p));
        if let Some(me) = lock(&self.me).clone() {
            members.retain(|m| m.name != me.name);
            members.push(me);
        }
        members.sort_by_key(|m| m.node_ref());
        Ok(members)
    }

    fn describe(&self) -> String {
        match &self.file {
            Some(f) => format!("static {}", f.display()),
            None => format!("static [{}]", lock(&self.peers).join(", ")),
        }
    }

    /// Reads `--peers-file` again; a file that cannot be read or holds a bad line leaves the
    /// list as it was.
    fn reload(&self) -> Result<Option<String>, String> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let fresh = read_peers_file(file).map_err(|e| format!("--peers-file {e}"))?;
        let mut peers = lock(&self.peers);
        let added: Vec<&String> = fresh.iter().filter(|p| !peers.contains(p)).collect();
        let removed: Vec<&String> = peers.iter().filter(|p| !fresh.contains(p)).collect();
        let said = if added.is_empty() && removed.is_empty() {
            format!("peers unchanged ({})", fresh.len())
        } else {
            let list = |v: &[&String]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
                }
            };
            format!(
                "peers added: {}; removed: {}; now {}",
                list(&added),
                list(&removed),
                fresh.len()
            )
        };
        *peers = fresh;
        Ok(Some(said))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_file_is_one_host_port_a_line_and_reloads() {
        let path = std::env::temp_dir().join(format!("bully-peers-{}", std::process::id()));
        std::fs::write(
            &path,
            "# the others\n10.0.0.1:5000\n\n  h2:5001  # two\nh2:5001\n",
        )
        .unwrap();
        assert_eq!(
            read_peers_file(&path).unwrap(),
            vec!["10.0.0.1:5000".to_string(), "h2:5001".into()]
        );
        let r = StaticRegistry::new(
            read_peers_file(&path).unwrap(),
            Some(path.clone()),
            "c",
            Duration::from_secs(1),
        );
        assert_eq!(r.reload().unwrap().as_deref(), Some("peers unchanged (2)"));
        std::fs::write(&path, "h2:5001\nh3:5002\n").unwrap();
        assert_eq!(
            r.reload().unwrap().as_deref(),
            Some("peers added: h3:5002; removed: 10.0.0.1:5000; now 2")
        );
        std::fs::write(&path, "h2:5001\nnot a peer\n").unwrap();
        let e = r.reload().unwrap_err();
        assert!(
            e.ends_with("line 2: expected HOST:PORT, got 'not a peer'"),
            "{e}"
        );
        assert_eq!(
            *lock(&r.peers),
            vec!["h2:5001".to_string(), "h3:5002".into()]
        );
        std::fs::remove_file(&path).unwrap();
        assert!(r.reload().is_err());
        let fixed = StaticRegistry::new(vec!["h:1".into()], None, "c", Duration::from_secs(1));
        assert_eq!(fixed.reload(), Ok(None));
    }
}
