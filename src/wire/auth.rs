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
//!   signing, with a seed of any length);
//! * `caching_sha2_password` (MySQL 8's default): first the fast answer
//!   `SHA256(password) XOR SHA256(SHA256(SHA256(password)) + nonce)`; when
//!   the server's cache misses it asks for the full authentication
//!   (`0x01 0x04`): the password in clear over TLS, else the password
//!   (NUL-terminated, XORed with the nonce) encrypted with RSA-OAEP under
//!   the server's public key, which the client asks for (`0x02`);
//! * `sha256_password`: the full authentication at once (in clear over
//!   TLS; else `0x01` asks for the server's public key, then RSA as above).
//!
//! [`Exchange`] runs a plugin's whole conversation: its first answer, and
//! its answers to the server's "more data" packets (`0x01 …`).
//! MariaDB 10.11 ships no server side of the two MySQL plugins: they are
//! tested against exchanges derived from the protocol (see the tests), not
//! against a real server.

use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::scalar::{clamp_integer, Scalar};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Oaep, RsaPublicKey};
use sha2::{Digest, Sha256, Sha512};

/// `mysql_native_password`.
pub const NATIVE_PASSWORD: &str = "mysql_native_password";
/// MariaDB's `ed25519` authentication, client side.
pub const ED25519: &str = "client_ed25519";

/// MySQL's `caching_sha2_password`.
pub const CACHING_SHA2: &str = "caching_sha2_password";
/// MySQL's `sha256_password`.
pub const SHA256_PASSWORD: &str = "sha256_password";

/// The plugins this client answers.
pub const SUPPORTED: &[&str] = &[NATIVE_PASSWORD, ED25519, CACHING_SHA2, SHA256_PASSWORD];

/// The answer of `plugin` to the server's challenge `data` for `password`,
/// or `None` for a plugin this client does not speak. For the two SHA-256
/// plugins this is only the first answer: use [`Exchange`].
pub fn answer(plugin: &str, password: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    match plugin {
        NATIVE_PASSWORD => Some(super::conn::native_password(password, data)),
        ED25519 => Some(ed25519_signature(password, data).to_vec()),
        CACHING_SHA2 => Some(caching_sha2_scramble(password, data)),
        _ => None,
    }
}

/// The `caching_sha2_password` fast answer: `SHA256(password) XOR
/// SHA256(SHA256(SHA256(password)) + nonce)`, empty for an empty password.
pub fn caching_sha2_scramble(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let h1 = Sha256::digest(password);
    let h2 = Sha256::digest(h1);
    let h3 = Sha256::new()
        .chain_update(h2)
        .chain_update(nonce)
        .finalize();
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

/// The full authentication without TLS: `password` + NUL, XORed with the
/// nonce (repeated), encrypted with RSA-OAEP (SHA-1, as the server
/// decrypts it) under the server's public key `pem`.
pub fn rsa_encrypted_password(
    password: &[u8],
    nonce: &[u8],
    pem: &[u8],
) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(pem)
        .map_err(|_| "the server's public key is not PEM text".to_string())?
        .trim_end_matches('\0');
    let key = RsaPublicKey::from_public_key_pem(text)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(text))
        .map_err(|e| format!("the server's public key cannot be read: {e}"))?;
    if nonce.is_empty() {
        return Err("the server sent an empty nonce".into());
    }
    let mut plain = password.to_vec();
    plain.push(0);
    for (i, b) in plain.iter_mut().enumerate() {
        *b ^= nonce[i % nonce.len()];
    }
    key.encrypt(&mut rand_core::OsRng, Oaep::new::<sha1::Sha1>(), &plain)
        .map_err(|e| format!("RSA encryption of the password failed: {e}"))
}

/// Where a SHA-256 plugin's conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Answered; the server may ask for more.
    Started,
    /// Asked for the server's public key.
    KeyAsked,
    /// Sent the full authentication, or told fast auth succeeded: only OK
    /// or ERR may follow.
    Done,
}

/// One authentication conversation of `plugin`: [`Exchange::start`] gives
/// the first answer, [`Exchange::more`] the answer to each "more data"
/// packet of the server.
#[derive(Debug)]
pub struct Exchange<'a> {
    plugin: String,
    password: &'a [u8],
    nonce: Vec<u8>,
    tls: bool,
    stage: Stage,
}

