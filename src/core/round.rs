//! An election round, plain Bully's part, with its announcements: what starts one (the startup
//! delay, election messages from lower nodes), the members it reads and the terms it learns,
//! the one message to the highest member above, and the answers that end it; accepting a
//! higher coordinator of a newer term, bullying a lower one back, refusing a stale one; taking
//! a new term on a win and announcing it (highest first), and sending it again to members that
//! were too busy or slow to take it. Part of [`Election`].

use super::election::{Election, Phase};
use super::event::{AnnounceAnswer, CheckAnswer, ElectionAnswer, ProbePurpose, Purpose, Timer};
use super::member::{higher, others, others_highest_first, Member, NodeRef};
use super::ready::{AnnounceReply, Effect, Note, ProxyReply, Reason, RoundEdge};
use super::rules::valid_term;
use super::terms::Newness;
use super::verdict;

/// How many of the highest members a (re)started node asks for their term.
const TERMS_ASKED: usize = 3;

impl Election {
    /// The startup delay passed: learn the cluster's term, then elect. A node that already
    /// follows a coordinator ranking above it, or leads, runs no round of its own: it would
    /// only take a term above the one everyone follows, and the coordinator would elect again
    /// above that (a demo cluster started at once ended in term 2, not 1).
    pub(super) fn on_startup(&mut self) {
        if !self.settled() {
            self.collect(Purpose::LearnTerms);
        }
    }

    /// Follows a coordinator that ranks above it, or leads: nothing to elect for at start.
    pub(super) fn settled(&self) -> bool {
        self.coordinator.as_ref().is_some_and(|c| *c >= self.me)
    }

    /// Already the coordinator of a term newer than `term`: an election message needs no new
    /// round, the sender just has to learn of us. Only a term above everything the sender has
    /// seen settles it: at an equal term the sender may follow another coordinator, so this
    /// node elects above it instead.
    pub(super) fn leads_at(&self, term: u64) -> bool {
        self.phase == Phase::Idle && self.is_coordinator() && self.terms.current() > term
    }

    /// Start a round unless one is already running: however many triggers arrive (timers,
    /// election messages from several lower nodes), one round runs at a time.
    pub(super) fn request_election(&mut self) {
        if self.phase != Phase::Idle || !self.stands() {
            return;
        }
        self.start_round();
    }

    /// A new round, from idle or in place of one that came to nothing.
    pub(super) fn start_round(&mut self) {
        let round = self.rounds.start();
        self.phase = Phase::Collecting;
        self.out.rounds.push(RoundEdge::Started { round });
        self.note(Note::ElectionStarted {
            me: self.me.name.clone(),
        });
        self.collect(Purpose::Round(round));
    }

    pub(super) fn on_members(&mut self, purpose: Purpose, members: Vec<Member>) {
        self.rounds.read(&members);
        match purpose {
            Purpose::Round(round) => self.members_collected(round, members),
            Purpose::LookForHigher => {
                if !self.is_coordinator() || self.phase != Phase::Idle {
                    return;
                }
                let nodes: Vec<NodeRef> =
                    higher(&members, &self.me).map(Member::node_ref).collect();
                if !nodes.is_empty() {
                    self.effect(Effect::Probe {
                        purpose: ProbePurpose::Higher,
                        nodes,
                    });
                }
            }
            Purpose::Refresh => {}
            Purpose::LearnTerms => {
                // Any follower knows the term: ask a few of the highest, not everybody (N
                // nodes starting together asked N² questions).
                let mut members: Vec<Member> = others(&members, &self.me).cloned().collect();
                members.sort_by_key(|m| std::cmp::Reverse(m.node_ref()));
                members.truncate(TERMS_ASKED);
                if members.is_empty() {
                    self.request_election();
                } else {
                    self.effect(Effect::AskTerms { members });
                }
            }
        }
    }

