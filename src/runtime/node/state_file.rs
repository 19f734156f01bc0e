//! The terms a node used or acknowledged, on disk, so that it never reuses one after a
//! restart: written to a temporary file, fsynced, renamed over the old one and the directory
//! fsynced, before anyone hears of the term. A node that cannot write it, or finds it corrupt,
//! refuses to start rather than risk handing out a term twice.

use crate::core::ready::Persisted;
use crate::core::rules::MAX_TERM;
use crate::sync::lock;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file's format; `version` lets a later release read an older file.
#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    /// No term at or below it may be claimed or acknowledged again.
    floor: u64,
    /// `bully maintenance on`, kept until turned off.
    #[serde(default)]
    maintenance: bool,
    /// The node's id: one drawn when no `--id` was given is kept here, so a restart keeps the
    /// node's rank instead of landing anywhere in the ranking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
}

pub struct StateFile {
    path: PathBuf,
    id: u64,
    /// What is on disk: writes only ever move it forward, so two steps persisting at once
    /// cannot leave the older of their states behind.
    written: Mutex<Persisted>,
}

impl StateFile {
    /// The id kept in the state of node `name` of `cluster`, if any. Only reads: the name
    /// may still turn out to be a live node's, whose file this one must not touch.
    pub fn stored_id(dir: &Path, cluster: &str, name: &str) -> Option<u64> {
        let bytes = fs::read(file_path(dir, cluster, name)).ok()?;
        serde_json::from_slice::<OnDisk>(&bytes).ok()?.id
    }

    /// Opens (or creates) the state of node `name` of `cluster` in `dir`: reads what is there
    /// and proves the directory writable by writing it back, with `id`.
    pub fn open(
        dir: &Path,
        cluster: &str,
        name: &str,
        id: u64,
    ) -> Result<(StateFile, Persisted), String> {
        fs::create_dir_all(dir)
            .map_err(|e| format!("state directory {}: cannot create it: {e}", dir.display()))?;
        let path = file_path(dir, cluster, name);
        let persisted = match fs::read(&path) {
            Ok(bytes) => parse(&bytes).map_err(|e| {
                format!(
                    "state file {} is corrupt ({e}); refusing to start, since the terms it \
                     held could be reused. Move it aside only if no node of this cluster will \
                     ever accept an older term from this one (see README, Guarantees)",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Persisted::default(),
            Err(e) => return Err(format!("state file {}: {e}", path.display())),
        };
        let file = StateFile {
            path,
            id,
            written: Mutex::new(Persisted::default()),
        };
        file.write(&persisted)
            .map_err(|e| format!("state file {}: cannot write it: {e}", file.path.display()))?;
        *lock(&file.written) = persisted.clone();
        Ok((file, persisted))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes `p` durable; returns once it (or a later state) is on disk.
    pub fn save(&self, p: &Persisted) -> std::io::Result<()> {
        let mut written = lock(&self.written);
        // The floor only moves up (two steps may persist out of order); maintenance is the
        // last one asked for.
        let merged = Persisted {
            floor: written.floor.max(p.floor),
            maintenance: p.maintenance,
        };
        if merged == *written {
            return Ok(());
        }
        self.write(&merged)?;
        *written = merged;
        Ok(())
    }

    fn write(&self, p: &Persisted) -> std::io::Result<()> {
        let on_disk = OnDisk {
            version: 1,
            floor: p.floor,
            maintenance: p.maintenance,
            id: Some(self.id),
        };
        let body = serde_json::to_vec(&on_disk).map_err(std::io::Error::other)?;
        // Named after this process: another process writing the same file (a second node of
        // the name, refused moments later) must not rename this one's away.
        let tmp = self
            .path
            .with_extension(format!("json.{}.tmp", std::process::id()));
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn file_path(dir: &Path, cluster: &str, name: &str) -> PathBuf {
    dir.join(format!("{cluster}.{name}.json"))
}

fn parse(bytes: &[u8]) -> Result<Persisted, String> {
    let d: OnDisk = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if d.version != 1 {
        return Err(format!("unknown version {}", d.version));
    }
    // Earlier releases reserved 64 terms ahead of the largest one.
    if d.floor > MAX_TERM + 65 {
        return Err(format!("floor {} is beyond any term", d.floor));
    }
    Ok(Persisted {
        floor: d.floor,
        maintenance: d.maintenance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bully-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn terms_survive_a_reopen_and_only_move_forward() {
        let d = dir("reopen");
        let (f, p) = StateFile::open(&d, "c", "n1", 5).unwrap();
        assert_eq!(p, Persisted::default());
        f.save(&Persisted {
            floor: 7,
            maintenance: true,
        })
        .unwrap();
        // An older floor saved late does not win.
        f.save(&Persisted {
            floor: 3,
            maintenance: true,
        })
        .unwrap();
        drop(f);
        let (_, p) = StateFile::open(&d, "c", "n1", 5).unwrap();
        assert_eq!(
            p,
            Persisted {
                floor: 7,
                maintenance: true
            }
        );
        assert_eq!(StateFile::stored_id(&d, "c", "n1"), Some(5));
        assert_eq!(StateFile::stored_id(&d, "c", "n2"), None);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_an_error_that_names_it() {
        let d = dir("corrupt");
        fs::create_dir_all(&d).unwrap();
        for bad in [
            &b"{not json"[..],
            br#"{"version":2,"floor":1}"#,
            br#"{"version":1,"floor":-1}"#,
            br#"{"version":1,"floor":18446744073709551615}"#,
            br#"{"version":1}"#,
        ] {
            fs::write(d.join("c.n1.json"), bad).unwrap();
            let e = StateFile::open(&d, "c", "n1", 5).err().unwrap();
            assert!(e.contains("c.n1.json") && e.contains("corrupt"), "{e}");
        }
        fs::remove_dir_all(&d).unwrap();
    }
}
