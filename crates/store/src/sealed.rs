//! Secrets sealed at rest: the values of secret fields (`cic_model::SECRET_FIELDS`, the
//! TCP-MD5 keys) are stored as `sealed:v1:KEYID:BASE64(nonce ‖ ciphertext ‖ tag)`,
//! XChaCha20-Poly1305 under a 256-bit key of the operator's (`--secrets-key-file`), the
//! field's name bound as associated data. A dump of the database holds no plaintext key;
//! a value sealed under a key the server was not given is an error naming its key id.
//!
//! Reading takes any of the keys given (the current one first); writing seals with the
//! current one, so `cic server rotate-secrets-key` is: read with the old, write with the
//! new.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::Value;

const PREFIX: &str = "sealed:v1:";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("secrets key file {0}: {1}")]
    File(String, String),
    #[error(
        "a secret in the database is sealed with key {0}, which this server was not given (--secrets-key-file)"
    )]
    UnknownKey(String),
    #[error(
        "a sealed secret does not open with key {0}: the database or the key file is not the one it was sealed with"
    )]
    Corrupt(String),
    #[error(
        "a secret in the database is not sealed and this server has no key to read sealed ones"
    )]
    NoKey,
}

struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The keys of a server: the one it seals with, and older ones it can still open.
pub struct Sealer {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        write!(f, "Sealer({ids:?})")
    }
}

/// A key's id: the first 8 hex digits of SHA-256 of the key, so that a wrong key file is
/// named, never the key.
fn key_id(key: &[u8; 32]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(key)[..4])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Sealer {
    pub fn new(key: [u8; 32]) -> Sealer {
        Sealer {
            keys: vec![Key {
                id: key_id(&key),
                cipher: XChaCha20Poly1305::new(&key.into()),
            }],
        }
    }

    /// Also opens what `key` sealed (the key being replaced).
    pub fn and_old(mut self, key: [u8; 32]) -> Sealer {
        self.keys.push(Key {
            id: key_id(&key),
            cipher: XChaCha20Poly1305::new(&key.into()),
        });
        self
    }

    pub fn key_id(&self) -> &str {
        &self.keys[0].id
    }

    /// The key in `path`: 64 hex digits (whitespace around them ignored). The file must
    /// not be readable by others.
    pub fn read_key(path: &Path) -> Result<[u8; 32], SealError> {
        use std::os::unix::fs::PermissionsExt;
        let name = path.display().to_string();
        let meta =
            std::fs::metadata(path).map_err(|e| SealError::File(name.clone(), e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(SealError::File(
                name,
                format!(
                    "is readable by others (mode {:o}); chmod 600 it",
                    meta.permissions().mode() & 0o777
                ),
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| SealError::File(name.clone(), e.to_string()))?;
        let t = text.trim();
        let bad = || {
            SealError::File(
                name.clone(),
                "must hold 64 hex digits (32 bytes; `openssl rand -hex 32`)".into(),
            )
        };
        if t.len() != 64 {
            return Err(bad());
        }
        let mut key = [0u8; 32];
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(t.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
        }
        Ok(key)
    }

    /// Writes a new random key to `path` (mode 0600); refuses to replace a file.
    pub fn create_key_file(path: &Path) -> Result<[u8; 32], SealError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let key: [u8; 32] = rand_key();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| SealError::File(path.display().to_string(), e.to_string()))?;
        writeln!(f, "{}", hex(&key))
            .map_err(|e| SealError::File(path.display().to_string(), e.to_string()))?;
        Ok(key)
    }

    fn seal_str(&self, field: &str, plain: &str) -> String {
        let k = &self.keys[0];
        let nonce: [u8; 24] = rand_nonce();
        let ct = k
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: field.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut raw = nonce.to_vec();
        raw.extend_from_slice(&ct);
        format!("{PREFIX}{}:{}", k.id, B64.encode(raw))
    }

    fn open_str(&self, field: &str, sealed: &str) -> Result<String, SealError> {
        let rest = &sealed[PREFIX.len()..];
        let (id, b64) = rest
            .split_once(':')
            .ok_or_else(|| SealError::Corrupt("?".into()))?;
        let k = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_string()))?;
        let raw = B64
            .decode(b64)
            .map_err(|_| SealError::Corrupt(id.to_string()))?;
        if raw.len() < 24 {
            return Err(SealError::Corrupt(id.to_string()));
        }
        let (nonce, ct) = raw.split_at(24);
        let nonce: [u8; 24] = nonce
            .try_into()
            .map_err(|_| SealError::Corrupt(id.to_string()))?;
        let plain = k
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: field.as_bytes(),
                },
            )
            .map_err(|_| SealError::Corrupt(id.to_string()))?;
        String::from_utf8(plain).map_err(|_| SealError::Corrupt(id.to_string()))
    }
}

fn rand_key() -> [u8; 32] {
    let mut b = [0u8; 32];
    fill(&mut b);
    b
}

fn rand_nonce() -> [u8; 24] {
    let mut b = [0u8; 24];
    fill(&mut b);
    b
}

fn fill(b: &mut [u8]) {
    use chacha20poly1305::aead::rand_core::RngCore;
    chacha20poly1305::aead::OsRng.fill_bytes(b);
}

/// What a store seals with: nothing (values are stored as given, and a sealed one is an
/// error) or a [`Sealer`].
#[derive(Clone, Default, Debug)]
pub struct Sealing(pub Option<Arc<Sealer>>);

