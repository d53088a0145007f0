//! The cluster fuzz targets' seed corpus, replayed by `cargo test` through
//! exactly the checks the fuzzer runs (`sockloop::cluster::checks`). Every
//! bus seed must decode (they are laid out by hand from the documented
//! format, so this also checks that code and documentation agree), and the
//! RESP seeds (a real Redis 7 session, cut into chunks) must decode to the
//! frames they hold; the cluster hub seeds (bus messages from three
//! "servers") must keep the hub consistent.

use std::path::PathBuf;

use sockloop::cluster::checks::{bus_round_trip, cluster_hub, resp_chunking};
use sockloop::cluster::resp::{self, Frame};
use sockloop::protocol::chat::bus;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_bus_seed_decodes_and_round_trips() {
    let all = seeds("bus_decode");
    assert!(all.len() >= 15, "one seed per kind and reason");
    for (name, bytes) in all {
        let message = bus::decode(&bytes).unwrap_or_else(|e| panic!("seed {name}: {e}"));
        assert_eq!(message.server, 0x0123456789ABCDEF, "seed {name}");
        bus_round_trip(&bytes);
    }
}

#[test]
fn every_resp_seed_passes_the_chunking_check() {
    let all = seeds("resp_decode");
    assert!(all.len() >= 7);
    for (name, bytes) in &all {
        resp_chunking(bytes);
        // Whole frames only, then an error or an unfinished tail.
        let mut rest = &bytes[2..];
        let mut frames = 0;
        while let Ok(Some((_, used))) = resp::decode(rest) {
            rest = &rest[used..];
            frames += 1;
        }
        let may_be_empty = name == "unfinished" || name.starts_with("regression-");
        assert!(frames > 0 || may_be_empty, "seed {name}: no frame");
    }
    // The real session: HELLO's map, the subscribe confirmation, a bus
    // message, six replies and an error: ten frames, all used.
    let session = &all.iter().find(|(n, _)| n == "session").unwrap().1[2..];
    let mut rest = session;
    let mut kinds = Vec::new();
    while let Some((frame, used)) = resp::decode(rest).unwrap() {
        kinds.push(matches!(frame, Frame::Push(_)));
        rest = &rest[used..];
    }
    assert!(rest.is_empty());
    assert_eq!(kinds.len(), 10);
    assert_eq!(&kinds[..3], [false, true, true]);
}

#[test]
fn every_cluster_hub_seed_keeps_the_hub_consistent() {
    let all = seeds("cluster_hub");
    assert!(all.len() >= 17, "one seed per kind, and mixes");
    for (_, bytes) in all {
        cluster_hub(&bytes);
    }
}
