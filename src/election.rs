//! The Bully algorithm as a pure state machine.
//!
//! Nothing here touches the network, the registry or the clock: every method takes an event
//! (a message arrived, the members were read, a wait ran out) and returns the [`Action`]s the
//! shell must carry out. That keeps the protocol testable like a function and lets the shell
//! drop the state lock before it does any I/O.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// The highest term accepted from anyone. Terms stay exact in every JSON implementation (the
/// largest integer a double holds exactly), and a forged message can never push a node's term
/// to where the next win would overflow.
pub const MAX_TERM: u64 = (1 << 53) - 1;

/// A node's identity in an election: priority first, the name breaks ties between equal ids so
/// that any two distinct nodes are always ordered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeRef {
    pub id: u64,
    pub name: String,
}

impl NodeRef {
    pub fn new(name: impl Into<String>, id: u64) -> Self {
        NodeRef {
            id,
            name: name.into(),
        }
    }
}

impl Ord for NodeRef {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.id, &self.name).cmp(&(other.id, &other.name))
    }
}

impl PartialOrd for NodeRef {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (id {})", self.name, self.id)
    }
}

/// A cluster member as a registry lists it: identity plus where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub id: u64,
    pub host: String,
    pub port: u16,
}

impl Member {
    pub fn node_ref(&self) -> NodeRef {
        NodeRef::new(self.name.clone(), self.id)
    }

    /// `host:port`, with IPv6 literals bracketed.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Where this node stands in the current round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No election running: following a coordinator, leading, or not yet started.
    Idle,
    /// An election was asked for; waiting for the registry's member list.
    Collecting,
    /// Election messages are out to the higher members.
    Electing,
    /// A higher member answered; waiting for its announcement.
    AwaitingAnnouncement,
}

/// What the shell must do. Each action carries the round it belongs to where a later answer
/// has to be matched against it, so answers from an abandoned round are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read the members from the registry, then call [`Election::members_collected`].
    CollectMembers { round: u64 },
    /// Send an election message (`POST /proxy`) to each of `to` in parallel, then call
    /// [`Election::election_answered`] with how many answered OK (and
    /// [`Election::on_announce`] for an answer in which the coordinator names itself).
    SendElection {
        round: u64,
        to: Vec<Member>,
        term: u64,
    },
    /// Wait a bounded time, then call [`Election::announcement_timed_out`].
    AwaitAnnouncement { round: u64 },
    /// This node became coordinator: send `POST /announce` to each of `to`; on refusals call
    /// [`Election::announcement_refused`] with the highest term they named.
    Announce { to: Vec<Member>, term: u64 },
    /// Check that the coordinator is alive and still leads; on failure call
    /// [`Election::coordinator_failed`], on success [`Election::coordinator_confirmed`].
    CheckCoordinator { coordinator: NodeRef },
    /// A lower coordinator replaced `previous`: if `previous` still answers, call
    /// [`Election::previous_alive`] so it can be bullied back in.
    CheckPrevious { previous: NodeRef },
    /// This node leads: if any member ranking above it answers (a partition healed, a frozen
    /// node woke up), call [`Election::higher_alive`].
    LookForHigher,
}

/// The answer to an election message (`/proxy`) from another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyReply {
    /// We outrank the sender: it must not become coordinator.
    Ok,
    /// We outrank the sender and are the coordinator of `term`: the answer doubles as our
    /// announcement, so the sender needs no new election.
    Coordinator { term: u64 },
    /// The sender does not rank below us; it sent the message to the wrong node.
    NotLower,
}

/// The answer to an announcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnnounceReply {
    /// Accepted, or answered with an election of our own (bully-back).
    Ok,
    /// From an older term, or a second coordinator for the term we follow: refused, with our
    /// term so the announcer can elect again above it.
    Stale { term: u64 },
}

