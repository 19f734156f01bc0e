//! The default registry: one directory per cluster, one JSON file per member. Needs nothing
//! installed and works for every node on one host (or on a shared file system).

use super::process::{Liveness, Process};
use super::{live_namesake, name_taken, process_token, Registry, RegistryError};
use crate::core::member::Member;
use crate::sync::lock;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Larger files are not member records and are skipped unread.
const MAX_RECORD: u64 = 4096;
/// A listing is reused only when read this long after the directory last changed: a change
/// within the same timestamp granule could not be told apart. Linux file systems with
/// nanosecond timestamps (ext4, xfs, btrfs, tmpfs) stamp at the kernel's coarse clock, a
/// jiffy (at most 10 ms); others (FAT, some network file systems) to the second or two.
const SETTLED_FINE: Duration = Duration::from_millis(50);
const SETTLED_COARSE: Duration = Duration::from_secs(2);
/// Read again after this long whatever the directory's timestamp says.
const MAX_AGE: Duration = Duration::from_secs(10);

pub struct DirRegistry {
    dir: PathBuf,
    cluster: String,
    /// How long a namesake gets to answer.
    timeout: Duration,
    /// This process, as its records name it (`None` without `/proc`: records carry no
    /// process, and none is judged).
    process: Option<Process>,
    token: String,
    /// The last listing. Every follower reads the members at each health check, and reading
    /// N records each time cost O(N²) file reads per interval across a cluster: most of the
    /// idle CPU of a 128-node cluster. Records are only created, replaced by rename or
    /// removed, each of which changes the directory's mtime, so while it stays put the
    /// listing does too.
    cache: Mutex<Option<Listing>>,
}

/// One member's file: the member and the process that wrote it (records of earlier versions
/// have none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    member: Member,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    process: Option<Process>,
}

struct Listing {
    mtime: SystemTime,
    read_at: SystemTime,
    members: Vec<Member>,
}

impl Listing {
    fn still_valid(&self, mtime: SystemTime) -> bool {
        // A timestamp with a fraction of a second comes from a fine-grained file system
        // (whole seconds by chance once in a billion: then merely the slow path).
        let fine = self
            .mtime
            .duration_since(SystemTime::UNIX_EPOCH)
            .is_ok_and(|d| d.subsec_nanos() != 0);
        let needed = if fine { SETTLED_FINE } else { SETTLED_COARSE };
        let settled = self
            .read_at
            .duration_since(self.mtime)
            .is_ok_and(|d| d >= needed);
        let young = self.read_at.elapsed().is_ok_and(|d| d < MAX_AGE);
        mtime == self.mtime && settled && young
    }
}

impl DirRegistry {
    pub fn new(root: &Path, cluster: &str, timeout: Duration) -> Self {
        let token = process_token();
        DirRegistry {
            dir: root.join(cluster),
            cluster: cluster.to_string(),
            timeout,
            process: Process::current(&token),
            token,
            cache: Mutex::new(None),
        }
    }

    fn record(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn read_record(path: &Path) -> Option<Record> {
        let meta = fs::metadata(path).ok()?;
        if !meta.is_file() || meta.len() > MAX_RECORD {
            return None;
        }
        serde_json::from_slice(&fs::read(path).ok()?).ok()
    }

    /// Whether `r` is this process's own record.
    fn is_mine(&self, r: &Record, me: &Member) -> bool {
        match &r.process {
            Some(p) => p.token == self.token,
            // Written by an earlier version: it is ours when it says what we would.
            None => r.member == *me,
        }
    }

    /// Whether the writer of `r` still runs, as far as can be told from here.
    fn liveness(&self, r: &Record) -> Liveness {
        match (&r.process, &self.process) {
            (Some(theirs), Some(here)) => theirs.liveness(here),
            _ => Liveness::Unknown,
        }
    }

    /// Removes the record at `path` if it still is `r` (a new node of that name may have
    /// replaced it since it was read).
    fn remove_if_still(path: &Path, r: &Record) -> Result<bool, String> {
        if Self::read_record(path).as_ref() != Some(r) {
            return Ok(false);
        }
        match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn write(&self, me: &Member) -> Result<(), RegistryError> {
        let fail = |e: std::io::Error| {
            RegistryError::refused(format!("cannot write to {}: {e}", self.dir.display()))
        };
        if let Err(e) = fs::create_dir_all(&self.dir) {
            return Err(if self.dir.exists() && !self.dir.is_dir() {
                RegistryError::refused(format!(
                    "cannot write to {}: it is not a directory",
                    self.dir.display()
                ))
            } else {
                fail(e)
            });
        }
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", me.name, std::process::id()));
        let record = Record {
            member: me.clone(),
            process: self.process.clone(),
        };
        let body =
            serde_json::to_vec(&record).map_err(|e| RegistryError::refused(e.to_string()))?;
        if let Err(e) = fs::write(&tmp, body) {
            let _ = fs::remove_file(&tmp);
            return Err(fail(e));
        }
        fs::rename(&tmp, self.record(&me.name)).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            fail(e)
        })
    }
}

