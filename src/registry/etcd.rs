//! etcd as the registry: each node keeps the key `bully/<cluster>/members/<name>` (its address
//! and id, as JSON) on a lease of its own, which a thread of this registry renews every third
//! of the TTL; members are read from the prefix. A node that dies (`kill -9`, a pulled cable)
//! stops renewing, and etcd deletes its key when the lease runs out, one TTL later; a node that
//! stops cleanly revokes its lease, and its key goes at once.
//!
//! Every answer is untrusted: keys whose value does not make a valid member (or names another
//! member than the key) are skipped.

use super::etcd_client::{EtcdClient, Kv};
use super::etcd_options::EtcdOptions;
use super::{check_listed_name, process_token, Registry, RegistryError};
use crate::core::member::Member;
use crate::core::rules::{valid_host, valid_name};
use crate::sync::{lock, spawn_named};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub struct EtcdRegistry {
    shared: Arc<Shared>,
}

struct Shared {
    client: EtcdClient,
    cluster: String,
    ttl: Duration,
    /// Each request's timeout, for asking a namesake whether it lives.
    timeout: Duration,
    /// In the key's value as `instance`: the key this process wrote.
    token: String,
    /// The lease this node's key lives on, and the member it was written for.
    held: Mutex<Option<(i64, Member)>>,
    /// The renewing thread found the lease gone and wrote the key again: the upkeep says so.
    rewritten: AtomicBool,
    /// Set on deregistering: nothing is renewed or written after it.
    leaving: AtomicBool,
    renewing: AtomicBool,
}

/// The prefix every member key of `cluster` starts with.
pub fn members_prefix(cluster: &str) -> String {
    format!("bully/{cluster}/members/")
}

impl EtcdRegistry {
    pub fn new(opts: &EtcdOptions, cluster: &str, timeout: Duration) -> Self {
        EtcdRegistry {
            shared: Arc::new(Shared {
                client: EtcdClient::new(opts, timeout),
                cluster: cluster.to_string(),
                ttl: opts.ttl,
                timeout,
                token: process_token(),
                held: Mutex::new(None),
                rewritten: AtomicBool::new(false),
                leaving: AtomicBool::new(false),
                renewing: AtomicBool::new(false),
            }),
        }
    }

    /// Starts the thread that renews the lease, once.
    fn renew_in_background(&self) {
        if self.shared.renewing.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = Arc::downgrade(&self.shared);
        if let Err(e) = spawn_named("etcd-member-lease", move || renew(shared)) {
            self.shared.renewing.store(false, Ordering::Release);
            log::error!("cannot start the thread that renews this node's etcd lease ({e})");
        }
    }
}

impl Shared {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", members_prefix(&self.cluster))
    }

    /// A new lease, the key on it, then the old lease revoked: the key never goes missing.
    fn write(&self, me: &Member) -> Result<(), RegistryError> {
        let mut held = lock(&self.held);
        if self.leaving.load(Ordering::Acquire) {
            return Ok(());
        }
        let lease = self.client.grant(self.ttl)?;
        let value = value(me, &self.token).to_string();
        if let Err(e) = self
            .client
            .put(&self.key(&me.name), value.as_bytes(), lease)
        {
            let _ = self.client.revoke(lease);
            return Err(e);
        }
        if let Some((old, _)) = held.replace((lease, me.clone())) {
            let _ = self.client.revoke(old);
        }
        Ok(())
    }

    /// A member from one key; `None` for anything else.
    fn member_of(&self, kv: &Kv) -> Option<Member> {
        let v: Value = serde_json::from_slice(&kv.value).ok()?;
        let name = v["name"].as_str().filter(|n| valid_name(n))?;
        if kv.key != self.key(name) {
            return None;
        }
        let host = v["host"].as_str().filter(|h| valid_host(h))?;
        let port = v["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)?;
        Some(Member {
            name: name.to_string(),
            id: v["id"].as_str()?.parse().ok()?,
            host: host.to_string(),
            port,
            witness: v["witness"].as_bool() == Some(true),
        })
    }
}

/// The key's value: the member, and the token of the process that wrote it. The id is a
/// string, as JSON numbers above 2^53 do not survive every reader.
fn value(me: &Member, token: &str) -> Value {
    json!({"name": me.name, "id": me.id.to_string(), "host": me.host, "port": me.port,
           "witness": me.witness, "instance": token})
}

/// Renews the member lease every third of its TTL until the registry is dropped or leaves;
/// a lease etcd no longer knows (it ran out while etcd was away, or etcd lost its data) is
/// replaced, and the key written again.
fn renew(shared: Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        let every = s.ttl / 3;
        if s.leaving.load(Ordering::Acquire) {
            return;
        }
        let held = lock(&s.held).clone();
        if let Some((lease, me)) = held {
            match s.client.keepalive(lease) {
                Ok(Some(_)) => {}
                Ok(None) => match s.write(&me) {
                    Ok(()) => {
                        s.rewritten.store(true, Ordering::Release);
                        log::warn!(
                            "etcd had let this node's lease run out: wrote its key again on a \
                             new lease"
                        );
                    }
                    Err(e) => log::debug!("writing this node's key again: {e}"),
                },
                // The upkeep reports an etcd that is away, once per outage.
                Err(e) => log::debug!("renewing this node's etcd lease: {e}"),
            }
        }
        drop(s);
        std::thread::sleep(every);
    }
}

