//! Harnesses for the cargo-fuzz targets in `fuzz_targets/` and the seed
//! generator in `examples/gen_seeds.rs`.
//!
//! The decoders of `cluster-transport` (codec, handshake) and the system
//! protocol of `cluster-router` are crate-private. Rather than copying them,
//! this crate mounts their real source files with `#[path]`, at the module
//! paths those files expect (`crate::wire`, `crate::codec`, ...), so the
//! fuzzers exercise exactly the code that ships. Public types are taken from
//! the real crates where the mounted files allow it. If one of those crates
//! moves or renames a mounted file, update the `#[path]`s below.
//!
//! Every `fuzz_*` function takes arbitrary bytes, must never panic (except on
//! a violated invariant, which is a finding) and checks round-trips where the
//! decoded value has an encoder.

#![allow(dead_code, clippy::all)]

// ---- cluster-transport internals (crate root layout of that crate) ----

/// `cluster-transport/src/wire.rs`: frame structs and tags.
#[path = "../../crates/cluster-transport/src/wire.rs"]
pub(crate) mod wire;

/// `cluster-transport/src/codec/mod.rs`: the sans-IO codec.
#[path = "../../crates/cluster-transport/src/codec/mod.rs"]
pub(crate) mod codec;

/// `cluster-transport/src/auth.rs`: HMAC proofs and client tokens.
#[path = "../../crates/cluster-transport/src/auth.rs"]
pub(crate) mod auth;

/// `cluster-transport/src/config.rs`: `Secret` (its `as_bytes` is private).
#[path = "../../crates/cluster-transport/src/config.rs"]
pub(crate) mod config;

/// `cluster-transport/src/handshake.rs`: the handshake state machine.
#[path = "../../crates/cluster-transport/src/handshake.rs"]
pub(crate) mod handshake;

/// The public envelope types of cluster-transport.
pub(crate) mod envelope {
    pub(crate) use cluster_transport::{Envelope, EnvelopeKind, PayloadFormat};
}

/// The public error types of cluster-transport.
pub(crate) mod error {
    pub(crate) use cluster_transport::error::HandshakeError;
}

// ---- cluster-router internals ----

/// `cluster-router/src/wire.rs`: the versioned gossip / join protocol.
#[path = "../../crates/cluster-router/src/wire.rs"]
pub(crate) mod router_wire;

/// What `router_wire` imports from `crate::addr`: the real public types.
pub(crate) mod addr {
    pub(crate) use cluster_router::{AddrError, NodeId};
}

/// What `router_wire` imports from `crate::member`. The real `Member` is
/// public but `MemberStatus` is `#[non_exhaustive]`, so the exhaustive
/// matches in `wire.rs` only compile inside `cluster-router`; these mirrors
/// have the same fields and variants.
pub(crate) mod member {
    use crate::addr::NodeId;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum MemberStatus {
        Up,
        Suspect,
        Down,
        Leaving,
        Left,
    }

    #[derive(Clone, Copy, Debug, Default, PartialEq)]
    pub(crate) struct Load {
        pub(crate) cpu_percent: f32,
        pub(crate) in_flight: u32,
        pub(crate) queue_depth: u32,
    }

    #[derive(Clone, Debug, PartialEq)]
    pub(crate) struct Member {
        pub(crate) node: NodeId,
        pub(crate) url: String,
        pub(crate) incarnation: u64,
        pub(crate) status: MemberStatus,
        pub(crate) heartbeat: u64,
        pub(crate) tags: Vec<String>,
        pub(crate) load: Load,
    }
}

mod harness_router;
mod harness_transport;
#[cfg(feature = "job-queue")]
mod harness_job_queue;

pub use harness_router::{fuzz_router_addr, fuzz_router_system_wire, seeds_router_addr, seeds_router_system_wire};
pub use harness_transport::{
    fuzz_transport_client_text, fuzz_transport_handshake, fuzz_transport_node_frame,
    seeds_transport_client_text, seeds_transport_handshake, seeds_transport_node_frame,
};
#[cfg(feature = "job-queue")]
pub use harness_job_queue::{fuzz_job_queue_wire, seeds_job_queue_wire};

/// Seeds per target name, generated from the real encoders.
pub fn all_seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let mut out = vec![
        ("transport_node_frame", seeds_transport_node_frame()),
        ("transport_client_text", seeds_transport_client_text()),
        ("transport_handshake", seeds_transport_handshake()),
        ("router_addr", seeds_router_addr()),
        ("router_system_wire", seeds_router_system_wire()),
    ];
    #[cfg(feature = "job-queue")]
    out.push(("job_queue_wire", seeds_job_queue_wire()));
    out
}
