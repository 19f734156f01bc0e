//! PEM files to what rustls takes: certificate chains, private keys and CA bundles. Each error
//! names the file and what was wrong with it, as the operator must fix that file.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use std::path::Path;

/// Every certificate in `path`, leaf first (as a chain is written). Empty is an error.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read certificates from {shown}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read certificates from {shown}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{shown} holds no PEM certificate"));
    }
    Ok(certs)
}

/// The first private key in `path` (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("cannot read a private key from {}: {e}", path.display()))
}

/// The CA bundle in `path` as trust anchors: every certificate must parse as one.
pub fn roots(path: &Path) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for cert in certificates(path)? {
        store
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("bully-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let missing = Path::new("/nonexistent/bully/cert.pem");
        let e = certificates(missing).unwrap_err();
        assert!(e.contains("/nonexistent/bully/cert.pem"), "{e}");
        let empty = write("empty.pem", "not a certificate\n");
        let e = certificates(&empty).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = private_key(&empty).unwrap_err();
        assert!(e.contains("private key") && e.contains("empty.pem"), "{e}");
        let bad = write(
            "bad.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let e = roots(&bad).unwrap_err();
        assert!(e.contains("bad.pem"), "{e}");
    }
}