    /// The terms the others follow: read before the first election, so that a (re)started
    /// node's first win takes a term no one has used yet, and before a coordinator takes a
    /// new term. Only answers from the member asked count.
    pub(super) fn on_terms_answered(&mut self, answers: Vec<(Member, CheckAnswer)>) {
        if let Some(term) = verdict::highest_term(&answers) {
            if self.phase != Phase::LearningTerms {
                self.note(Note::TermsLearned { term });
            }
            self.terms.saw(term);
        }
        if self.phase == Phase::LearningTerms {
            return self.become_coordinator();
        }
        // The first election, unless an announcement came while the terms were asked.
        if self.settled() {
            return;
        }
        // A higher member that answers that it leads is followed, as its announcement (perhaps
        // still on its way) would have it. Electing above a live coordinator of the newest
        // term only made it take another (a demo cluster on a loaded machine ended in term 2).
        if let Some((c, term)) = verdict::leader_above(&answers, &self.me, self.terms.highest()) {
            self.on_announce(&c, term);
            if self.coordinator.is_some() {
                return;
            }
        }
        // A node that will not preempt follows the coordinator the others follow, if any,
        // instead of electing itself over it.
        if !self.preempts() && self.coordinator.is_none() {
            if let Some((c, term)) = verdict::followed(&answers, &self.me) {
                self.on_announce(&c, term);
                if self.coordinator.is_some() {
                    return;
                }
                if term <= self.terms.current() && self.settings.quorum.is_some() {
                    self.terms.follow_later(c);
                    return;
                }
            }
        }
        self.request_election();
    }

    /// The registry answered: message the highest member above (but a suspect), the others
    /// only if it does not answer; or win at once when there is none. One message where the
    /// original sent one to every higher node: in a large cluster every survivor of a crash
    /// elects at once, and N² messages took seconds.
    pub(super) fn members_collected(&mut self, round: u64, members: Vec<Member>) {
        if self.phase != Phase::Collecting || round != self.rounds.number() {
            return;
        }
        let mut above = if self.rounds.taking_over() {
            Vec::new()
        } else {
            self.rounds.candidates_above(&members, &self.me)
        };
        above.reverse();
        self.note(Note::HigherNodes {
            names: above.iter().map(|m| m.name.clone()).collect(),
        });
        self.rounds.collected(members);
        if self.awaits_handed_to(&above) {
            return self.await_announcement();
        }
        let Some(top) = above.pop() else {
            return self.won_round();
        };
        above.reverse();
        self.rounds.set_rest(above);
        self.phase = Phase::Electing;
        self.effect(Effect::SendElection {
            round,
            to: vec![top],
            term: self.terms.highest(),
        });
    }

    /// Nobody above answered. A node that already leads in plain Bully first learns the
    /// others' terms, so a successor elected while it was frozen is not given a twin.
    pub(super) fn won_round(&mut self) {
        if self.settings.quorum.is_none() && self.coordinator.as_ref() == Some(&self.me) {
            let members: Vec<Member> = others(self.rounds.members(), &self.me).cloned().collect();
            if !members.is_empty() {
                self.phase = Phase::LearningTerms;
                self.effect(Effect::AskTerms { members });
                return;
            }
        }
        self.become_coordinator();
    }

    /// The election messages of `round` came back. An answer in which the member names itself
    /// coordinator is its announcement; any OK means a higher node lives and takes over.
    pub(super) fn on_election_answered(
        &mut self,
        round: u64,
        answers: Vec<(Member, ElectionAnswer)>,
    ) {
        let mut ok = 0;
        for (member, answer) in &answers {
            if let ElectionAnswer::Ok { claim } = answer {
                ok += 1;
                let claims_itself =
                    |c: &&super::event::Claim| member.is(&NodeRef::new(&c.name, c.id));
                if let Some(c) = claim.as_ref().filter(claims_itself) {
                    self.on_announce(&member.node_ref(), c.term);
                }
            }
        }
        if self.phase != Phase::Electing || round != self.rounds.number() {
            return;
        }
        if ok == 0 && self.rounds.has_rest() {
            // The highest did not answer: ask every other member above at once.
            let to = self.rounds.take_rest();
            self.effect(Effect::SendElection {
                round,
                to,
                term: self.terms.highest(),
            });
            return;
        }
        if ok == 0 {
            self.note(Note::NoHigherAnswered {
                me: self.me.name.clone(),
            });
            return self.won_round();
        }
        self.await_announcement();
    }