impl Sealing {
    /// Seals every secret field's string in `v` (not sealed yet).
    pub fn seal(&self, v: &mut Value) {
        let Some(s) = &self.0 else { return };
        walk(v, &mut |field, x| {
            if let Value::String(t) = x
                && !t.starts_with(PREFIX)
            {
                *t = s.seal_str(field, t);
            }
            Ok(())
        })
        .unwrap_or(());
    }

    /// Opens every sealed value in `v`.
    pub fn open(&self, v: &mut Value) -> Result<(), SealError> {
        walk(v, &mut |field, x| {
            if let Value::String(t) = x
                && t.starts_with(PREFIX)
            {
                let s = self.0.as_ref().ok_or(SealError::NoKey)?;
                *t = s.open_str(field, t)?;
            }
            Ok(())
        })
    }

    /// Whether `v` holds a secret in clear, or sealed under a key other than the current
    /// one (what [`crate::Store::reseal`] rewrites).
    pub fn needs_reseal(&self, v: &Value) -> bool {
        let Some(s) = &self.0 else { return false };
        let current = format!("{PREFIX}{}:", s.key_id());
        let mut found = false;
        let mut v = v.clone();
        let _ = walk(&mut v, &mut |_, x| {
            if let Value::String(t) = x
                && !t.starts_with(&current)
            {
                found = true;
            }
            Ok(())
        });
        found
    }

    /// `doc` as stored: JSON, its secrets sealed.
    pub fn encode<T: serde::Serialize>(&self, doc: &T) -> serde_json::Result<String> {
        if self.0.is_none() {
            return serde_json::to_string(doc);
        }
        let mut v = serde_json::to_value(doc)?;
        self.seal(&mut v);
        serde_json::to_string(&v)
    }

    /// A stored body as `T`, its secrets opened. Bodies with nothing sealed are parsed
    /// directly (most are).
    pub fn decode<T: serde::de::DeserializeOwned>(&self, body: &str) -> Result<T, String> {
        if !body.contains(PREFIX) {
            return serde_json::from_str(body).map_err(|e| e.to_string());
        }
        let mut v: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        self.open(&mut v).map_err(|e| e.to_string())?;
        serde_json::from_value(v).map_err(|e| e.to_string())
    }
}

fn walk(
    v: &mut Value,
    f: &mut impl FnMut(&str, &mut Value) -> Result<(), SealError>,
) -> Result<(), SealError> {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if cic_model::SECRET_FIELDS.contains(&k.as_str()) {
                    f(k, x)?;
                } else {
                    walk(x, f)?;
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                walk(x, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_sealed_anywhere_in_a_document_and_open_again() {
        let s = Sealing(Some(Arc::new(Sealer::new([7; 32]))));
        let doc = json!({"name": "pc", "ipv4Peering": {"peerBgpMd5Key": "hunter2", "peerIp": "10.0.0.1"},
                         "response": [{"peerBgpMd5Key": "other"}], "md5": null});
        let body = s.encode(&doc).expect("encode");
        assert!(
            !body.contains("hunter2") && !body.contains("other"),
            "{body}"
        );
        assert!(body.contains("10.0.0.1"), "only secrets are sealed: {body}");
        let back: Value = s.decode(&body).expect("decode");
        assert_eq!(back, doc);
        // The same secret sealed twice differs (a fresh nonce each time).
        assert_ne!(s.encode(&doc).expect("encode"), body);
    }

    #[test]
    fn a_wrong_key_or_no_key_or_a_moved_value_is_an_error_never_a_wrong_secret() {
        let a = Sealing(Some(Arc::new(Sealer::new([1; 32]))));
        let body = a.encode(&json!({"peerBgpMd5Key": "k1"})).expect("encode");
        let b = Sealing(Some(Arc::new(Sealer::new([2; 32]))));
        let e = b.decode::<Value>(&body).unwrap_err();
        assert!(e.contains(a.0.as_ref().expect("a").key_id()), "{e}");
        let e = Sealing(None).decode::<Value>(&body).unwrap_err();
        assert!(e.contains("no key"), "{e}");
        // With the old key as well, it opens; sealing again uses the new one.
        let both = Sealing(Some(Arc::new(Sealer::new([2; 32]).and_old([1; 32]))));
        let v: Value = both.decode(&body).expect("old key opens it");
        assert_eq!(v["peerBgpMd5Key"], "k1");
        assert!(
            both.encode(&v)
                .expect("encode")
                .contains(b.0.as_ref().expect("b").key_id())
        );
        // A sealed value moved to another field does not open.
        let moved = body
            .replace("peerBgpMd5Key", "x")
            .replacen("\"x\"", "\"peerBgpMd5Key\"", 1);
        assert!(a.decode::<Value>(&moved).is_ok());
        let v: Value = serde_json::from_str(&body).expect("json");
        let mut other = json!({"secretViewerNote": v["peerBgpMd5Key"].clone()});
        assert!(
            a.open(&mut other).is_ok(),
            "not a secret field: left as it is"
        );
        let tampered = body.replace(&body[body.len() - 6..body.len() - 2], "AAAA");
        assert!(a.decode::<Value>(&tampered).is_err());
    }

    #[test]
    fn key_files_are_64_hex_digits_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("cic-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("k");
        let k = Sealer::create_key_file(&p).expect("create");
        assert_eq!(Sealer::read_key(&p).expect("read"), k);
        assert!(Sealer::create_key_file(&p).is_err(), "never replaced");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(
            Sealer::read_key(&p)
                .unwrap_err()
                .to_string()
                .contains("chmod 600")
        );
        std::fs::write(&p, "abc").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(
            Sealer::read_key(&p)
                .unwrap_err()
                .to_string()
                .contains("64 hex digits")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