/// What a node knows and where it is in the protocol.
///
/// Terms: every win takes a term above any this node has seen, and an announcement is only
/// accepted for a term above the one followed (or a repeat of it by the same coordinator). So
/// a delayed announcement from an old round cannot overwrite a newer coordinator, and no node
/// ever follows two coordinators in one term.
#[derive(Clone, Debug)]
pub struct Election {
    me: NodeRef,
    coordinator: Option<NodeRef>,
    /// The term of the coordinator followed (or led); 0 before the first.
    term: u64,
    /// The coordinator of `term`, kept when a check finds it down: a check can fail on a node
    /// that lives (too busy to answer), and its repeated announcement for the term must still
    /// be accepted, or this node would refuse the only coordinator there is for good.
    term_leader: Option<NodeRef>,
    /// The highest term seen in any message.
    max_term: u64,
    phase: Phase,
    round: u64,
    /// Members read at the start of the round: the announcement goes to them.
    round_members: Vec<Member>,
    /// A check of the coordinator, asked for by an election message, is under way: further
    /// messages wait for it instead of asking again.
    verifying: bool,
}

/// A read-only view for `/nodeDetails`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub coordinator: Option<NodeRef>,
    pub is_coordinator: bool,
    pub election: bool,
    pub term: u64,
}

impl Election {
    pub fn new(me: NodeRef) -> Self {
        Election {
            me,
            coordinator: None,
            term: 0,
            term_leader: None,
            max_term: 0,
            phase: Phase::Idle,
            round: 0,
            round_members: Vec::new(),
            verifying: false,
        }
    }

    pub fn me(&self) -> &NodeRef {
        &self.me
    }

    pub fn coordinator(&self) -> Option<&NodeRef> {
        self.coordinator.as_ref()
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    pub fn is_coordinator(&self) -> bool {
        self.coordinator.as_ref() == Some(&self.me)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            coordinator: self.coordinator.clone(),
            is_coordinator: self.is_coordinator(),
            election: self.phase != Phase::Idle,
            term: self.term,
        }
    }

    fn saw_term(&mut self, term: u64) {
        self.max_term = self.max_term.max(term.min(MAX_TERM));
    }

    /// A term read from another node outside the protocol (a (re)started node asks the members
    /// before its first election), so that its first win takes a term no one has used yet.
    pub fn observe_term(&mut self, term: u64) {
        self.saw_term(term);
    }

    /// Already the coordinator of a term newer than `term`: an election message needs no new
    /// round, the sender just has to learn of us. Only a term above everything the sender has
    /// seen settles it: at an equal term the sender may follow another coordinator, so this
    /// node elects above it instead.
    fn leads_at(&self, term: u64) -> bool {
        self.phase == Phase::Idle && self.is_coordinator() && self.term > term
    }

    /// Start a round unless one is already running: however many triggers arrive (timers,
    /// election messages from several lower nodes), one round runs at a time.
    pub fn request_election(&mut self) -> Vec<Action> {
        if self.phase != Phase::Idle {
            return Vec::new();
        }
        self.round += 1;
        self.phase = Phase::Collecting;
        log::info!("Starting election in: {}", self.me.name);
        vec![Action::CollectMembers { round: self.round }]
    }

    /// The registry answered: message every higher member, or win at once when there is none.
    pub fn members_collected(&mut self, round: u64, members: Vec<Member>) -> Vec<Action> {
        if self.phase != Phase::Collecting || round != self.round {
            return Vec::new();
        }
        let higher: Vec<Member> = members
            .iter()
            .filter(|m| m.name != self.me.name && m.node_ref() > self.me)
            .cloned()
            .collect();
        let names: Vec<&str> = higher.iter().map(|m| m.name.as_str()).collect();
        log::info!("higher nodes: [{}]", names.join(", "));
        self.round_members = members;
        if higher.is_empty() {
            return self.become_coordinator();
        }
        self.phase = Phase::Electing;
        vec![Action::SendElection {
            round,
            to: higher,
            term: self.max_term,
        }]
    }

    /// The election messages of `round` came back; `ok` higher members answered OK.
    pub fn election_answered(&mut self, round: u64, ok: usize) -> Vec<Action> {
        if self.phase != Phase::Electing || round != self.round {
            return Vec::new();
        }
        if ok == 0 {
            log::info!("No higher node answered in: {}", self.me.name);
            return self.become_coordinator();
        }
        self.phase = Phase::AwaitingAnnouncement;
        vec![Action::AwaitAnnouncement { round }]
    }

