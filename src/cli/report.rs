//! What `bully status` reports: a row per member, whether the members agree on a
//! coordinator, and how that prints (the table, the summary line, one line per change for
//! `--watch`, JSON).

use crate::core::wire::VipDetails;
use serde::Serialize;
use std::collections::BTreeMap;

/// What `bully status` found; printed as a table or, with `--json`, as this JSON object.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Report {
    pub cluster: String,
    pub registry: String,
    /// Every reachable member names this coordinator.
    pub agreed: bool,
    /// Every reachable member (at least one) follows nobody: there is no leader, and the
    /// summary says why each member does not stand.
    pub leaderless: bool,
    /// The coordinator agreed on, when `agreed`.
    pub coordinator: Option<String>,
    /// The coordinator agreed on is itself a reachable member. When not, it has most likely
    /// just gone and the others will notice at their next health check; the exit code is
    /// still 0 (they agree), but the summary says so.
    pub coordinator_reachable: bool,
    pub members: Vec<Row>,
    /// `--prune`: the members whose records were removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<String>,
    /// What to check when the registry lists nobody: the options this report read it with.
    #[serde(skip)]
    pub hint: String,
}

/// One member: what the registry says, then what the member itself answered (the answer's
/// fields are `null` when it did not).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub id: u64,
    pub address: String,
    pub reachable: bool,
    pub coordinator: Option<String>,
    pub coordinator_id: Option<u64>,
    pub term: Option<u64>,
    pub election: Option<bool>,
    /// Its health check passes (true without one).
    pub healthy: Option<bool>,
    /// `bully maintenance on`.
    pub maintenance: Option<bool>,
    /// It would take over from a lower coordinator now (false with `--no-preempt`, during
    /// `--preempt-delay`, unhealthy, in maintenance or after a step-down).
    pub preempts: Option<bool>,
    /// Quorum mode: following, claiming, no-quorum, leading or releasing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum: Option<String>,
    /// Why it stands for no election now, if it does not (`maintenance`, `stepped-down`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abstains: Option<String>,
    /// A sit-out's time left, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sit_out_ms_left: Option<u64>,
    /// Why the member counts as unreachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `--vip`: its virtual IPs and whether it holds them now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<VipDetails>,
}

/// The coordinator every reachable member names; `None` when they differ, when one names
/// none, or when no member is reachable.
pub fn agreement(rows: &[Row]) -> Option<String> {
    let mut seen = rows
        .iter()
        .filter(|r| r.reachable)
        .map(|r| (r.coordinator.as_ref(), r.coordinator_id));
    let first = seen.next()?;
    let (Some(name), Some(_)) = first else {
        return None;
    };
    seen.all(|c| c == first).then(|| name.clone())
}

impl Report {
    /// Aligned columns, then one line that says what they add up to. The QUORUM column
    /// appears only when a member is in quorum mode.
    pub fn table(&self) -> String {
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
        let on_off = |b: bool| if b { "on" } else { "off" }.to_string();
        let dash = || "-".to_string();
        let quorum = self.members.iter().any(|r| r.quorum.is_some());
        let mut head = vec![
            "NAME",
            "ID",
            "ADDRESS",
            "COORDINATOR",
            "TERM",
            "ELECTION",
            "HEALTHY",
            "MAINTENANCE",
        ];
        if quorum {
            head.push("QUORUM");
        }
        head.push("REACHABLE");
        let mut lines: Vec<Vec<String>> = vec![head.into_iter().map(String::from).collect()];
        for r in &self.members {
            let mut line = vec![
                r.name.clone(),
                r.id.to_string(),
                r.address.clone(),
                match (&r.coordinator, r.reachable) {
                    (Some(c), _) => c.clone(),
                    (None, true) => "(none)".into(),
                    (None, false) => dash(),
                },
                r.term.map_or_else(dash, |t| t.to_string()),
                r.election.map_or_else(dash, yes_no),
                r.healthy.map_or_else(dash, yes_no),
                r.maintenance.map_or_else(dash, on_off),
            ];
            if quorum {
                line.push(r.quorum.clone().unwrap_or_else(dash));
            }
            line.push(yes_no(r.reachable));
            lines.push(line);
        }
        let widths: Vec<usize> = (0..lines[0].len())
            .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        if !self.members.is_empty() {
            for l in &lines {
                let cells: Vec<String> = l
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                out += cells.join("  ").trim_end();
                out.push('\n');
            }
        }
        out += &self.summary();
        out += &self.out_of_the_running();
        out.push('\n');
        out += &self.vip_lines();
        if !self.pruned.is_empty() {
            out += &format!(
                "pruned: removed the records of {} (not reachable)\n",
                self.pruned.join(", ")
            );
        }
        out
    }

