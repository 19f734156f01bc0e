//! Counters and gauges for `GET /metrics`, in the Prometheus text exposition format (0.0.4).
//! Hand-written: a dozen series do not justify a metrics crate.

use crate::sync::lock;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Kinds of election messages, as labels.
pub const MESSAGE_KINDS: [&str; 5] = ["proxy", "response", "announce", "release", "health"];

/// How a failed coordinator was noticed, as labels.
pub const DETECTIONS: [&str; 3] = ["health_check", "watch", "lease"];

/// Upper bounds (seconds) of the election duration histogram's buckets: from a round on
/// loopback (a millisecond) to one that waited out timeouts.
pub const ELECTION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Registry calls that can fail, as labels: writing this node's record (registering and its
/// upkeep), reading the members.
pub const REGISTRY_OPERATIONS: [&str; 2] = ["register", "read"];

/// What leading runs, as labels: the hooks and the `--exec` child.
pub const LEADER_WORK: [&str; 3] = ["on-elected", "on-demoted", "exec"];

#[derive(Default)]
pub struct Metrics {
    pub elections_started: AtomicU64,
    pub elections_won: AtomicU64,
    pub coordinator_changes: AtomicU64,
    sent: [AtomicU64; 5],
    received: [AtomicU64; 5],
    failovers: [AtomicU64; 3],
    registry_failures: [AtomicU64; 2],
    work_failures: [AtomicU64; 3],
    /// The registry holds this node's record (as far as it knows).
    pub registered: AtomicBool,
    /// Microseconds from the start of this node's last election round to the moment it knew
    /// the coordinator (won, or accepted an announcement).
    last_election_micros: AtomicU64,
    /// Rounds by duration: one count per bucket of [`ELECTION_BUCKETS`] (the round falls in
    /// the first whose bound it does not pass), then the ones above the last.
    election_buckets: [AtomicU64; 13],
    election_micros_sum: AtomicU64,
    http: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// A health check is configured.
    pub checks: std::sync::atomic::AtomicBool,
    /// Its verdict: 1 healthy, 0 not.
    pub check_up: AtomicU64,
    /// Checks that failed (timed out included).
    pub check_failures: AtomicU64,
}

