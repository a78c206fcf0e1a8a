//! Every harness accepts its own seeds and a few degenerate inputs (run on
//! stable with `cargo test` inside `fuzz/`; no libFuzzer needed).

#[test]
fn harnesses_run_on_seeds_and_junk() {
    for (name, seeds) in jobmesh_fuzz::all_seeds() {
        assert!(!seeds.is_empty(), "{name} has no seeds");
        let run: fn(&[u8]) = match name {
            "transport_node_frame" => jobmesh_fuzz::fuzz_transport_node_frame,
            "transport_client_text" => jobmesh_fuzz::fuzz_transport_client_text,
            "transport_handshake" => jobmesh_fuzz::fuzz_transport_handshake,
            "router_addr" => jobmesh_fuzz::fuzz_router_addr,
            "router_system_wire" => jobmesh_fuzz::fuzz_router_system_wire,
            #[cfg(feature = "job-queue")]
            "job_queue_wire" => jobmesh_fuzz::fuzz_job_queue_wire,
            other => panic!("unknown target {other}"),
        };
        for seed in &seeds {
            run(seed);
        }
        for junk in [&b""[..], b"\0", b"\xff\xff\xff\xff\xff", b"{}", b"a@b"] {
            run(junk);
        }
    }
}

#[test]
fn committed_seeds_are_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (name, seeds) in jobmesh_fuzz::all_seeds() {
        for (i, seed) in seeds.iter().enumerate() {
            let path = root.join(name).join(format!("seed-{i:02}"));
            let on_disk = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (run `cargo run --example gen_seeds`)", path.display()));
            assert_eq!(&on_disk, seed, "{} is stale (run `cargo run --example gen_seeds`)", path.display());
        }
    }
}
