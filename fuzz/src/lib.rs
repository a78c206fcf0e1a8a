//! The table of cargo-fuzz targets in `fuzz_targets/`, for the seed
//! generator (`examples/gen_seeds.rs`) and the stable smoke test
//! (`tests/seeds.rs`).
//!
//! The harnesses are not here: each crate exposes its decoders to the
//! fuzzers through `pub mod fuzzing` behind its `fuzzing` feature (entry
//! points taking
//! arbitrary bytes, running the real decoders and checking round trips,
//! plus `*_seeds` functions built from the real encoders). This crate only
//! names them.

/// One fuzz target: its name (the `fuzz_targets/<name>.rs` binary), its
/// entry point and its seed builder.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// Name of the target and of its `seeds/<name>/` directory.
    pub name: &'static str,
    /// The entry point libFuzzer calls with each input.
    pub run: fn(&[u8]),
    /// Builds the committed seed inputs with the real encoders.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every target, in the order of `fuzz/Cargo.toml`.
pub fn targets() -> Vec<Target> {
    use cluster_router::fuzzing as router;
    use cluster_transport::fuzzing as transport;
    let t = |name, run, seeds| Target { name, run, seeds };
    let mut out = vec![
        t(
            "transport_node_frame",
            transport::node_frame,
            transport::node_frame_seeds,
        ),
        t(
            "transport_client_preauth",
            transport::client_preauth,
            transport::client_preauth_seeds,
        ),
        t(
            "transport_preauth_gate",
            transport::preauth_gate,
            transport::preauth_gate_seeds,
        ),
        t(
            "transport_handshake",
            transport::handshake,
            transport::handshake_seeds,
        ),
        t("router_addr", router::addr, router::addr_seeds),
        t(
            "router_system_wire",
            router::system_wire,
            router::system_wire_seeds,
        ),
        t(
            "router_envelope_header",
            router::envelope_header,
            router::envelope_header_seeds,
        ),
        t(
            "router_client_envelope",
            router::client_envelope,
            router::client_envelope_seeds,
        ),
        t(
            "router_system_command_json",
            router::system_command_json,
            router::system_command_json_seeds,
        ),
    ];
    #[cfg(feature = "job-queue")]
    out.push(t(
        "job_queue_wire",
        job_queue::fuzzing::job_wire,
        job_queue::fuzzing::job_wire_seeds,
    ));
    #[cfg(feature = "job-queue")]
    out.push(t(
        "job_queue_client_command",
        job_queue::fuzzing::client_command,
        job_queue::fuzzing::client_command_seeds,
    ));
    out
}
