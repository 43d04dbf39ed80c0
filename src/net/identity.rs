//! This installation's identity: an Ed25519 key pair and a self-signed certificate,
//! made on first use and kept in the home's `identity/` directory. The peer id is the
//! hash of the public key ([`PeerId::from_public_key`]), so it stays the same for as
//! long as the key file does (a lost certificate is simply made again from the key).
//!
//! The key file is written once, privately (0600), atomically (temporary file, fsync,
//! rename, directory fsync), and never rewritten; a damaged one is an error naming it,
//! never silently replaced (that would change who this installation is).

use std::path::{Path, PathBuf};

use rcgen::PublicKeyData;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::peer_id::PeerId;

const KEY_FILE: &str = "key.pem";
const CERT_FILE: &str = "cert.pem";

/// Why the identity could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file of the identity could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key file is not a usable private key.
    #[error("{}: not a usable private key ({reason}); move it away to make a new identity (a new peer id)", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Making the key pair or certificate failed.
    #[error("cannot make a key pair or certificate: {0}")]
    Generate(String),
}

/// The key pair, certificate and peer id of this installation.
pub struct Identity {
    /// Who this is.
    pub id: PeerId,
    /// The self-signed certificate presented in every handshake.
    pub cert: CertificateDer<'static>,
    key_pkcs8: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("id", &self.id).finish()
    }
}

impl Identity {
    /// Loads the identity in `dir`, making it first when there is none.
    pub fn load_or_create(dir: &Path) -> Result<Identity, IdentityError> {
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| IdentityError::Io { path, source }
        };
        if !key_path.exists() {
            create_private_dir(dir).map_err(io(dir))?;
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
                .map_err(|e| IdentityError::Generate(e.to_string()))?;
            write(&key_path, key.serialize_pem().as_bytes())?;
        }
        let pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let bad_key = |reason: String| IdentityError::BadKey {
            path: key_path.clone(),
            reason,
        };
        let key = rcgen::KeyPair::from_pem(&pem).map_err(|e| bad_key(e.to_string()))?;
        let cert = match std::fs::read(&cert_path) {
            Ok(bytes) => CertificateDer::from_pem_slice(&bytes)
                .ok()
                .filter(|c| public_key_of(c) == Some(key.subject_public_key_info())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&cert_path)(e)),
        };
        let cert = match cert {
            Some(c) => c,
            None => {
                let made = make_certificate(&key)?;
                write(&cert_path, made.pem().as_bytes())?;
                made.der().clone()
            }
        };
        let spki = public_key_of(&cert).ok_or_else(|| bad_key("no public key".into()))?;
        Ok(Identity {
            id: PeerId::from_public_key(&spki),
            cert,
            key_pkcs8: key.serialize_der(),
        })
    }

    /// A fresh in-memory identity (tests, one-off clients).
    pub fn ephemeral() -> Result<Identity, IdentityError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        let cert = make_certificate(&key)?.der().clone();
        let spki = public_key_of(&cert).ok_or_else(|| IdentityError::Generate("no key".into()))?;
        Ok(Identity {
            id: PeerId::from_public_key(&spki),
            cert,
            key_pkcs8: key.serialize_der(),
        })
    }

    /// The private key, for the TLS configuration.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_pkcs8.clone().into())
    }
}

/// The peer id a certificate presents: the hash of its public key.
pub fn peer_id_of(cert: &CertificateDer<'_>) -> Option<PeerId> {
    public_key_of(cert).map(|spki| PeerId::from_public_key(&spki))
}

/// The DER SubjectPublicKeyInfo of a certificate.
fn public_key_of(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    let parsed = rustls::server::ParsedCertificate::try_from(cert).ok()?;
    Some(parsed.subject_public_key_info().as_ref().to_vec())
}

fn make_certificate(key: &rcgen::KeyPair) -> Result<rcgen::Certificate, IdentityError> {
    let params = rcgen::CertificateParams::new(vec!["jhack".to_string()])
        .map_err(|e| IdentityError::Generate(e.to_string()))?;
    params
        .self_signed(key)
        .map_err(|e| IdentityError::Generate(e.to_string()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    super::files::write_private(path, bytes)
        .map_err(|(path, source)| IdentityError::Io { path, source })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idir = dir.path().join("identity");
        let a = Identity::load_or_create(&idir).expect("create");
        let b = Identity::load_or_create(&idir).expect("load");
        assert_eq!(a.id, b.id);
        assert_eq!(peer_id_of(&a.cert), Some(a.id));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(idir.join(KEY_FILE))
                .expect("key")
                .permissions();
            assert_eq!(mode.mode() & 0o777, 0o600);
        }
        // A lost certificate is made again from the key: same id.
        std::fs::remove_file(idir.join(CERT_FILE)).expect("rm cert");
        let c = Identity::load_or_create(&idir).expect("again");
        assert_eq!(c.id, a.id);
        // Another installation is someone else.
        let other = Identity::load_or_create(&dir.path().join("other")).expect("other");
        assert_ne!(other.id, a.id);
        let leftovers: Vec<_> = std::fs::read_dir(&idir)
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_damaged_key_is_an_error_naming_it_and_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(KEY_FILE), "not a key").expect("write");
        let e = Identity::load_or_create(dir.path()).expect_err("damaged");
        let text = e.to_string();
        assert!(
            text.contains("key.pem") && text.contains("not a usable"),
            "{text}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(KEY_FILE)).expect("kept"),
            "not a key"
        );
    }
}
