//! Console sessions: the cookie carries a random secret; the store keeps a hash of it and
//! the API key sealed under a key derived from it, so the database alone opens no key and
//! a stolen cookie is useless once the session is ended (sign-out deletes the row). The
//! CSRF token of every form is derived from the same secret.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngExt;
use sha2::{Digest, Sha256};

/// The cookie's name without TLS (its path `/console`), and with (the whole host's; see
/// [`super::cookie`]).
pub const COOKIE: &str = "cic_console";
pub const SECURE_COOKIE: &str = "__Host-cic_console";
/// How long a session lasts from sign-in (then the key is asked for again).
pub const LIFETIME_SECS: i64 = 12 * 3600;

/// A new session secret: 32 random bytes, hex.
pub fn new_secret() -> String {
    let b: [u8; 32] = rand::rng().random();
    hex::encode(b)
}

fn derive(purpose: &str, secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cic-console:");
    h.update(purpose.as_bytes());
    h.update(b":");
    h.update(secret.as_bytes());
    h.finalize().into()
}

/// What the store is keyed by.
pub fn id_hash(secret: &str) -> String {
    hex::encode(derive("id", secret))
}

/// The token every form of the session carries.
pub fn csrf(secret: &str) -> String {
    hex::encode(derive("csrf", secret))
}

/// Compares without telling where two strings first differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The API key sealed under the session's secret: hex of nonce and ciphertext.
pub fn seal(secret: &str, key: &str) -> String {
    let cipher = XChaCha20Poly1305::new(&derive("seal", secret).into());
    let nonce: [u8; 24] = rand::rng().random();
    let ct = cipher
        .encrypt(&XNonce::from(nonce), key.as_bytes())
        .unwrap_or_default();
    format!("{}{}", hex::encode(nonce), hex::encode(ct))
}

/// The API key, if `sealed` was sealed under this secret.
pub fn open(secret: &str, sealed: &str) -> Option<String> {
    let bytes = hex::decode(sealed).ok()?;
    if bytes.len() < 24 {
        return None;
    }
    let (nonce, ct) = bytes.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().ok()?;
    let cipher = XChaCha20Poly1305::new(&derive("seal", secret).into());
    let pt = cipher.decrypt(&XNonce::from(nonce), ct).ok()?;
    String::from_utf8(pt).ok()
}

/// Whether a cookie value looks like a secret this module made (64 hex digits).
pub fn well_formed(secret: &str) -> bool {
    secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_opens_only_with_its_session_s_secret() {
        let s = new_secret();
        let sealed = seal(&s, "cic-key-1");
        assert_eq!(open(&s, &sealed).as_deref(), Some("cic-key-1"));
        assert_eq!(open(&new_secret(), &sealed), None);
        assert!(!sealed.contains("cic-key-1"));
        let mut tampered = sealed.clone();
        tampered.replace_range(60..62, if &sealed[60..62] == "00" { "01" } else { "00" });
        assert_eq!(open(&s, &tampered), None);
    }

    #[test]
    fn the_id_and_csrf_token_are_different_functions_of_the_secret() {
        let s = new_secret();
        assert!(well_formed(&s));
        assert_ne!(id_hash(&s), csrf(&s));
        assert_eq!(csrf(&s), csrf(&s));
        assert_ne!(csrf(&s), csrf(&new_secret()));
        assert!(same(&csrf(&s), &csrf(&s)));
        assert!(!same(&csrf(&s), &csrf(&new_secret())));
        assert!(!same("ab", "abc"));
        assert!(!well_formed("xyz"));
    }
}