impl Registry for EtcdRegistry {
    fn register(&self, me: &Member) -> Result<(), RegistryError> {
        self.shared.write(me)?;
        self.renew_in_background();
        Ok(())
    }

    /// Any key under our name written by another process at another address that answers
    /// as a node of that name. Best effort: when the keys cannot be read, the write decides.
    fn check_name(&self, me: &Member) -> Result<(), RegistryError> {
        check_listed_name(
            self.members(),
            me,
            &self.shared.cluster,
            self.shared.timeout,
            &self.describe(),
        )
    }

    /// Revokes the lease, which deletes the key only while it is still on it: a node of the
    /// same name that wrote the key since keeps it.
    fn deregister(&self, _me: &Member) -> Result<(), String> {
        let s = &self.shared;
        let mut held = lock(&s.held);
        s.leaving.store(true, Ordering::Release);
        match held.take() {
            Some((lease, _)) => s.client.revoke(lease).map(|_| ()).map_err(|e| e.message),
            None => Ok(()),
        }
    }

    fn members(&self) -> Result<Vec<Member>, String> {
        let s = &self.shared;
        let kvs = s
            .client
            .prefix(&members_prefix(&s.cluster))
            .map_err(|e| e.message)?;
        let mut members: Vec<Member> = kvs
            .iter()
            .filter_map(|kv| {
                let m = s.member_of(kv);
                if m.is_none() {
                    log::debug!(
                        "skipping an etcd key that is not a bully member: {}",
                        kv.key
                    );
                }
                m
            })
            .collect();
        members.sort_by_key(|m| m.node_ref());
        Ok(members)
    }

    /// Writes the key again when it is gone or on another lease than ours (a namesake's is
    /// refused); says when the renewing thread had to.
    fn maintain(&self, me: &Member) -> Result<bool, RegistryError> {
        let s = &self.shared;
        let mine = lock(&s.held).as_ref().map(|(l, _)| *l);
        match s.client.get(&s.key(&me.name))? {
            Some(kv) if Some(kv.lease) == mine => Ok(s.rewritten.swap(false, Ordering::AcqRel)),
            Some(kv) => match s.member_of(&kv) {
                Some(m) if m.address() != me.address() => Err(RegistryError::name_taken(format!(
                    "{} belongs to another node at {}; node names must be unique within a \
                     cluster",
                    kv.key,
                    m.address()
                ))),
                _ => self.register(me).map(|()| true),
            },
            None => self.register(me).map(|()| true),
        }
    }

    fn describe(&self) -> String {
        format!(
            "etcd {} (prefix {})",
            self.shared.client.endpoints(),
            members_prefix(&self.shared.cluster)
        )
    }

    /// The TLS files again: connections opened from now on use them, the lock's included
    /// (its client shares the configuration through the options).
    fn reload(&self) -> Result<Option<String>, String> {
        super::tls_files::reload_said(self.shared.client.tls(), "etcd")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> EtcdRegistry {
        let opts = EtcdOptions {
            endpoints: vec!["http://127.0.0.1:1".into()],
            tls: None,
            ttl: Duration::from_secs(5),
            lock: false,
            auth: None,
        };
        EtcdRegistry::new(&opts, "alpha", Duration::from_secs(1))
    }

    fn kv(key: &str, value: Value) -> Kv {
        Kv {
            key: key.into(),
            value: value.to_string().into_bytes(),
            create_revision: 1,
            lease: 1,
        }
    }

    #[test]
    fn keys_become_members_and_odd_ones_are_skipped() {
        let r = registry();
        let me = Member {
            name: "node1".into(),
            id: u64::MAX,
            host: "10.0.0.2".into(),
            port: 5001,
            witness: true,
        };
        let good = kv("bully/alpha/members/node1", value(&me, "t"));
        assert_eq!(r.shared.member_of(&good), Some(me.clone()));
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = value(&me, "t");
            f(&mut v);
            kv("bully/alpha/members/node1", v)
        };
        for bad in [
            kv("bully/alpha/members/node2", value(&me, "t")),
            kv("bully/beta/members/node1", value(&me, "t")),
            with(&|v| v["id"] = json!(7)),
            with(&|v| v["id"] = json!("-1")),
            with(&|v| v["port"] = json!(0)),
            with(&|v| v["port"] = json!(70000)),
            with(&|v| v["host"] = json!("bad host!")),
            with(&|v| v["name"] = json!("a/b")),
            Kv {
                value: b"not json".to_vec(),
                ..good.clone()
            },
        ] {
            assert_eq!(r.shared.member_of(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_etcd_that_is_away_is_unreachable() {
        let r = registry();
        let me = Member {
            name: "n".into(),
            id: 1,
            host: "127.0.0.1".into(),
            port: 1,
            witness: false,
        };
        let e = r.register(&me).unwrap_err();
        assert_eq!(
            e.failure,
            super::super::Failure::Unreachable,
            "{}",
            e.message
        );
        assert!(r.members().is_err());
        assert!(r.describe().contains("bully/alpha/members/"));
    }
}
