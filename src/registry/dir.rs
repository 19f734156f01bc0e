//! The default registry: one directory per cluster, one JSON file per member. Needs nothing
//! installed and works for every node on one host (or on a shared file system).

use super::Registry;
use crate::core::member::Member;
use crate::sync::lock;
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
    /// The last listing. Every follower reads the members at each health check, and reading
    /// N records each time cost O(N²) file reads per interval across a cluster: most of the
    /// idle CPU of a 128-node cluster. Records are only created, replaced by rename or
    /// removed, each of which changes the directory's mtime, so while it stays put the
    /// listing does too.
    cache: Mutex<Option<Listing>>,
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
    pub fn new(root: &Path, cluster: &str) -> Self {
        DirRegistry {
            dir: root.join(cluster),
            cache: Mutex::new(None),
        }
    }

    fn record(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn read_record(path: &Path) -> Option<Member> {
        let meta = fs::metadata(path).ok()?;
        if !meta.is_file() || meta.len() > MAX_RECORD {
            return None;
        }
        serde_json::from_slice(&fs::read(path).ok()?).ok()
    }
}

impl Registry for DirRegistry {
    /// Written to a temporary file and renamed, so readers never see half a record.
    fn register(&self, me: &Member) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("{}: {e}", self.dir.display());
        fs::create_dir_all(&self.dir).map_err(fail)?;
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", me.name, std::process::id()));
        let body = serde_json::to_vec(me).map_err(|e| e.to_string())?;
        fs::write(&tmp, body).map_err(fail)?;
        fs::rename(&tmp, self.record(&me.name)).map_err(fail)
    }

    fn deregister(&self, me: &Member) -> Result<(), String> {
        let path = self.record(&me.name);
        // Only remove our own record: a newer node of the same name may have replaced it.
        match Self::read_record(&path) {
            Some(m) if m == *me => fs::remove_file(&path).map_err(|e| e.to_string()),
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

    fn describe(&self) -> String {
        format!("dir {}", self.dir.display())
    }

    /// A stat of the directory while it is unchanged.
    fn cheap_reads(&self) -> bool {
        true
    }
}

impl DirRegistry {
    fn read_all(&self) -> Result<Vec<Member>, String> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", self.dir.display())),
        };
        let mut members: Vec<Member> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .filter_map(|p| Self::read_record(&p))
            .collect();
        members.sort_by_key(|m| m.node_ref());
        Ok(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let r = DirRegistry::new(&root, "c");
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
}