    /// A higher node answered but never announced itself (it died meanwhile): start over.
    pub fn announcement_timed_out(&mut self, round: u64) -> Vec<Action> {
        if self.phase != Phase::AwaitingAnnouncement || round != self.round {
            return Vec::new();
        }
        log::warn!(
            "No announcement arrived in: {}; electing again",
            self.me.name
        );
        self.phase = Phase::Idle;
        self.request_election()
    }

    /// `POST /proxy`: an election message from `from`, who has seen `term`. A lower sender is
    /// told OK. Messages are coalesced: a coordinator answers with its own announcement; a
    /// follower of a higher coordinator only checks that coordinator (once, however many
    /// messages arrive); otherwise one local election runs per round.
    pub fn on_proxy(&mut self, from: &NodeRef, term: u64) -> (ProxyReply, Vec<Action>) {
        if *from >= self.me {
            return (ProxyReply::NotLower, Vec::new());
        }
        self.saw_term(term);
        if self.leads_at(term) {
            return (ProxyReply::Coordinator { term: self.term }, Vec::new());
        }
        (ProxyReply::Ok, self.lower_node_is_electing())
    }

    /// `POST /response`: the original's comparison step; a higher node takes over the election.
    /// Coalesced like `/proxy`: a coordinator that already leads starts nothing, so a flood of
    /// these cannot become a storm of elections.
    pub fn on_response(&mut self, from: &NodeRef, term: u64) -> Vec<Action> {
        self.saw_term(term);
        if self.me > *from && !self.leads_at(term) {
            self.lower_node_is_electing()
        } else {
            Vec::new()
        }
    }

    fn lower_node_is_electing(&mut self) -> Vec<Action> {
        match &self.coordinator {
            Some(c) if self.phase == Phase::Idle && *c > self.me => {
                if self.verifying {
                    return Vec::new();
                }
                self.verifying = true;
                vec![Action::CheckCoordinator {
                    coordinator: c.clone(),
                }]
            }
            _ => self.request_election(),
        }
    }

    /// `POST /announce`: accept a higher coordinator of a newer term; bully a lower one back
    /// with an election; refuse a stale one.
    pub fn on_announce(
        &mut self,
        coordinator: &NodeRef,
        term: u64,
    ) -> (AnnounceReply, Vec<Action>) {
        if term > MAX_TERM {
            log::info!(
                "Ignoring announcement of {} for term {term}, above the largest term",
                coordinator.name
            );
            return (AnnounceReply::Stale { term: self.term }, Vec::new());
        }
        self.saw_term(term);
        if *coordinator == self.me {
            return (AnnounceReply::Ok, Vec::new());
        }
        let repeat = self.term_leader.as_ref() == Some(coordinator) && term == self.term;
        if term < self.term || (term == self.term && !repeat) {
            log::info!(
                "Ignoring stale announcement of {} for term {term}; following {} in term {}",
                coordinator.name,
                self.coordinator
                    .as_ref()
                    .map_or("nobody", |c| c.name.as_str()),
                self.term
            );
            return (AnnounceReply::Stale { term: self.term }, Vec::new());
        }
        if *coordinator < self.me {
            log::info!(
                "{} announced itself but {} ranks higher: electing",
                coordinator.name,
                self.me.name
            );
            return (AnnounceReply::Ok, self.request_election());
        }
        self.phase = Phase::Idle;
        self.term = term;
        self.term_leader = Some(coordinator.clone());
        let previous = self.coordinator.replace(coordinator.clone());
        if previous.as_ref() == Some(coordinator) {
            return (AnnounceReply::Ok, Vec::new());
        }
        log::info!("Coordinator is: {} (term {term})", coordinator.name);
        match previous {
            // A lower node took over from a higher one: if the higher one is in fact alive
            // (frozen, partitioned, or the announcement is forged), it must be brought back.
            Some(p) if p > *coordinator && p != self.me => (
                AnnounceReply::Ok,
                vec![Action::CheckPrevious { previous: p }],
            ),
            _ => (AnnounceReply::Ok, Vec::new()),
        }
    }

    /// Our announcement was refused by a node that follows `term`: elect again above it.
    pub fn announcement_refused(&mut self, term: u64) -> Vec<Action> {
        let term = term.min(MAX_TERM);
        self.saw_term(term);
        if !self.is_coordinator() || term < self.term {
            return Vec::new();
        }
        log::info!(
            "{}'s announcement was refused by a node in term {term}; electing again",
            self.me.name
        );
        self.request_election()
    }

