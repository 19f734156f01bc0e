//! Cluster authentication. With a shared key (`--cluster-key`), every POST carries an
//! HMAC-SHA256 signature over its method, path, timestamp and body; a node refuses (401) what
//! is unsigned, wrongly signed, outside ±30 s of its clock, or a replay of a request it has
//! already taken. Reads (`GET`) stay open: they change nothing.
//!
//! The MAC and its constant-time check come from RustCrypto's `hmac` and `sha2`: hand-written
//! cryptography is where subtle bugs hide.

use crate::log_limit::PerSecond;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch at which the request was signed.
pub const TIMESTAMP_HEADER: &str = "X-Bully-Timestamp";
/// Hex HMAC-SHA256 of [`signed_text`].
pub const SIGNATURE_HEADER: &str = "X-Bully-Signature";
/// How far a timestamp may be from the receiver's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(30);
/// Shorter keys are refused: a guessable key is no key.
pub const MIN_KEY_LEN: usize = 16;
/// Signatures remembered to refuse replays inside the time window. Only correctly signed
/// requests are remembered, so only key holders can fill it; a full cache refuses (503) rather
/// than forget a signature that could then be replayed.
const REPLAY_CAPACITY: usize = 16 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// The shared secret. `Debug` never shows it, so printing a `Config` cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey(Arc<[u8]>);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(redacted)")
    }
}

impl ClusterKey {
    /// A key of at least [`MIN_KEY_LEN`] bytes; the error never contains the key.
    pub fn new(bytes: &[u8]) -> Result<ClusterKey, String> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(format!(
                "expected a key of at least {MIN_KEY_LEN} bytes, got {}",
                bytes.len()
            ));
        }
        Ok(ClusterKey(bytes.into()))
    }

    /// A key file holds the key; trailing white space (an editor's newline) is not part of it.
    pub fn from_file(path: &std::path::Path) -> Result<ClusterKey, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        ClusterKey::new(bytes.trim_ascii_end())
    }

    fn mac(&self, method: &str, path: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(signed_text(method, path, timestamp).as_bytes());
        mac.update(body);
        mac
    }

    /// The two header values for a request: timestamp and signature.
    pub fn sign(&self, method: &str, path: &str, body: &[u8]) -> (String, String) {
        self.sign_at(unique_millis(), method, path, body)
    }

    /// Signs as of `millis` since 1970 (tests forge old requests with it).
    pub fn sign_at(&self, millis: u64, method: &str, path: &str, body: &[u8]) -> (String, String) {
        let timestamp = millis.to_string();
        let tag = self
            .mac(method, path, &timestamp, body)
            .finalize()
            .into_bytes();
        (timestamp, hex(&tag))
    }
}

/// How long a node still accepts the key it replaced on SIGHUP: nodes reloaded one after the
/// other keep hearing each other meanwhile.
pub const ROTATION_GRACE: Duration = Duration::from_secs(300);

/// The key in force, shared by the signing client and the verifier and replaced on SIGHUP
/// (`--cluster-key-file`); clones share it.
#[derive(Clone, Debug)]
pub struct Keys(Arc<RwLock<KeyState>>);

#[derive(Debug)]
struct KeyState {
    current: ClusterKey,
    /// The key replaced last, and until when it is still accepted.
    previous: Option<(ClusterKey, Instant)>,
}

impl Keys {
    pub fn new(key: ClusterKey) -> Keys {
        Keys(Arc::new(RwLock::new(KeyState {
            current: key,
            previous: None,
        })))
    }

    /// The key to sign with.
    pub fn current(&self) -> ClusterKey {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .current
            .clone()
    }

    /// Puts `key` in force; `false` when it is the key already in force.
    pub fn replace(&self, key: ClusterKey) -> bool {
        let mut s = self.0.write().unwrap_or_else(|e| e.into_inner());
        if s.current == key {
            return false;
        }
        let old = std::mem::replace(&mut s.current, key);
        s.previous = Some((old, Instant::now() + ROTATION_GRACE));
        true
    }

    /// The keys a signature may be made with: the current one, then the replaced one during
    /// its grace.
    fn accepted(&self) -> Vec<ClusterKey> {
        let s = self.0.read().unwrap_or_else(|e| e.into_inner());
        let mut keys = vec![s.current.clone()];
        if let Some((k, until)) = &s.previous {
            if Instant::now() < *until {
                keys.push(k.clone());
            }
        }
        keys
    }
}

