//! Fallback bundles: a service's snapshot and API key hashes, signed by the control plane
//! with Ed25519, for a sidecar that starts while no control-plane replica answers. The
//! control plane seals (`wardenctl fallback export`), the sidecar opens
//! (`--fallback-snapshot`, `--fallback-key`); reading files and keys is theirs.
//!
//! The signature covers the encoded contents exactly as they travel, behind a context
//! string, so no re-encoding can change what was signed and no other Warden signature can
//! pass for a bundle's.

use prost::Message;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use warden_proto::v1 as pb;

/// How a bundle file starts: a wrong file is named as one instead of failing to decode.
pub const MAGIC: &[u8] = b"WARDEN FALLBACK BUNDLE 1\n";
/// What is signed before the contents.
const CONTEXT: &[u8] = b"warden fallback bundle v1\0";

/// An Ed25519 public key, written as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl std::str::FromStr for PublicKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut key)
            .map_err(|_| format!("'{}' is not an Ed25519 public key (64 hex digits)", s.trim()))?;
        Ok(PublicKey(key))
    }
}

impl PublicKey {
    /// The public half of a signing key.
    pub fn of(key: &Ed25519KeyPair) -> PublicKey {
        let mut out = [0u8; 32];
        out.copy_from_slice(key.public_key().as_ref());
        PublicKey(out)
    }
}

/// Why a bundle cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not a Warden fallback bundle (it does not start with \"WARDEN FALLBACK BUNDLE 1\")")]
    NotABundle,
    #[error("the bundle is damaged: {0}")]
    Damaged(String),
    #[error("the bundle is signed by key {0}, which is not one of --fallback-key")]
    UntrustedKey(PublicKey),
    #[error("the bundle's signature does not verify with key {0}: it was changed after signing")]
    BadSignature(PublicKey),
}

/// A bundle's file bytes: `contents` signed with `key`.
pub fn seal(contents: &pb::FallbackContents, key: &Ed25519KeyPair) -> Vec<u8> {
    let contents = contents.encode_to_vec();
    let signature = key.sign(&signed_message(&contents));
    let bundle = pb::FallbackBundle {
        contents,
        signature: signature.as_ref().to_vec(),
        public_key: PublicKey::of(key).0.to_vec(),
    };
    [MAGIC, &bundle.encode_to_vec()].concat()
}

/// A bundle's contents once its signature verified with one of `trusted`, with the key
/// that signed it.
pub fn open(file: &[u8], trusted: &[PublicKey]) -> Result<(pb::FallbackContents, PublicKey), BundleError> {
    let body = file.strip_prefix(MAGIC).ok_or(BundleError::NotABundle)?;
    let bundle = pb::FallbackBundle::decode(body).map_err(|e| BundleError::Damaged(e.to_string()))?;
    let signer = PublicKey(
        bundle
            .public_key
            .as_slice()
            .try_into()
            .map_err(|_| BundleError::Damaged(format!("a {}-byte public key", bundle.public_key.len())))?,
    );
    if !trusted.contains(&signer) {
        return Err(BundleError::UntrustedKey(signer));
    }
    UnparsedPublicKey::new(&ED25519, signer.0)
        .verify(&signed_message(&bundle.contents), &bundle.signature)
        .map_err(|_| BundleError::BadSignature(signer))?;
    let contents =
        pb::FallbackContents::decode(bundle.contents.as_slice()).map_err(|e| BundleError::Damaged(e.to_string()))?;
    Ok((contents, signer))
}

fn signed_message(contents: &[u8]) -> Vec<u8> {
    [CONTEXT, contents].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn contents() -> pb::FallbackContents {
        pb::FallbackContents {
            snapshot: Some(pb::Snapshot { service: "orders".into(), version: 7, ..Default::default() }),
            credentials: None,
            created_unix_ms: 1,
        }
    }

    #[test]
    fn a_bundle_opens_only_with_its_key_and_unchanged() {
        let (signer, other) = (key(), key());
        let file = seal(&contents(), &signer);
        let trusted = [PublicKey::of(&other), PublicKey::of(&signer)];
        let (opened, by) = open(&file, &trusted).unwrap();
        assert_eq!((opened, by), (contents(), PublicKey::of(&signer)));

        assert_eq!(open(&file, &trusted[..1]), Err(BundleError::UntrustedKey(PublicKey::of(&signer))));
        assert_eq!(open(b"service: orders\n", &trusted), Err(BundleError::NotABundle));

        // One changed byte anywhere in the signed contents: the signature no longer holds.
        let mut bundle = pb::FallbackBundle::decode(&file[MAGIC.len()..]).unwrap();
        let last = bundle.contents.len() - 1;
        bundle.contents[last] ^= 1;
        let tampered = [MAGIC, &bundle.encode_to_vec()].concat();
        assert_eq!(open(&tampered, &trusted), Err(BundleError::BadSignature(PublicKey::of(&signer))));

        // Another key's signature under this key's name fails too.
        bundle.contents = contents().encode_to_vec();
        bundle.signature = other.sign(&signed_message(&bundle.contents)).as_ref().to_vec();
        let forged = [MAGIC, &bundle.encode_to_vec()].concat();
        assert!(matches!(open(&forged, &trusted), Err(BundleError::BadSignature(_))));
    }

    #[test]
    fn public_keys_read_and_print_as_hex() {
        let k = PublicKey::of(&key());
        assert_eq!(k.to_string().parse::<PublicKey>(), Ok(k));
        assert!("abc".parse::<PublicKey>().unwrap_err().contains("64 hex digits"));
    }
}