impl Registry for DirRegistry {
    /// Written to a temporary file and renamed, so readers never see half a record.
    fn register(&self, me: &Member) -> Result<(), RegistryError> {
        self.write(me)
    }

    /// The record under `me`'s name belongs to a live node when its process still runs or,
    /// where that cannot be told (another host or container), when something answers at its
    /// address as a node of that name.
    fn check_name(&self, me: &Member) -> Result<(), RegistryError> {
        let path = self.record(&me.name);
        let Some(r) = Self::read_record(&path) else {
            return Ok(());
        };
        if self.is_mine(&r, me) {
            return Ok(());
        }
        match self.liveness(&r) {
            Liveness::Gone => Ok(()),
            Liveness::Alive => Err(RegistryError::name_taken(format!(
                "node name '{}' is taken: {} belongs to a live process (pid {}) at {}; choose \
                 another NAME or stop that node",
                me.name,
                path.display(),
                r.process.as_ref().map_or(0, |p| p.pid),
                r.member.address()
            ))),
            Liveness::Unknown => {
                match live_namesake(&[r.member], me, &self.cluster, self.timeout) {
                    Some(m) => Err(name_taken(me, &m, &self.describe())),
                    None => Ok(()),
                }
            }
        }
    }

    /// Only removes our own record: a newer node of the same name may have replaced it.
    fn deregister(&self, me: &Member) -> Result<(), String> {
        let path = self.record(&me.name);
        match Self::read_record(&path) {
            Some(r) if self.is_mine(&r, me) => Self::remove_if_still(&path, &r).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// The cached listing while the directory is unchanged, else every record read anew.
    fn members(&self) -> Result<Vec<Member>, String> {
        let mtime = match fs::metadata(&self.dir) {
            Ok(m) => m.modified().ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", self.dir.display())),
        };
        if let (Some(mtime), Some(c)) = (mtime, lock(&self.cache).as_ref()) {
            if c.still_valid(mtime) {
                return Ok(c.members.clone());
            }
        }
        let read_at = SystemTime::now();
        let members = self.read_all()?;
        *lock(&self.cache) = mtime.map(|mtime| Listing {
            mtime,
            read_at,
            members: members.clone(),
        });
        Ok(members)
    }

    /// Our record is still there and still ours: written again when it went missing (removed
    /// by hand, or pruned while this node was frozen) or when a node that is gone replaced
    /// it; an error when a live node of our name did.
    fn maintain(&self, me: &Member) -> Result<bool, RegistryError> {
        if let Err(e) = fs::metadata(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(RegistryError::refused(format!(
                    "cannot read {}: {e}",
                    self.dir.display()
                )));
            }
        }
        match Self::read_record(&self.record(&me.name)) {
            Some(r) if self.is_mine(&r, me) => Ok(false),
            Some(_) => {
                self.check_name(me)?;
                self.write(me).map(|()| true)
            }
            None => self.write(me).map(|()| true),
        }
    }

    fn prune(&self, m: &Member) -> Result<bool, String> {
        let path = self.record(&m.name);
        match Self::read_record(&path) {
            Some(r) if r.member == *m => Self::remove_if_still(&path, &r),
            _ => Ok(false),
        }
    }

    fn describe(&self) -> String {
        format!("dir {}", self.dir.display())
    }

    /// A stat of the directory while it is unchanged.
    fn cheap_reads(&self) -> bool {
        true
    }
}

impl DirRegistry {
    /// Every record, but those whose process is gone (on this boot, in this pid namespace):
    /// those are removed.
    fn read_all(&self) -> Result<Vec<Member>, String> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", self.dir.display())),
        };
        let mut members = Vec::new();
        for path in entries.flatten().map(|e| e.path()) {
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden || path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let Some(r) = Self::read_record(&path) else {
                continue;
            };
            if self.liveness(&r) == Liveness::Gone {
                if let Ok(true) = Self::remove_if_still(&path, &r) {
                    log::info!(
                        "Removed the record of {}: its process (pid {}) is gone",
                        r.member.name,
                        r.process.as_ref().map_or(0, |p| p.pid)
                    );
                }
                continue;
            }
            members.push(r.member);
        }
        members.sort_by_key(|m| m.node_ref());
        Ok(members)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Failure;
    use super::*;

    fn member(name: &str, port: u16) -> Member {
        Member {
            name: name.into(),
            id: port.into(),
            host: "127.0.0.1".into(),
            port,
            witness: false,
        }
    }

    fn names(r: &DirRegistry) -> Vec<(String, u16)> {
        let members = r.members().unwrap();
        members.into_iter().map(|m| (m.name, m.port)).collect()
    }

    /// Sets the cluster directory's mtime to `t`.
    fn touch_dir(r: &DirRegistry, t: SystemTime) {
        fs::File::open(&r.dir).unwrap().set_modified(t).unwrap();
    }

