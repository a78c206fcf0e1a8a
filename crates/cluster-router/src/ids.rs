//! Message ids nobody can guess, and the mapping between an external
//! client's own message tags and internal ids.
//!
//! * Ids of envelopes made on this node ([`MessageId::next`](crate::MessageId::next))
//!   are random 64-bit values from the thread-local CSPRNG (never 0): no
//!   sender can predict the id of someone else's request.
//! * An external client may tag its envelopes with its own number (`"id"`
//!   in the JSON form) and gets it back as the `correlation_id` of the
//!   answers. The router never uses that number as an internal id: it
//!   enciphers it with a keyed permutation of 64-bit values (a four-round
//!   Feistel network whose round function is SipHash keyed at random per
//!   process, tweaked by the client's id), and deciphers the correlation of
//!   an answer when it hands the answer to that client's socket. No table
//!   is kept, so a client may have any number of envelopes in flight, and
//!   nothing grows with them.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use std::collections::hash_map::RandomState;

/// Feistel rounds (four make a strong pseudo-random permutation from a
/// pseudo-random function: Luby-Rackoff).
const ROUNDS: u8 = 4;

/// A fresh random id, never 0 (0 means "none" on the wire).
pub(crate) fn random_id() -> u64 {
    loop {
        let id = rand::random::<u64>();
        if id != 0 {
            return id;
        }
    }
}

/// The keyed permutation between client tags and internal ids.
#[derive(Debug)]
pub(crate) struct TagCipher {
    /// SipHash-1-3 with random keys (per process, per cipher).
    keys: RandomState,
}

impl TagCipher {
    /// A cipher with fresh random keys.
    pub(crate) fn new() -> Self {
        TagCipher {
            keys: RandomState::new(),
        }
    }

    /// The process-wide cipher of this node's client tags.
    pub(crate) fn global() -> &'static TagCipher {
        static CIPHER: OnceLock<TagCipher> = OnceLock::new();
        CIPHER.get_or_init(TagCipher::new)
    }

    fn round(&self, round: u8, client: u64, half: u32) -> u32 {
        let mut h = self.keys.build_hasher();
        h.write_u64(client);
        h.write_u8(round);
        h.write_u32(half);
        h.finish() as u32
    }

    /// The internal id of client `client`'s envelope tagged `tag`.
    pub(crate) fn encipher(&self, client: u64, tag: u64) -> u64 {
        let (mut left, mut right) = ((tag >> 32) as u32, tag as u32);
        for round in 0..ROUNDS {
            let next = left ^ self.round(round, client, right);
            left = right;
            right = next;
        }
        (u64::from(left) << 32) | u64::from(right)
    }

    /// The tag of client `client` that `id` stands for (inverse of
    /// [`encipher`](Self::encipher)).
    pub(crate) fn decipher(&self, client: u64, id: u64) -> u64 {
        let (mut left, mut right) = ((id >> 32) as u32, id as u32);
        for round in (0..ROUNDS).rev() {
            let prev = right ^ self.round(round, client, left);
            right = left;
            left = prev;
        }
        (u64::from(left) << 32) | u64::from(right)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn random_ids_are_not_zero_and_differ() {
        let ids: std::collections::HashSet<u64> = (0..1000).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(!ids.contains(&0));
    }

    #[test]
    fn tags_are_not_ids() {
        let c = TagCipher::new();
        // Small sequential tags map to scattered ids, different per client.
        let ids: Vec<u64> = (1..=4).map(|t| c.encipher(7, t)).collect();
        assert!(ids.iter().all(|&id| id > 1 << 40), "{ids:?}");
        assert_ne!(c.encipher(7, 1), c.encipher(8, 1));
        // Two processes (two keys) disagree.
        assert_ne!(c.encipher(7, 1), TagCipher::new().encipher(7, 1));
    }

    proptest! {
        #[test]
        fn decipher_inverts_encipher(client in any::<u64>(), tag in any::<u64>()) {
            let c = TagCipher::global();
            prop_assert_eq!(c.decipher(client, c.encipher(client, tag)), tag);
            prop_assert_eq!(c.encipher(client, c.decipher(client, tag)), tag);
        }
    }
}