impl<'a> Exchange<'a> {
    /// The first answer of `plugin` to challenge `nonce`; `tls` says whether
    /// the connection is encrypted (the password may then go in clear).
    /// `Err` names the unsupported plugin.
    pub fn start(
        plugin: &str,
        password: &'a [u8],
        nonce: &[u8],
        tls: bool,
    ) -> Result<(Self, Vec<u8>), String> {
        let mut x = Exchange {
            plugin: plugin.to_owned(),
            password,
            nonce: nonce.to_vec(),
            tls,
            stage: Stage::Started,
        };
        let first = match plugin {
            SHA256_PASSWORD if password.is_empty() => {
                x.stage = Stage::Done;
                vec![0]
            }
            SHA256_PASSWORD if tls => {
                x.stage = Stage::Done;
                x.clear_password()
            }
            SHA256_PASSWORD => {
                x.stage = Stage::KeyAsked;
                vec![1]
            }
            _ => answer(plugin, password, nonce).ok_or_else(|| {
                format!(
                    "the server wants authentication plugin `{plugin}`; supported: {}",
                    SUPPORTED.join(", ")
                )
            })?,
        };
        Ok((x, first))
    }

    fn clear_password(&self) -> Vec<u8> {
        let mut v = self.password.to_vec();
        v.push(0);
        v
    }

