//! The default registry: one directory per cluster, one JSON file per member. Needs nothing
//! installed and works for every node on one host (or on a shared file system).

use super::Registry;
use crate::election::Member;
use std::fs;
use std::path::{Path, PathBuf};

/// Larger files are not member records and are skipped unread.
const MAX_RECORD: u64 = 4096;

pub struct DirRegistry {
    dir: PathBuf,
}

impl DirRegistry {
    pub fn new(root: &Path, cluster: &str) -> Self {
        DirRegistry {
            dir: root.join(cluster),
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

    fn members(&self) -> Result<Vec<Member>, String> {
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

    fn describe(&self) -> String {
        format!("dir {}", self.dir.display())
    }
}