    /// `vip ADDR: held by NODE` for each virtual IP a reachable member has, and who holds
    /// it now ("nobody", or every holder when there are several).
    fn vip_lines(&self) -> String {
        let mut holders: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in self.members.iter().filter(|r| r.reachable) {
            for v in &r.vips {
                let entry = holders.entry(v.address.as_str()).or_default();
                if v.held {
                    entry.push(r.name.as_str());
                }
            }
        }
        let mut out = String::new();
        for (address, by) in holders {
            let by = if by.is_empty() {
                "nobody".to_string()
            } else {
                by.join(", ")
            };
            out += &format!("vip {address}: held by {by}\n");
        }
        out
    }

    /// The coordinator's term: its own answer, else the highest its followers report.
    fn coordinator_term(&self) -> Option<u64> {
        let c = self.coordinator.as_ref()?;
        let own = self.members.iter().find(|r| r.reachable && r.name == *c);
        own.and_then(|r| r.term).or_else(|| {
            self.members
                .iter()
                .filter(|r| r.reachable)
                .filter_map(|r| r.term)
                .max()
        })
    }

    /// `--watch`: `COORDINATOR TERM SUMMARY`, '-' where none is agreed on.
    pub fn watch_line(&self) -> String {
        format!(
            "{} {} {}{}",
            self.coordinator.as_deref().unwrap_or("-"),
            self.coordinator_term()
                .map_or_else(|| "-".to_string(), |t| t.to_string()),
            self.summary(),
            self.out_of_the_running()
        )
    }

    /// What `--watch` compares: a new line when any of it changes.
    pub fn change_key(&self) -> String {
        self.watch_line()
    }

    /// `; unhealthy: a, b; in maintenance: c` for the reachable members that stand for
    /// nothing, so the summary says why a node is not leading; empty when there are none.
    fn out_of_the_running(&self) -> String {
        let names = |f: fn(&Row) -> bool| -> Vec<&str> {
            self.members
                .iter()
                .filter(|r| r.reachable && f(r))
                .map(|r| r.name.as_str())
                .collect()
        };
        let mut out = String::new();
        for (what, list) in [
            ("unhealthy", names(|r| r.healthy == Some(false))),
            ("in maintenance", names(|r| r.maintenance == Some(true))),
            ("sitting out", names(|r| r.sit_out_ms_left.is_some())),
        ] {
            if !list.is_empty() {
                out += &format!("; {what}: {}", list.join(", "));
            }
        }
        out
    }

    /// Why no reachable member leads: who does not stand and why, and who does.
    fn why_no_leader(&self) -> String {
        let mut by_reason: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        let mut standing = Vec::new();
        for r in self.members.iter().filter(|r| r.reachable) {
            match (&r.abstains, r.sit_out_ms_left) {
                (Some(why), Some(_)) => {
                    by_reason
                        .entry(format!(
                            "sitting out ({why}), standing again once nobody leads"
                        ))
                        .or_default()
                        .push(&r.name);
                }
                (Some(why), None) => {
                    let why = match why.as_str() {
                        "maintenance" => "in maintenance".to_string(),
                        "leaving" => "shutting down".to_string(),
                        "witness" => "witnesses".to_string(),
                        w => w.to_string(),
                    };
                    by_reason.entry(why).or_default().push(&r.name);
                }
                (None, _) => standing.push(r.name.as_str()),
            }
        }
        let mut parts: Vec<String> = by_reason
            .into_iter()
            .map(|(why, names)| format!("{} {why}", names.join(", ")))
            .collect();
        if standing.is_empty() {
            parts.push("no reachable member stands".into());
        } else {
            parts.push(format!("{} standing, electing", standing.join(", ")));
        }
        parts.join("; ")
    }

    pub fn summary(&self) -> String {
        let reachable: Vec<&Row> = self.members.iter().filter(|r| r.reachable).collect();
        let of = format!(
            "{} of {} members reachable",
            reachable.len(),
            self.members.len()
        );
        if self.members.is_empty() {
            return format!(
                "no members in cluster '{}' (registry {}); {}",
                self.cluster, self.registry, self.hint
            );
        }
        match &self.coordinator {
            Some(c) if self.coordinator_reachable => {
                return format!("agreed: coordinator {c}; {of}")
            }
            Some(c) => {
                return format!(
                    "agreed: coordinator {c}, but it is not a reachable member (gone?); {of}"
                )
            }
            None => {}
        }
        if reachable.is_empty() {
            return format!("no member reachable; {of}");
        }
        if self.leaderless {
            return format!("no leader: {}; {of}", self.why_no_leader());
        }
        let views: Vec<String> = reachable
            .iter()
            .map(|r| {
                format!(
                    "{} follows {}",
                    r.name,
                    r.coordinator.as_deref().unwrap_or("nobody")
                )
            })
            .collect();
        format!("disagreement: {}; {of}", views.join(", "))
    }
}
