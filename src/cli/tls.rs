//! `--tls-cert`, `--tls-key`, `--tls-ca` (or their `BULLY_TLS_*` variables): mutual TLS, read
//! by the node, `bully status` and the control commands alike. The files are checked here, so
//! a wrong one is a usage error naming its flag; the node's TLS is installed by [`install`].

use super::flags::{Flags, UsageError};
use std::path::PathBuf;

/// The three files, all given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

const FLAGS: [&str; 3] = ["--tls-cert", "--tls-key", "--tls-ca"];

/// The files when all three flags are given, `None` when none is; else an error naming the
/// first one missing. A file that cannot be used is an error naming its flag.
pub fn files(f: &mut Flags) -> Result<Option<TlsFiles>, UsageError> {
    let given = [f.value(FLAGS[0])?, f.value(FLAGS[1])?, f.value(FLAGS[2])?];
    if given.iter().all(Option::is_none) {
        return Ok(None);
    }
    if let Some(i) = given.iter().position(Option::is_none) {
        let present = FLAGS[given.iter().position(Option::is_some).unwrap_or(0)];
        return Err(UsageError(format!(
            "{}: missing; {} needs all of --tls-cert, --tls-key and --tls-ca",
            FLAGS[i],
            f.source(present)
        )));
    }
    let [cert, key, ca] = given.map(|v| PathBuf::from(v.unwrap_or_default()));
    let files = TlsFiles { cert, key, ca };
    check(f, &files)?;
    Ok(Some(files))
}

#[cfg(feature = "tls")]
fn check(f: &Flags, files: &TlsFiles) -> Result<(), UsageError> {
    use crate::tls::{client, pem, server};
    let named =
        |flag: &'static str| move |e: String| UsageError(format!("{}: {e}", f.source(flag)));
    pem::certificates(&files.cert).map_err(named("--tls-cert"))?;
    pem::private_key(&files.key).map_err(named("--tls-key"))?;
    pem::roots(&files.ca).map_err(named("--tls-ca"))?;
    server::config(&files.cert, &files.key, &files.ca).map_err(named("--tls-key"))?;
    client::config(&files.ca, Some((&files.cert, &files.key))).map_err(named("--tls-key"))?;
    Ok(())
}

#[cfg(not(feature = "tls"))]
fn check(f: &Flags, _: &TlsFiles) -> Result<(), UsageError> {
    Err(UsageError(format!(
        "{}: this bully was built without TLS (cargo feature `tls`)",
        f.source("--tls-cert")
    )))
}

/// Makes the files this process's TLS: its server speaks HTTPS only and its peer calls,
/// beat streams and status or control requests go out over HTTPS.
#[cfg(feature = "tls")]
pub fn install(files: &TlsFiles) -> Result<(), String> {
    crate::tls::node::install(crate::tls::node::Files {
        cert: files.cert.clone(),
        key: files.key.clone(),
        ca: files.ca.clone(),
    })
    .map(|_| ())
}

#[cfg(not(feature = "tls"))]
pub fn install(_: &TlsFiles) -> Result<(), String> {
    Err("this bully was built without TLS (cargo feature `tls`)".into())
}

/// Plain HTTP from here on, even after an [`install`]: `bully status` reads several instances
/// in turn, each with its own settings.
pub fn set_aside() {
    #[cfg(feature = "tls")]
    crate::tls::node::set_aside();
}