    /// A higher node lives: wait for its announcement, and elect again if it does not come.
    fn await_announcement(&mut self) {
        self.yield_lock();
        self.phase = Phase::AwaitingAnnouncement;
        self.effect(Effect::StartTimer {
            timer: Timer::Announcement {
                round: self.rounds.number(),
            },
            after: self.settings.announce_wait,
        });
    }

    /// This node handed over to a higher one a moment ago, and the member list does not show
    /// it: the higher node is claiming, so this round waits for its announcement once rather
    /// than winning over it.
    fn awaits_handed_to(&mut self, above: &[Member]) -> bool {
        let Some(to) = self.rounds.awaits_handed_to(above, self.now) else {
            return false;
        };
        self.note(Note::AwaitingHandedTo {
            name: to.name.clone(),
        });
        true
    }

    /// `POST /proxy`: an election message from `from`, who has seen `term`. A lower sender is
    /// told OK. Messages are coalesced: a coordinator answers with its own announcement; a
    /// follower of a higher coordinator only checks that coordinator (once, however many
    /// messages arrive); otherwise one local election runs per round. A node that does not
    /// stand (a witness, or one shutting down) tells the sender to look elsewhere.
    pub(super) fn on_proxy(&mut self, from: &NodeRef, term: u64) -> ProxyReply {
        // A node that stands for nothing, or follows a lower coordinator it will not
        // preempt, tells the sender to look elsewhere rather than keep it waiting.
        let yields = (self.coordinator.as_ref().is_some_and(|c| *c < self.me)
            || self.terms.waits_to_follow())
            && !self.preempts();
        if *from >= self.me || !self.stands() || yields {
            return ProxyReply::NotLower;
        }
        self.rounds.heard_from(from);
        self.terms.saw(term);
        if self.leads_at(term) {
            return ProxyReply::Coordinator {
                term: self.terms.current(),
            };
        }
        self.rounds.asked_by(from, self.phase != Phase::Idle);
        self.lower_node_is_electing();
        ProxyReply::Ok
    }

    /// `POST /response`: the original's comparison step; a higher node takes over the
    /// election. Coalesced like `/proxy`: a coordinator that already leads starts nothing, so a
    /// flood of these cannot become a storm of elections.
    pub(super) fn on_response(&mut self, from: &NodeRef, term: u64) {
        self.terms.saw(term);
        if self.me > *from && !self.leads_at(term) {
            self.lower_node_is_electing();
        }
    }

    pub(super) fn lower_node_is_electing(&mut self) {
        match &self.coordinator {
            Some(c) if self.phase == Phase::Idle && *c > self.me => {
                if self.rounds.verifying() {
                    return;
                }
                self.rounds.set_verifying(true);
                let coordinator = c.clone();
                self.effect(Effect::CheckCoordinator { coordinator });
            }
            _ => self.request_election(),
        }
    }

    /// `POST /announce`: accept a higher coordinator of a newer term; bully a lower one back
    /// with an election; refuse a stale one. Quorum mode adds promises: see `claim.rs`.
    pub(super) fn on_announce(&mut self, coordinator: &NodeRef, term: u64) -> AnnounceReply {
        if !valid_term(term) {
            self.note(Note::AboveLargestTerm {
                from: coordinator.name.clone(),
                term,
            });
            return AnnounceReply::Stale {
                term: self.terms.current(),
            };
        }
        self.terms.saw(term);
        if *coordinator == self.me {
            return AnnounceReply::Ok { promise_ms: None };
        }
        self.rounds.heard_from(coordinator);
        if self.terms.newness(coordinator, term) == Newness::Stale {
            self.note(Note::StaleAnnouncement {
                from: coordinator.name.clone(),
                term,
                following: self.coordinator.as_ref().map(|c| c.name.clone()),
                our_term: self.terms.current(),
            });
            return AnnounceReply::Stale {
                term: self.terms.current(),
            };
        }
        if *coordinator < self.me && self.preempts() {
            self.note(Note::LowerAnnounced {
                from: coordinator.name.clone(),
                me: self.me.name.clone(),
            });
            self.request_election();
            return AnnounceReply::Ok { promise_ms: None };
        }
        if let Some(refusal) = self.quorum_refusal(coordinator) {
            return refusal;
        }
        self.end_round(false);
        self.lease.end_lead();
        self.standing.stop_resigning();
        self.rounds.forget_hand_over();
        self.terms.follow(coordinator, term);
        let promise_ms = self.promise_to(coordinator, term);
        let reason = if self.coordinator.as_ref() == Some(&self.me) {
            Reason::Preempted
        } else {
            self.rounds.win_reason()
        };
        let previous = self.set_coordinator(Some(coordinator.clone()), reason);
        if previous.as_ref() == Some(coordinator) {
            return AnnounceReply::Ok { promise_ms };
        }
        self.note(Note::CoordinatorIs {
            name: coordinator.name.clone(),
            term,
        });
        match previous {
            // A lower node took over from a higher one: if the higher one is in fact alive
            // (frozen, partitioned, or the announcement is forged), it must be brought back.
            Some(p) if p > *coordinator && p != self.me => self.effect(Effect::Probe {
                purpose: ProbePurpose::Previous(p.clone()),
                nodes: vec![p],
            }),
            _ => {}
        }
        AnnounceReply::Ok { promise_ms }
    }

