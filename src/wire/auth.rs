//! Answers to the server's authentication plugins: which plugins this
//! client speaks, and the bytes each sends for a password and the server's
//! challenge.
//!
//! * `mysql_native_password`: `SHA1(password) XOR SHA1(scramble +
//!   SHA1(SHA1(password)))`, empty for an empty password;
//! * `client_ed25519` (MariaDB's `ed25519` plugin, `auth_ed25519`): an
//!   Ed25519 signature of the server's 32-byte nonce, with the password as
//!   the secret seed: the SHA-512 of the password, its lower half clamped
//!   as the secret scalar and its upper half as the nonce prefix (RFC 8032
//!   signing, with a seed of any length).

use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::scalar::{clamp_integer, Scalar};
use sha2::{Digest, Sha512};

/// `mysql_native_password`.
pub const NATIVE_PASSWORD: &str = "mysql_native_password";
/// MariaDB's `ed25519` authentication, client side.
pub const ED25519: &str = "client_ed25519";

/// The plugins this client answers.
pub const SUPPORTED: &[&str] = &[NATIVE_PASSWORD, ED25519];

/// The answer of `plugin` to the server's challenge `data` for `password`,
/// or `None` for a plugin this client does not speak.
pub fn answer(plugin: &str, password: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    match plugin {
        NATIVE_PASSWORD => Some(super::conn::native_password(password, data)),
        ED25519 => Some(ed25519_signature(password, data).to_vec()),
        _ => None,
    }
}

/// The `client_ed25519` answer: the 64-byte signature `R || S` of
/// `message` under the key derived from `password` (see the module doc).
pub fn ed25519_signature(password: &[u8], message: &[u8]) -> [u8; 64] {
    let h: [u8; 64] = Sha512::digest(password).into();
    let mut lower = [0u8; 32];
    lower.copy_from_slice(&h[..32]);
    let a = Scalar::from_bytes_mod_order(clamp_integer(lower));
    let public = (&a * ED25519_BASEPOINT_TABLE).compress();
    let r = Scalar::from_hash(Sha512::new().chain_update(&h[32..]).chain_update(message));
    let big_r = (&r * ED25519_BASEPOINT_TABLE).compress();
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(big_r.as_bytes())
            .chain_update(public.as_bytes())
            .chain_update(message),
    );
    let s = k * a + r;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(big_r.as_bytes());
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032, 7.1, TEST 1: a 32-byte seed signs the empty message; the
    /// derivation is the same for a password of any length.
    #[test]
    fn ed25519_matches_rfc_8032() {
        let seed: Vec<u8> = (0..32)
            .map(|i| {
                u8::from_str_radix(
                    &"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
                        [i * 2..i * 2 + 2],
                    16,
                )
                .unwrap()
            })
            .collect();
        let sig = ed25519_signature(&seed, b"");
        let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }
}