/// The gauges, read from the node when the page is rendered.
pub struct Gauges {
    pub is_coordinator: bool,
    pub coordinator_id: Option<u64>,
    /// The coordinator's name and id, for `bully_coordinator_info`.
    pub coordinator: Option<(String, u64)>,
    pub members: usize,
    pub term: u64,
    pub watchers: usize,
    /// Quorum mode: acknowledgements held (this node included), cluster size, lease left.
    pub quorum: Option<QuorumGauges>,
    pub maintenance: bool,
    /// Why this node does not stand for election (a word), and a sit-out's time left.
    pub abstention: Option<(&'static str, Option<u64>)>,
    /// `--vip`: each address (`ADDR/PREFIX`), its device, and whether this node holds it.
    pub vips: Vec<(String, String, bool)>,
}

pub struct QuorumGauges {
    pub acks: usize,
    pub size: usize,
    pub lease_ms_left: Option<u64>,
}

fn index(kinds: &[&str], kind: &str) -> Option<usize> {
    kinds.iter().position(|k| *k == kind)
}

impl Metrics {
    pub fn sent(&self, kind: &str, n: usize) {
        if let Some(i) = index(&MESSAGE_KINDS, kind) {
            self.sent[i].fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    pub fn received(&self, kind: &str) {
        if let Some(i) = index(&MESSAGE_KINDS, kind) {
            self.received[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn failover_detected(&self, how: &str) {
        if let Some(i) = index(&DETECTIONS, how) {
            self.failovers[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn registry_failed(&self, operation: &str) {
        if let Some(i) = index(&REGISTRY_OPERATIONS, operation) {
            self.registry_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A hook failed, timed out or could not start; or the `--exec` child could not start or
    /// exited by itself (`what` is one of [`LEADER_WORK`]).
    pub fn work_failed(&self, what: &str) {
        if let Some(i) = index(&LEADER_WORK, what) {
            self.work_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn election_finished(&self, took: Duration) {
        let micros = took.as_micros() as u64;
        self.last_election_micros.store(micros, Ordering::Relaxed);
        self.election_micros_sum
            .fetch_add(micros, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let bucket = ELECTION_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(ELECTION_BUCKETS.len());
        self.election_buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// `route` must be one of a fixed set of names, so the label set stays bounded whatever
    /// paths clients send.
    pub fn http_request(&self, route: &'static str, status: u16) {
        let mut http = lock(&self.http);
        *http.entry((route, status)).or_insert(0) += 1;
    }

    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            );
        };
        counter(
            "bully_elections_started_total",
            "Election rounds this node started.",
            load(&self.elections_started),
        );
        counter(
            "bully_elections_won_total",
            "Election rounds after which this node became coordinator.",
            load(&self.elections_won),
        );
        counter(
            "bully_coordinator_changes_total",
            "Times the coordinator this node follows changed.",
            load(&self.coordinator_changes),
        );
        if self.checks.load(Ordering::Relaxed) {
            counter(
                "bully_check_failures_total",
                "Health checks that failed or timed out.",
                load(&self.check_failures),
            );
        }
        labelled(
            &mut out,
            "bully_messages_sent_total",
            "Election messages sent to peers, by kind.",
            "kind",
            &MESSAGE_KINDS,
            &self.sent,
        );
        labelled(
            &mut out,
            "bully_messages_received_total",
            "Valid election messages received from peers, by kind.",
            "kind",
            &MESSAGE_KINDS,
            &self.received,
        );
        labelled(
            &mut out,
            "bully_failovers_detected_total",
            "Coordinator failures this node detected, by how they were detected.",
            "detected_by",
            &DETECTIONS,
            &self.failovers,
        );
        labelled(
            &mut out,
            "bully_registry_failures_total",
            "Registry calls that failed, by operation.",
            "operation",
            &REGISTRY_OPERATIONS,
            &self.registry_failures,
        );
        labelled(
            &mut out,
            "bully_hook_failures_total",
            "Hooks that failed, timed out or could not start, and --exec children that could \
             not start or exited by themselves.",
            "hook",
            &LEADER_WORK,
            &self.work_failures,
        );
        out +=
            "# HELP bully_http_requests_total HTTP requests answered, by route and status code.\n";
        out += "# TYPE bully_http_requests_total counter\n";
        for ((route, code), n) in lock(&self.http).iter() {
            let _ = writeln!(
                out,
                "bully_http_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}"
            );
        }
        self.render_histogram(&mut out);
        let _ = write!(
            out,
            "# HELP bully_build_info The running version.\n# TYPE bully_build_info gauge\n\
             bully_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        );
        // Why a node does not stand, so a cluster without a leader can be explained.
        let _ = write!(
            out,
            "# HELP bully_standing 1 while this node stands for election; else \
             bully_not_standing says why.\n# TYPE bully_standing gauge\nbully_standing {}\n",
            u8::from(g.abstention.is_none())
        );
        if let Some((why, left)) = g.abstention {
            let _ = write!(
                out,
                "# HELP bully_not_standing Why this node stands for no election now.\n\
                 # TYPE bully_not_standing gauge\nbully_not_standing{{reason=\"{why}\"}} 1\n"
            );
            if let Some(ms) = left {
                let _ = write!(
                    out,
                    "# HELP bully_sit_out_remaining_seconds Time left of a sit-out (after a \
                     step-down or an exited --exec child), ended early when nobody leads.\n\
                     # TYPE bully_sit_out_remaining_seconds gauge\n\
                     bully_sit_out_remaining_seconds {:.3}\n",
                    ms as f64 / 1e3
                );
            }
        }
        if let Some((name, id)) = &g.coordinator {
            // Ids go up to 2^64 - 1, past what a float gauge holds exactly: as a label.
            let _ = write!(
                out,
                "# HELP bully_coordinator_info The coordinator this node follows (or is).\n\
                 # TYPE bully_coordinator_info gauge\n\
                 bully_coordinator_info{{name=\"{name}\",id=\"{id}\"}} 1\n"
            );
        }
        let mut gauge = |name: &str, help: &str, value: String| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        };
        gauge(
            "bully_is_coordinator",
            "1 when this node is the coordinator.",
            u8::from(g.is_coordinator).to_string(),
        );
        gauge(
            "bully_coordinator_id",
            "Id of the coordinator this node follows; NaN when none is known.",
            g.coordinator_id
                .map_or_else(|| "NaN".to_string(), |id| id.to_string()),
        );
        gauge(
            "bully_registered",
            "1 while the registry holds this node's record; a node it does not hold stands for no election.",
            u8::from(self.registered.load(Ordering::Relaxed)).to_string(),
        );
        gauge(
            "bully_members",
            "Members in the registry at the last look.",
            g.members.to_string(),
        );
        gauge(
            "bully_watchers",
            "Followers' watch requests this node holds as coordinator.",
            g.watchers.to_string(),
        );
        gauge(
            "bully_term",
            "Election term this node is in.",
            g.term.to_string(),
        );
        gauge(
            "bully_maintenance",
            "1 while this node is in maintenance (bully maintenance on).",
            u8::from(g.maintenance).to_string(),
        );
        if self.checks.load(Ordering::Relaxed) {
            gauge(
                "bully_check_up",
                "1 while the health check passes (after its rise and fall).",
                load(&self.check_up).to_string(),
            );
        }
        if let Some(q) = &g.quorum {
            gauge(
                "bully_quorum_size",
                "Cluster size given with --quorum.",
                q.size.to_string(),
            );
            gauge(
                "bully_quorum_acks",
                "Members (this one included) whose acknowledgement of the term claimed or led holds.",
                q.acks.to_string(),
            );
            gauge(
                "bully_lease_remaining_seconds",
                "Time left on this node's lease as coordinator; 0 when it holds none.",
                format!("{:.3}", q.lease_ms_left.unwrap_or(0) as f64 / 1e3),
            );
        }
        if !g.vips.is_empty() {
            out += "# HELP bully_vip_held 1 while this node holds the virtual IP (--vip).\n";
            out += "# TYPE bully_vip_held gauge\n";
            for (address, dev, held) in &g.vips {
                let _ = writeln!(
                    out,
                    "bully_vip_held{{address=\"{address}\",dev=\"{dev}\"}} {}",
                    u8::from(*held)
                );
            }
        }
        let mut gauge = |name: &str, help: &str, value: String| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        };
        gauge(
            "bully_last_election_seconds",
            "Time from the start of this node's last election round to knowing the coordinator.",
            format!("{:.6}", load(&self.last_election_micros) as f64 / 1e6),
        );
        out
    }
}

impl Metrics {
    /// `bully_election_duration_seconds`: cumulative buckets, sum and count.
    fn render_histogram(&self, out: &mut String) {
        let name = "bully_election_duration_seconds";
        let _ = write!(
            out,
            "# HELP {name} Election rounds of this node, from their start to knowing the \
             coordinator.\n# TYPE {name} histogram\n"
        );
        let mut total = 0;
        for (i, bound) in ELECTION_BUCKETS.iter().enumerate() {
            total += self.election_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {total}");
        }
        total += self.election_buckets[ELECTION_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.election_micros_sum.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum:.6}");
        let _ = writeln!(out, "{name}_count {total}");
    }
}

fn labelled(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &[&str],
    counts: &[AtomicU64],
) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n");
    for (v, c) in values.iter().zip(counts) {
        let _ = writeln!(
            out,
            "{name}{{{label}=\"{v}\"}} {}",
            c.load(Ordering::Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_labels_and_gauges() {
        let m = Metrics::default();
        m.elections_started.fetch_add(2, Ordering::Relaxed);
        m.sent("proxy", 3);
        m.sent("bogus", 3);
        m.http_request("/proxy", 200);
        m.http_request("/proxy", 200);
        m.election_finished(Duration::from_millis(3));
        m.election_finished(Duration::from_secs(20));
        let text = m.render(&Gauges {
            is_coordinator: true,
            coordinator_id: Some(4),
            coordinator: Some(("node4".into(), u64::MAX)),
            members: 4,
            term: 7,
            watchers: 3,
            quorum: None,
            maintenance: false,
            abstention: None,
            vips: Vec::new(),
        });
        assert!(text.contains("bully_elections_started_total 2\n"), "{text}");
        assert!(text.contains("bully_messages_sent_total{kind=\"proxy\"} 3\n"));
        assert!(text.contains("bully_http_requests_total{route=\"/proxy\",code=\"200\"} 2\n"));
        assert!(
            text.contains("bully_coordinator_info{name=\"node4\",id=\"18446744073709551615\"} 1\n")
        );
        assert!(
            text.contains("bully_election_duration_seconds_bucket{le=\"0.0025\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("bully_election_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("bully_election_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("bully_election_duration_seconds_count 2\n"));
        assert!(text.contains(&format!(
            "bully_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(text.contains("bully_is_coordinator 1\n"));
        assert!(text.contains("bully_coordinator_id 4\n"));
        m.registry_failed("register");
        let text = m.render(&Gauges {
            is_coordinator: false,
            coordinator_id: None,
            coordinator: None,
            members: 0,
            term: 0,
            watchers: 0,
            quorum: None,
            maintenance: false,
            abstention: None,
            vips: Vec::new(),
        });
        assert!(text.contains("bully_registry_failures_total{operation=\"register\"} 1\n"));
        assert!(text.contains("bully_registry_failures_total{operation=\"read\"} 0\n"));
        assert!(text.contains("bully_registered 0\n"));
        assert!(text.contains("# TYPE bully_members gauge\n"));
    }
}