    /// The answers to our announcement: a refusal by a node that follows a term at least ours
    /// makes this node elect again above it; in quorum mode acknowledgements count towards
    /// the lease.
    pub(super) fn on_announce_answered(
        &mut self,
        term: u64,
        seq: u64,
        answers: Vec<(Member, AnnounceAnswer)>,
    ) {
        if self.settings.quorum.is_some() {
            self.count_acks(term, seq, &answers);
        } else {
            self.note_missed(term, &answers);
        }
        let Some(refused) = verdict::highest_refusal(&answers) else {
            return;
        };
        self.terms.saw(refused);
        let claiming = self.phase == Phase::Claiming && self.lease.leads_term(term);
        // A refusal of an older announcement naming our own term: the refuser follows us.
        let follows_us = refused == self.terms.current() && term < self.terms.current();
        if !(self.is_coordinator() || claiming) || refused < self.terms.current() || follows_us {
            return;
        }
        self.note(Note::AnnouncementRefused {
            me: self.me.name.clone(),
            term: refused,
        });
        if claiming {
            self.lease.end_lead();
            self.start_round();
        } else {
            self.request_election();
        }
    }

    /// Plain mode: members that were busy or slow to answer this term's announcement get it
    /// again a little later, a few times at most.
    pub(super) fn note_missed(&mut self, term: u64, answers: &[(Member, AnnounceAnswer)]) {
        if !self.is_coordinator() || term != self.terms.current() {
            return;
        }
        if let Some(wait) = self.announcements.missed(answers) {
            self.timer(Timer::Reannounce { term }, wait);
        }
    }

    pub(super) fn reannounce(&mut self, term: u64) {
        let to = self.announcements.take_missed();
        if !self.is_coordinator() || term != self.terms.current() || to.is_empty() {
            return;
        }
        let seq = self.announcements.next_seq();
        self.effect(Effect::Announce { to, term, seq });
    }

    /// Nobody above: take a new term. In plain Bully this node leads at once; in quorum
    /// mode it claims the term and leads once a majority acknowledges it.
    pub(super) fn become_coordinator(&mut self) {
        if !self.stands() {
            return self.end_round(false);
        }
        if self.settings.quorum.is_some() {
            return self.claim();
        }
        if self.awaits_lock() {
            return;
        }
        self.end_round(true);
        self.rounds.set_verifying(false);
        self.take_term();
        let me = self.me.clone();
        let reason = self.rounds.win_reason();
        if self.set_coordinator(Some(me), reason).as_ref() == Some(&self.me) {
            self.effect(Effect::LeadingAgain {
                term: self.terms.current(),
            });
        }
        self.note(Note::CoordinatorIs {
            name: self.me.name.clone(),
            term: self.terms.current(),
        });
        let to = others_highest_first(&self.rounds.take_members(), &self.me);
        let late = self.rounds.late_askers(&to);
        let seq = self.announcements.new_term();
        self.effect(Effect::Announce {
            to,
            term: self.terms.current(),
            seq,
        });
        if !late.is_empty() {
            self.effect(Effect::AnnounceTo {
                nodes: late,
                term: self.terms.current(),
                seq,
            });
        }
    }
}