    /// The answer to the server's "more data" packet (its bytes after the
    /// `0x01`): `Ok(None)` when nothing is to be sent (fast authentication
    /// succeeded: the OK packet follows).
    pub fn more(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match (self.plugin.as_str(), self.stage, data) {
            (CACHING_SHA2, Stage::Started, [3]) => {
                self.stage = Stage::Done;
                Ok(None)
            }
            (CACHING_SHA2, Stage::Started, [4]) if self.tls => {
                self.stage = Stage::Done;
                Ok(Some(self.clear_password()))
            }
            (CACHING_SHA2, Stage::Started, [4]) => {
                self.stage = Stage::KeyAsked;
                Ok(Some(vec![2]))
            }
            (CACHING_SHA2 | SHA256_PASSWORD, Stage::KeyAsked, pem) => {
                self.stage = Stage::Done;
                rsa_encrypted_password(self.password, &self.nonce, pem).map(Some)
            }
            (plugin, _, d) => Err(format!(
                "unexpected data from the server during `{plugin}` authentication: {:02x?}",
                &d[..d.len().min(8)]
            )),
        }
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
pub(crate) mod tests {
    use super::*;
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
    use rsa::RsaPrivateKey;

    /// A test key (1024 bits: generating one takes seconds in a debug
    /// build), as a server would keep in `private_key.pem`.
    const SERVER_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIICeQIBADANBgkqhkiG9w0BAQEFAASCAmMwggJfAgEAAoGBALFzOfw51cZAsUA2
Q2T7JkcO8T7ReIf2uxoetWUzut5cB3E35JYdE5/9DKOhGF2vdlgi69cH+HsbqdVh
KBHtaUaATsU4kXTkkjjD6stCE2hyp9fFAv5+p2vk1XXaHLtcquYt7neZ4YX63ybb
kER+w3KoXE9Sog82cqqivFtj0pXnAgMBAAECgYEArLxyEalrA9YttUgdSsuAc2OE
S5Y1MoVnlQGXqrA0lAgZ5oh2J/qeA/ucthw3T9th5GH6GhRUOeKv7FrrWqg09R+Q
yh58K6HFsk/QGktORjcmX5EQGzHuAIdQqOY+WplDbBYTUnggpY+n8akek8tcUf7a
HxRj1wlCpYl/ZJqKOIECQQDo9EzSsvzhB4d3IrazkUmBoNhUW6YCRu5ymiF4/ALr
sWWi/OvhqQ0uudq67bvUHEn67QVmqRffe3iX+PgeaUHxAkEAwwFATVFObvug00vy
vT86xL1kb60G12oQDWClz7UP24Od8UWm1Q1RztYUYKVfCcWN6l1Nv3eMRic9zpVs
xAL9VwJBAOOThllwMktEJ7rjVskl7kGM+MmwnwUqdlfO61ReHhxTOY94tpfFpvM2
7dAf35bf7AYO92/LUV8qKC2PNBXBjoECQQCLlJOwRCh+LEK7u7suVtn8BQylGxaw
jkybJrjI6fNFzvn4v0Bhc71A7d98JiLW3b9tKAgEqs+PT3tgKXjG/NTVAkEAnWaX
9Zx9AGZ7MF4PCLGRFVv/FSiO94zGpz4V0/yr+PYTMWQ6kHrpwT6qW385k39F8mQm
4aFRKVPAtstPqcghFw==
-----END PRIVATE KEY-----
";

    /// A server's RSA key pair: the private key and its public PEM.
    pub(crate) fn server_key() -> (RsaPrivateKey, Vec<u8>) {
        let key = RsaPrivateKey::from_pkcs8_pem(SERVER_KEY).unwrap();
        let pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        (key, pem.into_bytes())
    }

    /// What the server does with an RSA-encrypted password: decrypt,
    /// XOR with the nonce, strip the NUL.
    pub(crate) fn server_decrypt(key: &RsaPrivateKey, nonce: &[u8], c: &[u8]) -> Vec<u8> {
        let mut p = key.decrypt(Oaep::new::<sha1::Sha1>(), c).unwrap();
        for (i, b) in p.iter_mut().enumerate() {
            *b ^= nonce[i % nonce.len()];
        }
        assert_eq!(p.pop(), Some(0), "NUL-terminated");
        p
    }

    /// The server's fast check: it keeps `SHA256(SHA256(password))`;
    /// `token XOR SHA256(stored + nonce)` must hash to it.
    pub(crate) fn server_fast_check(password: &[u8], nonce: &[u8], token: &[u8]) -> bool {
        let stored = Sha256::digest(Sha256::digest(password));
        let m = Sha256::new()
            .chain_update(stored)
            .chain_update(nonce)
            .finalize();
        let h1: Vec<u8> = token.iter().zip(m.iter()).map(|(a, b)| a ^ b).collect();
        token.len() == 32 && Sha256::digest(&h1) == stored
    }

    const NONCE: &[u8; 20] = b"0123456789abcdefghij";

    #[test]
    fn caching_sha2_fast_authentication() {
        let (mut x, token) = Exchange::start(CACHING_SHA2, b"s3cret", NONCE, false).unwrap();
        assert!(server_fast_check(b"s3cret", NONCE, &token));
        assert!(!server_fast_check(b"other", NONCE, &token));
        // 0x01 0x03: the cache hit; the OK packet follows, nothing is sent.
        assert_eq!(x.more(&[3]), Ok(None));
        assert!(x.more(&[3]).is_err(), "nothing more is expected");
        // The empty password sends an empty token.
        let (_, token) = Exchange::start(CACHING_SHA2, b"", NONCE, false).unwrap();
        assert!(token.is_empty());
    }

    #[test]
    fn caching_sha2_full_authentication_over_tls_and_with_rsa() {
        // Over TLS: the password in clear, NUL-terminated.
        let (mut x, _) = Exchange::start(CACHING_SHA2, b"s3cret", NONCE, true).unwrap();
        assert_eq!(x.more(&[4]), Ok(Some(b"s3cret\0".to_vec())));
        // Without TLS: ask for the key (0x02), then RSA-OAEP.
        let (key, pem) = server_key();
        let (mut x, _) = Exchange::start(CACHING_SHA2, b"s3cret", NONCE, false).unwrap();
        assert_eq!(x.more(&[4]), Ok(Some(vec![2])));
        let c = x.more(&pem).unwrap().unwrap();
        assert_eq!(c.len(), 128, "one RSA block of the 1024-bit key");
        assert_eq!(server_decrypt(&key, NONCE, &c), b"s3cret");
        // A key that is not PEM is a clear error.
        let (mut x, _) = Exchange::start(CACHING_SHA2, b"s3cret", NONCE, false).unwrap();
        x.more(&[4]).unwrap();
        let e = x.more(b"garbage").unwrap_err();
        assert!(e.contains("public key"), "{e}");
    }

    #[test]
    fn sha256_password_exchanges() {
        let (_, first) = Exchange::start(SHA256_PASSWORD, b"pw", NONCE, true).unwrap();
        assert_eq!(first, b"pw\0");
        let (_, first) = Exchange::start(SHA256_PASSWORD, b"", NONCE, false).unwrap();
        assert_eq!(first, [0]);
        let (key, pem) = server_key();
        let (mut x, first) = Exchange::start(SHA256_PASSWORD, b"pw", NONCE, false).unwrap();
        assert_eq!(first, [1], "asks for the server's public key");
        let c = x.more(&pem).unwrap().unwrap();
        assert_eq!(server_decrypt(&key, NONCE, &c), b"pw");
        let e = Exchange::start("dialog", b"pw", NONCE, false).unwrap_err();
        assert!(e.contains("`dialog`") && e.contains(CACHING_SHA2), "{e}");
    }

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
