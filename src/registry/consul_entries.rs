//! Consul's health entries, read and rewritten: the worst check of an instance, the leaders
//! a new coordinator finds stale, and the transaction that shows one as a follower.

use super::Role;
use serde_json::{json, Value};

/// Worst check status of an entry, for choosing between two instances of one node name.
pub(super) fn badness(entry: &Value) -> u8 {
    let statuses = entry["Checks"].as_array().into_iter().flatten();
    statuses
        .map(|c| match c["Status"].as_str() {
            Some("passing") => 0,
            Some("warning") => 1,
            _ => 2,
        })
        .max()
        .unwrap_or(0)
}

/// The health entries of instances that are not this process's (`token`), show the tag
/// `leader`, do not fail a check (Consul's DNS and `?passing` name only those) and carry a
/// term below `term`, or none: a coordinator of a later term is never demoted, so a node
/// that has not yet heard it lost leadership cannot untag the true leader.
pub(super) fn stale_leaders<'a>(entries: &'a [Value], token: &str, term: u64) -> Vec<&'a Value> {
    entries
        .iter()
        .filter(|e| {
            let s = &e["Service"];
            let tagged = s["Tags"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("leader")));
            let older = s["Meta"]["term"]
                .as_str()
                .and_then(|t| t.parse::<u64>().ok())
                .is_none_or(|t| t < term);
            let node = e["Node"]["Node"].as_str().is_some_and(|n| !n.is_empty());
            tagged
                && older
                && node
                && badness(e) < 2
                && s["Meta"]["instance"].as_str() != Some(token)
        })
        .collect()
}

/// The catalog transaction that shows `entry`'s instance as a follower: its service as
/// Consul has it, with `follower` for `leader` and no Meta `term`, on the same node; `cas`
/// on its `ModifyIndex`, so Consul refuses it (409) when the instance changed since.
pub(super) fn demoted(entry: &Value) -> Value {
    let mut service = entry["Service"].clone();
    if let Some(s) = service.as_object_mut() {
        s.remove("CreateIndex");
        if let Some(Value::Object(meta)) = s.get_mut("Meta") {
            meta.remove("term");
        }
    }
    if let Some(Value::Array(tags)) = service.get_mut("Tags") {
        for t in tags.iter_mut().filter(|t| *t == "leader") {
            *t = json!(Role::follower().tag());
        }
    }
    json!([{"Service": {"Verb": "cas", "Node": entry["Node"]["Node"], "Service": service}}])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badness_is_the_worst_check() {
        let e = json!({"Checks": [{"Status": "passing"}, {"Status": "critical"}]});
        assert_eq!(badness(&e), 2);
        assert_eq!(badness(&json!({"Checks": [{"Status": "passing"}]})), 0);
        assert_eq!(badness(&json!({"Checks": "nonsense"})), 0);
    }

    fn entry(id: &str, tags: Value, term: Option<&str>, instance: &str, status: &str) -> Value {
        let mut meta = json!({"node_name": id, "node_id": "1", "instance": instance});
        if let Some(t) = term {
            meta["term"] = json!(t);
        }
        json!({"Node": {"Node": "agent-1", "Address": "10.0.0.1"},
               "Service": {"ID": id, "Service": "alpha", "Tags": tags, "Address": "10.0.0.2",
                           "Port": 5001, "Meta": meta, "CreateIndex": 7, "ModifyIndex": 9},
               "Checks": [{"Status": status}]})
    }

    #[test]
    fn only_passing_leaders_of_an_older_term_than_ours_are_stale() {
        let leader = json!(["leader"]);
        let entries = [
            entry("older", leader.clone(), Some("4"), "t2", "passing"),
            entry("no-term", leader.clone(), None, "t3", "passing"),
            entry("bad-term", leader.clone(), Some("x"), "t4", "warning"),
            entry("newer", leader.clone(), Some("6"), "t5", "passing"),
            entry("same", leader.clone(), Some("5"), "t6", "passing"),
            entry("mine", leader.clone(), Some("1"), "t1", "passing"),
            entry("critical", leader.clone(), Some("4"), "t7", "critical"),
            entry("follower", json!(["follower"]), Some("4"), "t8", "passing"),
            entry("untagged", Value::Null, Some("4"), "t9", "passing"),
            json!({"Node": {"Node": ""}, "Service": {"ID": "nodeless", "Tags": ["leader"]}}),
            json!("not an object"),
        ];
        let stale: Vec<&str> = stale_leaders(&entries, "t1", 5)
            .iter()
            .map(|e| e["Service"]["ID"].as_str().unwrap())
            .collect();
        assert_eq!(stale, ["older", "no-term", "bad-term"]);
    }

    #[test]
    fn a_demoted_instance_is_a_follower_on_its_own_node_if_unchanged() {
        let e = entry(
            "old",
            json!(["leader", "extra"]),
            Some("4"),
            "t2",
            "passing",
        );
        let op = &demoted(&e)[0]["Service"];
        assert_eq!(op["Verb"], "cas");
        assert_eq!(op["Node"], "agent-1");
        assert_eq!(
            op["Service"],
            json!({"ID": "old", "Service": "alpha", "Tags": ["follower", "extra"],
                   "Address": "10.0.0.2", "Port": 5001, "ModifyIndex": 9,
                   "Meta": {"node_name": "old", "node_id": "1", "instance": "t2"}})
        );
    }
}