/// What the MAC covers before the body. Newlines separate the fields, which contain none
/// (tiny_http rejects them in request lines, and a timestamp is digits).
pub fn signed_text(method: &str, path: &str, timestamp: &str) -> String {
    format!("bully-v1\n{method}\n{path}\n{timestamp}\n")
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The clock in milliseconds, but strictly increasing within this process: two identical
/// requests signed in the same millisecond must still differ, or the second is a "replay".
fn unique_millis() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_millis();
    let prev = LAST
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(prev + 1)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Why a request was refused; shown in the 401 answer and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unsigned,
    Malformed,
    OutOfWindow {
        skew_ms: i64,
    },
    BadSignature,
    Replayed,
    /// The replay cache is full (only signed requests fill it): 503, not 401.
    Busy,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unsigned => write!(
                f,
                "unsigned request: {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required"
            ),
            Refusal::Malformed => write!(
                f,
                "{TIMESTAMP_HEADER} must be milliseconds since 1970 and {SIGNATURE_HEADER} 64 hex digits"
            ),
            Refusal::OutOfWindow { skew_ms } => write!(
                f,
                "timestamp is {:.1}s off this node's clock; at most {}s is accepted",
                *skew_ms as f64 / 1000.0,
                MAX_SKEW.as_secs()
            ),
            Refusal::BadSignature => f.write_str("wrong signature"),
            Refusal::Replayed => f.write_str("replayed request"),
            Refusal::Busy => f.write_str("too many signed requests to remember; retry shortly"),
        }
    }
}

/// Refused requests logged a second at most; the rest of a second are counted in one line.
const REFUSALS_PER_SECOND: u64 = 5;

/// Checks signatures and remembers the ones it accepted until they leave the time window.
pub struct Verifier {
    keys: Keys,
    seen: Mutex<HashMap<[u8; 32], u64>>,
    /// Refusals are warnings, at most [`REFUSALS_PER_SECOND`] a second.
    log: PerSecond,
}

impl Verifier {
    pub fn new(keys: Keys) -> Verifier {
        Verifier {
            keys,
            seen: Mutex::new(HashMap::new()),
            log: PerSecond::new(REFUSALS_PER_SECOND),
        }
    }

