//! The control plane's fallback signing key (`--fallback-signing-key`): an Ed25519 key in
//! a PKCS#8 PEM file, made by `warden-control-plane fallback-key new` or by
//! `openssl genpkey -algorithm ed25519`. Every replica mounts the same file (a Kubernetes
//! Secret), so a bundle exported through any of them verifies with one public key.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use ring::signature::Ed25519KeyPair;
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use warden_policy::fallback::PublicKey;

/// Why a signing key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {reason}")]
    Unusable { path: String, reason: String },
}

fn unusable(path: &Path, reason: impl std::fmt::Display) -> KeyFileError {
    KeyFileError::Unusable { path: path.display().to_string(), reason: reason.to_string() }
}

/// Reads an Ed25519 private key from a PKCS#8 PEM file (v1 as OpenSSL writes it, or v2).
pub fn load(path: &Path) -> Result<Ed25519KeyPair, KeyFileError> {
    let der = PrivatePkcs8KeyDer::from_pem_file(path)
        .map_err(|e| unusable(path, format!("no PKCS#8 private key (\"BEGIN PRIVATE KEY\") in it: {e}")))?;
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
        .map_err(|e| unusable(path, format!("not an Ed25519 key: {e}")))
}

/// Makes a new key and writes it to `path` (readable by its owner only), which must not
/// exist yet; returns its public key.
pub fn generate(path: &Path) -> Result<PublicKey, KeyFileError> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| unusable(path, "no randomness from the OS"))?;
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| unusable(path, e))?;
    let body = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| unusable(path, e))?;
    file.write_all(pem.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| unusable(path, e))?;
    Ok(PublicKey::of(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_loads_and_a_second_never_overwrites_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fallback.pem");
        let public = generate(&path).unwrap();
        assert_eq!(PublicKey::of(&load(&path).unwrap()), public);
        assert!(generate(&path).is_err(), "an existing key file is never replaced");

        std::fs::write(&path, "not a key").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("fallback.pem") && e.contains("PKCS#8"), "{e}");
    }

    #[test]
    fn a_key_openssl_made_loads() {
        // `openssl genpkey -algorithm ed25519` (PKCS#8 v1, no public key inside); a test key.
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIPwXe4MwnDstrt+jUF+EKcgOlFeR1ZWZocqhvTjjC4Bv\n-----END PRIVATE KEY-----\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openssl.pem");
        std::fs::write(&path, pem).unwrap();
        // What `openssl pkey -pubout` says its public key is.
        let public = "fb0afe992e854dda35ac76aef3d40b8c768b7edbdc41747f7e8dbaa42097fbcf";
        assert_eq!(PublicKey::of(&load(&path).unwrap()).to_string(), public);
    }
}