    /// A coordinator replaced by a lower one still answers: elect, so it hears of it and
    /// bullies its way back in.
    pub fn previous_alive(&mut self, previous: &NodeRef) -> Vec<Action> {
        match &self.coordinator {
            Some(c) if c < previous => {
                log::info!(
                    "{} is alive and ranks above {}: electing",
                    previous.name,
                    c.name
                );
                self.request_election()
            }
            _ => Vec::new(),
        }
    }

    /// The health schedule fired: check the coordinator, or elect when none is known.
    pub fn on_health_tick(&mut self) -> Vec<Action> {
        if self.phase != Phase::Idle {
            return Vec::new();
        }
        match &self.coordinator {
            None => self.request_election(),
            Some(c) if *c == self.me => vec![Action::LookForHigher],
            Some(c) => vec![Action::CheckCoordinator {
                coordinator: c.clone(),
            }],
        }
    }

    /// This node leads, yet a higher member answers: elect, so that member hears of it and
    /// takes over. Without this a split after a healed partition would last for good, as
    /// nothing else makes a coordinator look up.
    pub fn higher_alive(&mut self) -> Vec<Action> {
        if !self.is_coordinator() || self.phase != Phase::Idle {
            return Vec::new();
        }
        log::info!("A node above {} answers: electing", self.me.name);
        self.request_election()
    }

    /// The coordinator answered its check and still leads.
    pub fn coordinator_confirmed(&mut self, coordinator: &NodeRef) {
        if self.coordinator.as_ref() == Some(coordinator) {
            self.verifying = false;
        }
    }

    /// The coordinator did not answer its check (or no longer leads).
    pub fn coordinator_failed(&mut self, coordinator: &NodeRef) -> Vec<Action> {
        if self.coordinator.as_ref() != Some(coordinator) {
            return Vec::new();
        }
        self.verifying = false;
        log::warn!("Coordinator {} is down", coordinator.name);
        self.coordinator = None;
        self.request_election()
    }

    /// The registry lists this node again after it could not (it was unreachable, or lost the
    /// registration). A coordinator elects again, so that nodes which could not see it, and
    /// may have chosen another, learn of it; a follower's health checks already cover it.
    pub fn on_rejoined(&mut self) -> Vec<Action> {
        if self.is_coordinator() {
            self.request_election()
        } else {
            Vec::new()
        }
    }