    /// Accepts a request signed with the key, inside the window and not seen before.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), Refusal> {
        self.verify_at(now_millis(), method, path, timestamp, signature, body)
    }

    fn verify_at(
        &self,
        now: u64,
        method: &str,
        path: &str,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), Refusal> {
        let (Some(ts_text), Some(sig_text)) = (timestamp, signature) else {
            return Err(Refusal::Unsigned);
        };
        let ts: u64 = ts_text
            .parse()
            .ok()
            .filter(|_| ts_text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(Refusal::Malformed)?;
        let sig: [u8; 32] = unhex(sig_text)
            .and_then(|v| v.try_into().ok())
            .ok_or(Refusal::Malformed)?;
        let skew_ms = i64::try_from(ts as i128 - now as i128).unwrap_or(i64::MAX);
        if skew_ms.unsigned_abs() > MAX_SKEW.as_millis() as u64 {
            return Err(Refusal::OutOfWindow { skew_ms });
        }
        let signed = self.keys.accepted().iter().any(|k| {
            k.mac(method, path, ts_text, body)
                .verify_slice(&sig)
                .is_ok()
        });
        if !signed {
            return Err(Refusal::BadSignature);
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains_key(&sig) {
            return Err(Refusal::Replayed);
        }
        if seen.len() >= REPLAY_CAPACITY {
            let oldest_valid = now.saturating_sub(MAX_SKEW.as_millis() as u64);
            seen.retain(|_, t| *t >= oldest_valid);
            if seen.len() >= REPLAY_CAPACITY {
                return Err(Refusal::Busy);
            }
        }
        seen.insert(sig, ts);
        Ok(())
    }

    /// Logs a refusal, at most a few lines a second however many arrive.
    pub fn log_refusal(&self, what: &str, from: &str, why: &Refusal) {
        let admit = self.log.admit();
        if admit.left_out > 0 {
            log::warn!(
                "{} more unauthenticated requests refused in the last second",
                admit.left_out
            );
        }
        if admit.show {
            log::warn!("Refused {what} from {from}: {why}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ClusterKey {
        ClusterKey::new(b"0123456789abcdef-test").unwrap()
    }

    fn signed(body: &[u8]) -> (String, String) {
        key().sign("POST", "/proxy", body)
    }

    /// Checks a POST to /proxy.
    fn proxy(v: &Verifier, ts: &str, sig: &str, body: &[u8]) -> Result<(), Refusal> {
        v.verify("POST", "/proxy", Some(ts), Some(sig), body)
    }

    #[test]
    fn a_signed_request_passes_once() {
        let v = Verifier::new(Keys::new(key()));
        let (ts, sig) = signed(b"{}");
        assert_eq!(proxy(&v, &ts, &sig, b"{}"), Ok(()));
        assert_eq!(proxy(&v, &ts, &sig, b"{}"), Err(Refusal::Replayed));
    }

    #[test]
    fn a_replaced_key_is_still_accepted_during_its_grace_and_the_new_one_signs() {
        let keys = Keys::new(key());
        let v = Verifier::new(keys.clone());
        let next = ClusterKey::new(b"the next key, rotated in").unwrap();
        assert!(!keys.replace(key()), "the same key changes nothing");
        assert!(keys.replace(next.clone()));
        assert_eq!(keys.current(), next);
        let (ts, sig) = key().sign("POST", "/proxy", b"{}");
        assert_eq!(
            proxy(&v, &ts, &sig, b"{}"),
            Ok(()),
            "the old key, in its grace"
        );
        let (ts, sig) = next.sign("POST", "/proxy", b"{}");
        assert_eq!(proxy(&v, &ts, &sig, b"{}"), Ok(()));
        let stranger = ClusterKey::new(b"a key nobody was given").unwrap();
        let (ts, sig) = stranger.sign("POST", "/proxy", b"{}");
        assert_eq!(proxy(&v, &ts, &sig, b"{}"), Err(Refusal::BadSignature));
    }

    #[test]
    fn every_signed_field_matters() {
        let v = Verifier::new(Keys::new(key()));
        let (ts, sig) = signed(b"{}");
        let bad = |m: &str, p: &str, t: &str, b: &[u8]| v.verify(m, p, Some(t), Some(&sig), b);
        assert_eq!(bad("PUT", "/proxy", &ts, b"{}"), Err(Refusal::BadSignature));
        assert_eq!(
            bad("POST", "/announce", &ts, b"{}"),
            Err(Refusal::BadSignature)
        );
        let later = (ts.parse::<u64>().unwrap() + 1).to_string();
        assert_eq!(proxy(&v, &later, &sig, b"{}"), Err(Refusal::BadSignature));
        assert_eq!(proxy(&v, &ts, &sig, b"{ }"), Err(Refusal::BadSignature));
        let other = ClusterKey::new(b"another key, also long").unwrap();
        let (ts2, sig2) = other.sign("POST", "/proxy", b"{}");
        assert_eq!(proxy(&v, &ts2, &sig2, b"{}"), Err(Refusal::BadSignature));
    }

    #[test]
    fn missing_malformed_and_old_signatures_are_refused() {
        let v = Verifier::new(Keys::new(key()));
        let (ts, sig) = signed(b"");
        assert_eq!(
            v.verify("POST", "/proxy", None, Some(&sig), b""),
            Err(Refusal::Unsigned)
        );
        assert_eq!(
            v.verify("POST", "/proxy", Some(&ts), None, b""),
            Err(Refusal::Unsigned)
        );
        for (t, s) in [
            ("+1", sig.as_str()),
            ("abc", sig.as_str()),
            (ts.as_str(), "zz"),
            (ts.as_str(), &sig[..62]),
            (ts.as_str(), "é"),
        ] {
            assert_eq!(proxy(&v, t, s, b""), Err(Refusal::Malformed), "{t} {s}");
        }
        let now: u64 = ts.parse().unwrap();
        let r = v.verify_at(now + 31_000, "POST", "/proxy", Some(&ts), Some(&sig), b"");
        assert!(matches!(r, Err(Refusal::OutOfWindow { skew_ms: -31_000 })));
        let r = v.verify_at(now - 31_000, "POST", "/proxy", Some(&ts), Some(&sig), b"");
        assert!(matches!(r, Err(Refusal::OutOfWindow { .. })));
        assert_eq!(
            v.verify_at(now + 29_000, "POST", "/proxy", Some(&ts), Some(&sig), b""),
            Ok(())
        );
    }

    #[test]
    fn timestamps_never_repeat_so_identical_requests_differ() {
        let a = signed(b"{}");
        let b = signed(b"{}");
        assert_ne!(a, b);
    }

    #[test]
    fn keys_are_never_shown_and_short_ones_are_refused() {
        let k = key();
        assert!(!format!("{k:?}").contains("0123"));
        let e = ClusterKey::new(b"short").unwrap_err();
        assert!(!e.contains("short"), "{e}");
    }
}