    #[test]
    fn every_change_shows_at_once_and_an_unchanged_directory_is_not_read_again() {
        let root = std::env::temp_dir().join(format!("bully-dir-registry-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let r = DirRegistry::new(&root, "c", Duration::from_secs(1));
        assert_eq!(names(&r), vec![]);
        // Changes in quick succession, within one timestamp granule: each read sees the last.
        r.register(&member("a", 1)).unwrap();
        assert_eq!(names(&r), vec![("a".into(), 1)]);
        r.register(&member("b", 2)).unwrap();
        assert_eq!(names(&r), vec![("a".into(), 1), ("b".into(), 2)]);
        r.deregister(&member("a", 1)).unwrap();
        assert_eq!(names(&r), vec![("b".into(), 2)]);

        // Settled (changed long ago): the listing is kept while the directory stays put, so a
        // record rewritten in place, which nodes never do, goes unseen ...
        let past = SystemTime::now() - Duration::from_secs(60);
        touch_dir(&r, past);
        assert_eq!(names(&r), vec![("b".into(), 2)]);
        fs::write(r.record("b"), serde_json::to_vec(&member("b", 3)).unwrap()).unwrap();
        touch_dir(&r, past);
        assert_eq!(names(&r), vec![("b".into(), 2)]);
        // ... until the directory changes.
        r.register(&member("c", 4)).unwrap();
        assert_eq!(names(&r), vec![("b".into(), 3), ("c".into(), 4)]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_node_only_removes_its_own_record_and_a_live_namesake_keeps_the_name() {
        let root = std::env::temp_dir().join(format!("bully-dir-owner-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let first = DirRegistry::new(&root, "c", Duration::from_secs(1));
        let second = DirRegistry::new(&root, "c", Duration::from_secs(1));
        let me = member("a", 1);
        first.register(&me).unwrap();
        assert_eq!(first.check_name(&me), Ok(()), "its own record");
        // Another process of this test's pid: alive, so the name is taken.
        let e = second.check_name(&me).unwrap_err();
        assert_eq!(e.failure, Failure::NameTaken, "{e}");
        assert!(
            e.message.contains("a.json belongs to a live process"),
            "{e}"
        );
        // Written over anyway (two started at once): the first may not remove it, and its
        // upkeep reports the conflict rather than writing it back.
        second.register(&me).unwrap();
        first.deregister(&me).unwrap();
        assert_eq!(names(&second), vec![("a".into(), 1)]);
        assert_eq!(
            first.maintain(&me).map_err(|e| e.failure),
            Err(Failure::NameTaken)
        );
        assert_eq!(second.maintain(&me), Ok(false));
        second.deregister(&me).unwrap();
        assert_eq!(names(&second), vec![]);
        assert_eq!(
            second.maintain(&me),
            Ok(true),
            "a lost record is written again"
        );
        assert!(
            second.prune(&member("a", 2)).is_ok_and(|p| !p),
            "another member"
        );
        assert_eq!(second.prune(&me), Ok(true));
        assert_eq!(names(&second), vec![]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_record_whose_process_is_gone_is_ignored_and_removed() {
        let root = std::env::temp_dir().join(format!("bully-dir-stale-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let r = DirRegistry::new(&root, "c", Duration::from_secs(1));
        r.register(&member("live", 1)).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let here = r.process.clone().unwrap();
        let stale = |name: &str, process: Process| Record {
            member: member(name, 2),
            process: Some(process),
        };
        let write = |rec: &Record| {
            let path = r.record(&rec.member.name);
            fs::write(path, serde_json::to_vec(rec).unwrap()).unwrap();
        };
        write(&stale(
            "dead",
            Process {
                pid,
                ..here.clone()
            },
        ));
        let other_host = Process {
            pid,
            boot_id: "another host".into(),
            ..here.clone()
        };
        write(&stale("elsewhere", other_host));
        assert_eq!(
            names(&r),
            vec![("live".into(), 1), ("elsewhere".into(), 2)],
            "the dead one is ignored, the one that cannot be judged kept"
        );
        assert!(!r.record("dead").exists(), "and removed");
        // A stale record does not hold the name.
        assert_eq!(r.check_name(&member("dead", 2)), Ok(()));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_unwritable_directory_is_refused_with_its_path_and_cause() {
        let root = std::env::temp_dir().join(format!("bully-dir-file-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::write(&root, "not a directory").unwrap();
        let r = DirRegistry::new(&root, "c", Duration::from_secs(1));
        let e = r.register(&member("a", 1)).unwrap_err();
        assert_eq!(e.failure, Failure::Refused);
        assert!(
            e.message
                .starts_with(&format!("cannot write to {}", r.dir.display())),
            "{e}"
        );
        assert!(e.message.contains("ot a directory"), "{e}");
        fs::remove_file(&root).unwrap();
    }
}