    fn become_coordinator(&mut self) -> Vec<Action> {
        self.phase = Phase::Idle;
        self.verifying = false;
        // Saturating: terms from others are capped at MAX_TERM, so this cannot overflow in
        // practice, but no input may make it panic.
        self.max_term = self.max_term.saturating_add(1);
        self.term = self.max_term;
        self.term_leader = Some(self.me.clone());
        self.coordinator = Some(self.me.clone());
        log::info!("Coordinator is: {} (term {})", self.me.name, self.term);
        let to: Vec<Member> = std::mem::take(&mut self.round_members)
            .into_iter()
            .filter(|m| m.name != self.me.name)
            .collect();
        vec![Action::Announce {
            to,
            term: self.term,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, id: u64) -> Member {
        Member {
            name: name.into(),
            id,
            host: "127.0.0.1".into(),
            port: 5000 + id as u16,
        }
    }

    fn cluster(ids: &[u64]) -> Vec<Member> {
        ids.iter()
            .map(|&i| member(&format!("node{i}"), i))
            .collect()
    }

    fn node(id: u64) -> Election {
        Election::new(nref(id))
    }

    fn nref(id: u64) -> NodeRef {
        NodeRef::new(format!("node{id}"), id)
    }

    /// Runs `request_election` and the member collection; returns what followed.
    fn start(e: &mut Election, members: &[Member]) -> Vec<Action> {
        let acts = e.request_election();
        let round = match acts.as_slice() {
            [Action::CollectMembers { round }] => *round,
            other => panic!("expected CollectMembers, got {other:?}"),
        };
        e.members_collected(round, members.to_vec())
    }

    /// A node that won an election among `members`.
    fn leader(id: u64, members: &[Member]) -> Election {
        let mut e = node(id);
        start(&mut e, members);
        assert!(e.is_coordinator());
        e
    }

    #[test]
    fn highest_id_wins_at_once_and_announces_to_the_others() {
        let mut e = node(4);
        let acts = start(&mut e, &cluster(&[1, 2, 3, 4]));
        assert_eq!(
            acts,
            vec![Action::Announce {
                to: cluster(&[1, 2, 3]),
                term: 1
            }]
        );
        assert!(e.is_coordinator());
        assert_eq!(e.phase(), &Phase::Idle);
        assert_eq!(e.term(), 1);
    }

    #[test]
    fn lower_node_messages_only_higher_members() {
        let mut e = node(2);
        let acts = start(&mut e, &cluster(&[1, 2, 3, 4]));
        assert_eq!(
            acts,
            vec![Action::SendElection {
                round: 1,
                to: cluster(&[3, 4]),
                term: 0
            }]
        );
        assert!(e.snapshot().election);
    }

    #[test]
    fn no_answer_from_higher_nodes_makes_this_node_coordinator() {
        let mut e = node(3);
        start(&mut e, &cluster(&[1, 2, 3, 4]));
        let acts = e.election_answered(1, 0);
        assert_eq!(
            acts,
            vec![Action::Announce {
                to: cluster(&[1, 2, 4]),
                term: 1
            }]
        );
        assert!(e.is_coordinator());
    }

    #[test]
    fn a_lower_nodes_election_is_taken_over() {
        let mut low = node(1);
        let mut high = node(3);
        let members = cluster(&[1, 2, 3]);
        let acts = start(&mut low, &members);
        assert!(matches!(&acts[..], [Action::SendElection { to, .. }] if to.len() == 2));
        // node3 knows no coordinator: it answers OK and runs its own election ...
        let (reply, acts) = high.on_proxy(low.me(), 0);
        assert_eq!(reply, ProxyReply::Ok);
        assert_eq!(acts, vec![Action::CollectMembers { round: 1 }]);
        let acts = high.members_collected(1, members.clone());
        assert_eq!(
            acts,
            vec![Action::Announce {
                to: cluster(&[1, 2]),
                term: 1
            }]
        );
        // ... so node1 waits for the announcement instead of winning.
        assert_eq!(
            low.election_answered(1, 1),
            vec![Action::AwaitAnnouncement { round: 1 }]
        );
        assert_eq!(low.on_announce(high.me(), 1), (AnnounceReply::Ok, vec![]));
        assert_eq!(low.coordinator(), Some(high.me()));
        assert_eq!(low.phase(), &Phase::Idle);
        assert_eq!(low.term(), 1);
    }

    #[test]
    fn response_from_lower_node_starts_local_election_but_not_from_higher() {
        let mut e = node(2);
        assert_eq!(e.on_response(&nref(3), 0), vec![]);
        assert_eq!(
            e.on_response(&nref(1), 0),
            vec![Action::CollectMembers { round: 1 }]
        );
    }

    #[test]
    fn announcement_from_lower_node_is_bullied_back_with_a_higher_term() {
        let mut e = node(3);
        let (reply, acts) = e.on_announce(&nref(2), 5);
        assert_eq!(reply, AnnounceReply::Ok);
        assert_eq!(acts, vec![Action::CollectMembers { round: 1 }]);
        assert_eq!(e.coordinator(), None);
        let acts = e.members_collected(1, cluster(&[1, 2, 3]));
        assert!(
            matches!(&acts[..], [Action::Announce { term: 6, .. }]),
            "{acts:?}"
        );
        assert!(e.is_coordinator());
    }

    #[test]
    fn many_election_messages_in_one_round_start_one_election() {
        let mut e = node(10);
        let mut started = 0;
        for i in 1..10 {
            let (reply, acts) = e.on_proxy(&nref(i), 0);
            assert_eq!(reply, ProxyReply::Ok);
            started += acts.len();
        }
        assert_eq!(started, 1);
        // The round ends when this node wins; then it answers as coordinator, electing no more.
        e.members_collected(1, cluster(&[1, 2, 10]));
        assert!(e.is_coordinator());
        let (reply, acts) = e.on_proxy(&nref(1), 0);
        assert_eq!(reply, ProxyReply::Coordinator { term: 1 });
        assert_eq!(acts, vec![]);
    }

    #[test]
    fn a_coordinator_asked_from_a_newer_term_elects_again() {
        let mut e = leader(4, &cluster(&[1, 4]));
        let (reply, acts) = e.on_proxy(&nref(1), 9);
        assert_eq!(reply, ProxyReply::Ok);
        assert_eq!(acts, vec![Action::CollectMembers { round: 2 }]);
        let acts = e.members_collected(2, cluster(&[1, 4]));
        assert!(
            matches!(&acts[..], [Action::Announce { term: 10, .. }]),
            "{acts:?}"
        );
    }

    #[test]
    fn a_follower_checks_its_coordinator_once_instead_of_electing() {
        let mut e = node(3);
        e.on_announce(&nref(9), 4);
        let (reply, acts) = e.on_proxy(&nref(1), 4);
        assert_eq!(reply, ProxyReply::Ok);
        assert_eq!(
            acts,
            vec![Action::CheckCoordinator {
                coordinator: nref(9)
            }]
        );
        for i in [1, 2, 1] {
            assert_eq!(e.on_proxy(&nref(i), 4), (ProxyReply::Ok, vec![]));
        }
        e.coordinator_confirmed(&nref(9));
        assert_eq!(e.phase(), &Phase::Idle);
        // After the check the next message may check again; a failed check elects.
        let (_, acts) = e.on_proxy(&nref(1), 4);
        assert_eq!(
            acts,
            vec![Action::CheckCoordinator {
                coordinator: nref(9)
            }]
        );
        assert_eq!(
            e.coordinator_failed(&nref(9)),
            vec![Action::CollectMembers { round: 1 }]
        );
    }

    #[test]
    fn proxy_from_higher_or_equal_node_is_refused() {
        let mut e = node(5);
        assert_eq!(e.on_proxy(&nref(6), 0), (ProxyReply::NotLower, vec![]));
        let me = e.me().clone();
        assert_eq!(e.on_proxy(&me, 0).0, ProxyReply::NotLower);
        assert_eq!(e.phase(), &Phase::Idle);
    }

    #[test]
    fn equal_ids_are_ordered_by_name() {
        assert!(NodeRef::new("b", 7) > NodeRef::new("a", 7));
        let mut e = Election::new(NodeRef::new("b", 7));
        let members = vec![member("a", 7), member("b", 7)];
        let acts = start(&mut e, &members);
        assert!(matches!(&acts[..], [Action::Announce { .. }]));
    }

    #[test]
    fn stale_answers_from_an_abandoned_round_are_ignored() {
        let mut e = node(1);
        start(&mut e, &cluster(&[1, 2]));
        e.on_announce(&nref(2), 1);
        assert_eq!(e.election_answered(1, 0), vec![]);
        assert_eq!(e.announcement_timed_out(1), vec![]);
        assert_eq!(e.coordinator(), Some(&nref(2)));
    }

    #[test]
    fn a_delayed_announcement_from_an_old_term_cannot_overwrite_a_newer_coordinator() {
        let mut e = node(1);
        e.on_announce(&nref(4), 3);
        e.on_announce(&nref(3), 5);
        let (reply, acts) = e.on_announce(&nref(4), 3);
        assert_eq!(reply, AnnounceReply::Stale { term: 5 });
        assert_eq!(acts, vec![]);
        assert_eq!(e.coordinator(), Some(&nref(3)));
        assert_eq!(e.term(), 5);
    }

    #[test]
    fn a_second_coordinator_for_the_same_term_is_refused_but_a_repeat_is_fine() {
        let mut e = node(1);
        e.on_announce(&nref(3), 5);
        assert_eq!(e.on_announce(&nref(3), 5), (AnnounceReply::Ok, vec![]));
        assert_eq!(
            e.on_announce(&nref(4), 5).0,
            AnnounceReply::Stale { term: 5 }
        );
        assert_eq!(e.coordinator(), Some(&nref(3)));
        // Even with no coordinator (it failed), the term stays taken.
        e.coordinator_failed(&nref(3));
        assert_eq!(
            e.on_announce(&nref(4), 5).0,
            AnnounceReply::Stale { term: 5 }
        );
    }

    #[test]
    fn a_coordinator_wrongly_found_down_is_accepted_again_for_its_term() {
        let mut e = node(1);
        e.on_announce(&nref(3), 5);
        let acts = e.coordinator_failed(&nref(3));
        assert_eq!(acts, vec![Action::CollectMembers { round: 1 }]);
        e.members_collected(1, cluster(&[1, 2, 3]));
        // node3 answers the election message as coordinator of term 5: that is no second
        // coordinator for the term, so it is followed again and the round ends.
        assert_eq!(e.on_announce(&nref(3), 5), (AnnounceReply::Ok, vec![]));
        assert_eq!(e.coordinator(), Some(&nref(3)));
        assert_eq!(e.phase(), &Phase::Idle);
        assert_eq!(
            e.on_announce(&nref(2), 5).0,
            AnnounceReply::Stale { term: 5 }
        );
    }

    #[test]
    fn a_refused_announcement_makes_the_coordinator_elect_above_the_refusing_term() {
        let mut e = leader(4, &cluster(&[1, 4]));
        assert_eq!(e.term(), 1);
        assert_eq!(
            e.announcement_refused(7),
            vec![Action::CollectMembers { round: 2 }]
        );
        let acts = e.members_collected(2, cluster(&[1, 4]));
        assert!(
            matches!(&acts[..], [Action::Announce { term: 8, .. }]),
            "{acts:?}"
        );
        // A refusal from an older term than ours changes nothing.
        assert_eq!(e.announcement_refused(3), vec![]);
    }

    #[test]
    fn a_lower_coordinator_replacing_a_live_higher_one_is_checked_and_bullied_back() {
        let mut e = node(1);
        e.on_announce(&nref(4), 1);
        let (reply, acts) = e.on_announce(&nref(3), 2);
        assert_eq!(reply, AnnounceReply::Ok);
        assert_eq!(acts, vec![Action::CheckPrevious { previous: nref(4) }]);
        assert_eq!(e.coordinator(), Some(&nref(3)));
        assert_eq!(
            e.previous_alive(&nref(4)),
            vec![Action::CollectMembers { round: 1 }]
        );
        // A higher coordinator replacing a lower one needs no check.
        let mut e = node(1);
        e.on_announce(&nref(3), 1);
        assert_eq!(e.on_announce(&nref(4), 2), (AnnounceReply::Ok, vec![]));
    }

    #[test]
    fn missing_announcement_restarts_the_election() {
        let mut e = node(1);
        start(&mut e, &cluster(&[1, 2]));
        e.election_answered(1, 1);
        assert_eq!(
            e.announcement_timed_out(1),
            vec![Action::CollectMembers { round: 2 }]
        );
    }

    #[test]
    fn health_tick_checks_coordinator_or_elects() {
        let mut e = node(1);
        assert_eq!(
            e.on_health_tick(),
            vec![Action::CollectMembers { round: 1 }]
        );
        let mut e = node(1);
        let c = nref(2);
        e.on_announce(&c, 1);
        assert_eq!(
            e.on_health_tick(),
            vec![Action::CheckCoordinator {
                coordinator: c.clone()
            }]
        );
        assert_eq!(
            e.coordinator_failed(&c),
            vec![Action::CollectMembers { round: 1 }]
        );
        assert_eq!(e.coordinator(), None);
        // While the round runs, further ticks do nothing.
        assert_eq!(e.on_health_tick(), vec![]);
    }

    #[test]
    fn coordinator_does_not_check_itself_and_steps_down_for_a_higher_one() {
        let mut e = leader(3, &cluster(&[1, 3]));
        assert_eq!(e.on_health_tick(), vec![Action::LookForHigher]);
        // A higher member that answers makes the coordinator elect, so it can take over.
        assert_eq!(e.higher_alive(), vec![Action::CollectMembers { round: 2 }]);
        let acts = e.members_collected(2, cluster(&[1, 3, 4]));
        assert!(matches!(&acts[..], [Action::SendElection { to, .. }] if to.len() == 1));
        let mut e = leader(3, &cluster(&[1, 3]));
        e.on_announce(&nref(4), 2);
        assert!(!e.is_coordinator());
        assert_eq!(e.coordinator().map(|c| c.id), Some(4));
    }

    #[test]
    fn failure_of_a_node_that_is_not_the_coordinator_changes_nothing() {
        let mut e = node(1);
        e.on_announce(&nref(3), 1);
        assert_eq!(e.coordinator_failed(&nref(2)), vec![]);
        assert_eq!(e.coordinator().map(|c| c.id), Some(3));
    }

    #[test]
    fn a_flood_of_responses_to_the_coordinator_starts_no_election() {
        // Each /response used to start a round on the coordinator: a storm of elections.
        let members = cluster(&[1, 2, 4]);
        let mut e = leader(4, &members);
        for i in 0..100 {
            assert_eq!(e.on_response(&nref(1 + i % 2), 0), vec![]);
        }
        assert!(e.is_coordinator());
        assert_eq!(e.term(), 1);
        // At its own term the sender may follow another coordinator: one round, however many
        // arrive, and the win's newer term settles the rest.
        assert_eq!(
            e.on_response(&nref(1), 1),
            vec![Action::CollectMembers { round: 2 }]
        );
        assert_eq!(e.on_response(&nref(2), 1), vec![]);
        e.members_collected(2, members);
        assert_eq!(e.term(), 2);
        for i in 0..100 {
            assert_eq!(e.on_response(&nref(1 + i % 2), 1), vec![]);
        }
    }

    #[test]
    fn huge_terms_are_capped_and_a_win_never_overflows() {
        // A term of u64::MAX in an election message made the next win overflow (a panic in
        // a debug build, term 0 in a release build).
        let mut e = node(4);
        let (_, acts) = e.on_proxy(&nref(1), u64::MAX);
        assert_eq!(acts, vec![Action::CollectMembers { round: 1 }]);
        let acts = e.members_collected(1, cluster(&[1, 4]));
        assert_eq!(
            acts,
            vec![Action::Announce {
                to: cluster(&[1]),
                term: MAX_TERM + 1
            }]
        );
        // Refusals naming huge terms are capped too.
        assert_eq!(e.announcement_refused(u64::MAX), vec![]);
        // Announcements above the cap are refused and change nothing.
        let mut f = node(1);
        f.on_announce(&nref(3), 2);
        assert_eq!(
            f.on_announce(&nref(4), MAX_TERM + 1),
            (AnnounceReply::Stale { term: 2 }, vec![])
        );
        assert_eq!(f.coordinator(), Some(&nref(3)));
        assert_eq!(f.on_announce(&nref(4), MAX_TERM).0, AnnounceReply::Ok);
    }

    #[test]
    fn an_observed_term_makes_the_first_win_newer_than_the_cluster() {
        // A restarted node knows no term; without asking it would win term 1 again.
        let mut e = node(3);
        e.observe_term(7);
        e.observe_term(2);
        assert_eq!(e.term(), 0, "observing is not following");
        let acts = start(&mut e, &cluster(&[1, 3]));
        assert!(
            matches!(&acts[..], [Action::Announce { term: 8, .. }]),
            "{acts:?}"
        );
    }

    #[test]
    fn terms_grow_with_every_win() {
        let members = cluster(&[1, 2]);
        let mut e = leader(2, &members);
        for expected in 2..5 {
            e.announcement_refused(e.term());
            let round = e.snapshot();
            assert!(round.election);
            let acts = e.members_collected(expected, members.clone());
            assert!(matches!(&acts[..], [Action::Announce { term, .. }] if *term == expected));
        }
    }

    #[test]
    fn a_rejoining_coordinator_elects_again_a_follower_does_not() {
        let mut e = node(3);
        assert_eq!(e.on_rejoined(), vec![], "before any election");
        start(&mut e, &cluster(&[3]));
        assert!(e.is_coordinator());
        assert_eq!(e.on_rejoined(), vec![Action::CollectMembers { round: 2 }]);
        // Now it sees node4, which takes over as the algorithm requires.
        let acts = e.members_collected(2, cluster(&[1, 3, 4]));
        assert!(matches!(&acts[..], [Action::SendElection { to, .. }] if to.len() == 1));
        let mut f = node(1);
        f.on_announce(&nref(4), 1);
        assert_eq!(f.on_rejoined(), vec![]);
    }
}
