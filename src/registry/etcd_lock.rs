//! `--etcd-lock` against etcd: the leader key `bully/<cluster>/leader` put on a lease of its
//! own by a transaction that only succeeds while no such key exists (its create revision is
//! 0), renewed with one keep-alive at a time, and let go by revoking the lease.
//!
//! Why a transaction and not etcd's election service (`/v3/election/campaign`): a campaign
//! blocks until it wins, which needs a stream held open and cancelled when the core stops
//! wanting the lock, while the core's lock gate asks once and asks again after a refusal;
//! the transaction answers at once, says who holds the key when it fails, and needs only
//! plain POSTs. Both give the same fencing token: the key's create revision, which etcd's
//! Raft log raises with every new holder.

use super::etcd_client::{EtcdClient, Kv};
use super::etcd_options::EtcdOptions;
use super::RegistryError;
use crate::core::member::Member;
use crate::sync::lock;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;

/// What came of one try to take the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Take {
    /// Taken on `lease`; the key's create revision.
    Taken { lease: i64, revision: u64 },
    /// Held by someone else: who, for the log.
    Held(String),
}

pub struct EtcdLock {
    client: EtcdClient,
    /// `bully/<cluster>/leader`.
    key: String,
    /// What the key holds: who took it.
    value: Vec<u8>,
    ttl: Duration,
    /// A lease granted for a try that was refused, for the next try.
    spare: Mutex<Option<i64>>,
}

impl EtcdLock {
    pub fn new(opts: &EtcdOptions, cluster: &str, me: &Member, timeout: Duration) -> Self {
        EtcdLock {
            client: EtcdClient::new(opts, timeout),
            key: format!("bully/{cluster}/leader"),
            value: json!({"node_name": me.name, "node_id": me.id.to_string(),
                          "address": me.address()})
            .to_string()
            .into_bytes(),
            ttl: opts.ttl,
            spare: Mutex::new(None),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A lease, then the key on it if nobody holds it. The lease is fresh from this call on
    /// (granted, or an unused one renewed), so it lasts at least the TTL from when this was
    /// called. A lease that did not take the key is kept for the next try, as tries come
    /// often while the key is held: each then costs a renewal and a transaction.
    pub fn take(&self) -> Result<Take, RegistryError> {
        let spare = lock(&self.spare).take();
        let lease = match spare {
            Some(l) if self.client.keepalive(l)?.is_some() => l,
            _ => self.client.grant(self.ttl)?,
        };
        match self.client.create(&self.key, &self.value, lease) {
            Ok(Ok(revision)) => Ok(Take::Taken { lease, revision }),
            Ok(Err(holder)) => {
                *lock(&self.spare) = Some(lease);
                Ok(Take::Held(match holder {
                    Some(kv) => self.holder(&kv),
                    None => format!("{} was held, and gone when read", self.key),
                }))
            }
            Err(e) => {
                if let Err(e) = self.client.revoke(lease) {
                    log::debug!("revoking an unused lease: {e}");
                }
                Err(e)
            }
        }
    }

    /// Revokes the lease kept for the next try, if any: the core no longer wants the key.
    pub fn drop_spare(&self) {
        if let Some(l) = lock(&self.spare).take() {
            if let Err(e) = self.client.revoke(l) {
                log::debug!("revoking an unused lease: {e}");
            }
        }
    }

    /// Renews `lease` once; `Ok(None)` when etcd no longer knows it (it ran out or was
    /// revoked), else the TTL it has from now.
    pub fn renew(&self, lease: i64) -> Result<Option<Duration>, RegistryError> {
        Ok(self.client.keepalive(lease)?.map(Duration::from_secs))
    }

    /// Whether the key still lives on `lease` (not deleted or taken over by hand).
    pub fn held_on(&self, lease: i64) -> Result<bool, RegistryError> {
        Ok(self
            .client
            .get(&self.key)?
            .is_some_and(|kv| kv.lease == lease))
    }

    /// Lets go: revoking the lease deletes the key with it. `false` when etcd no longer knew
    /// the lease.
    pub fn release(&self, lease: i64) -> Result<bool, RegistryError> {
        self.client.revoke(lease)
    }

    /// The request that revokes `lease` for a supervisor whose node is gone
    /// (`supervisor::orphaned`): every endpoint, the current token, the lease.
    pub fn revoke_spec(&self, lease: i64) -> String {
        self.client
            .request_spec("/v3/lease/revoke", &json!({"ID": lease.to_string()}))
    }

    /// Who holds the key, for a log line.
    fn holder(&self, kv: &Kv) -> String {
        let v: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
        let who = match (v["node_name"].as_str(), v["address"].as_str()) {
            (Some(n), Some(a)) => format!("node {} at {}", clip(n), clip(a)),
            _ => "a holder that is not a bully node".into(),
        };
        format!(
            "{} is held by {who} (revision {}, lease {:x})",
            self.key, kv.create_revision, kv.lease
        )
    }
}

/// A name from etcd on one short line.
fn clip(s: &str) -> String {
    super::consul::shown(s.as_bytes())
        .chars()
        .take(80)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_says_who_holds_it() {
        let opts = EtcdOptions {
            endpoints: vec!["http://127.0.0.1:1".into()],
            tls: None,
            ttl: Duration::from_secs(5),
            lock: true,
            auth: None,
        };
        let me = Member {
            name: "node4".into(),
            id: 4,
            host: "10.0.0.4".into(),
            port: 5004,
            witness: false,
        };
        let l = EtcdLock::new(&opts, "alpha", &me, Duration::from_secs(1));
        assert_eq!(l.key(), "bully/alpha/leader");
        let kv = Kv {
            key: l.key.clone(),
            value: l.value.clone(),
            create_revision: 12,
            lease: 255,
        };
        assert_eq!(
            l.holder(&kv),
            "bully/alpha/leader is held by node node4 at 10.0.0.4:5004 (revision 12, lease ff)"
        );
        let foreign = Kv {
            value: b"\x00junk\n".to_vec(),
            ..kv
        };
        assert!(l.holder(&foreign).contains("not a bully node"));
        assert_eq!(
            l.take().unwrap_err().failure,
            crate::registry::Failure::Unreachable
        );
    }
}
