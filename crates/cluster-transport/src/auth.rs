//! HMAC helpers: handshake proofs and the client token.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;
use crate::wire::Block;

type HmacSha256 = Hmac<Sha256>;

/// Label of the client token's HMAC input.
const CLIENT_TOKEN_LABEL: &[u8] = b"jobmesh client token v1";

/// Which side of the handshake a proof comes from (keeps the two proofs distinct).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Dialer,
    Listener,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Dialer => b"jobmesh handshake v1 dialer",
            Role::Listener => b"jobmesh handshake v1 listener",
        }
    }
}

fn keyed(secret: &Secret) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length")
}

fn put_field(mac: &mut HmacSha256, field: &[u8]) {
    mac.update(&(field.len() as u64).to_le_bytes());
    mac.update(field);
}

/// The proof `role` gives: HMAC-SHA256 over both nonces and both names.
pub(crate) fn proof(
    secret: &Secret,
    role: Role,
    dialer_nonce: &Block,
    listener_nonce: &Block,
    dialer: &str,
    listener: &str,
) -> Block {
    let mut mac = keyed(secret);
    put_field(&mut mac, role.label());
    put_field(&mut mac, dialer_nonce);
    put_field(&mut mac, listener_nonce);
    put_field(&mut mac, dialer.as_bytes());
    put_field(&mut mac, listener.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Constant-time check of a received proof.
pub(crate) fn verify_proof(expected: &Block, received: &Block) -> bool {
    let diff = expected
        .iter()
        .zip(received)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    diff == 0
}

/// The token an external client presents: `hex(HMAC-SHA256(secret, "jobmesh client token v1"))`.
///
/// ```
/// use cluster_transport::{client_token, Secret};
/// let token = client_token(&Secret::from("s3cret"));
/// assert_eq!(token.len(), 64);
/// ```
pub fn client_token(secret: &Secret) -> String {
    let mut mac = keyed(secret);
    mac.update(CLIENT_TOKEN_LABEL);
    hex::encode(mac.finalize().into_bytes())
}

/// Constant-time check of a presented client token.
pub(crate) fn verify_client_token(secret: &Secret, presented: &str) -> bool {
    let expected = client_token(secret);
    let (a, b) = (expected.as_bytes(), presented.trim().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random nonce.
pub(crate) fn nonce() -> Block {
    rand::random()
}
