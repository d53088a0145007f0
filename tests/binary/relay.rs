//! Echo's relay against the real kernel: a streaming connection's bytes go
//! socket -> pipe -> socket with `splice`, and every guarantee of the
//! copying path still holds. Each test proves from the server's counters
//! (`bytes_spliced`, `relays_open`, `pending_bytes`) that the path it is
//! about was taken, then checks every byte.

use crate::common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::thread;

use common::{connect, read_n, read_to_end, stat, wait_for_stats, Server, WAIT};

/// `serve --echo` with a stats line every 0.1 s and `extra` options.
fn echo_server(extra: &[&str]) -> Server {
    let mut args = vec!["--echo", "127.0.0.1:0", "--stats-interval", "0.1"];
    args.extend_from_slice(extra);
    Server::start(&args, 1)
}

/// Send `data` from a thread, then shut down our sending side.
fn send_all(s: &TcpStream, data: Vec<u8>) -> thread::JoinHandle<()> {
    let mut writer = s.try_clone().unwrap();
    thread::spawn(move || {
        writer.write_all(&data).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    })
}

/// Read the rest of the echo after `got`, wait for the writer, and check
/// that exactly `data` came back.
fn finish_stream(
    s: &mut TcpStream,
    writing: thread::JoinHandle<()>,
    mut got: Vec<u8>,
    data: &[u8],
) {
    got.extend(read_to_end(s));
    writing.join().unwrap();
    assert!(
        got == data,
        "the stream came back changed ({} bytes of {})",
        got.len(),
        data.len()
    );
}

/// A client that reads as fast as it writes streams through the relay:
/// nearly every byte is spliced, and all come back in order.
#[test]
fn a_stream_goes_through_the_relay_and_comes_back_whole() {
    let mut server = echo_server(&[]);
    let mut s = connect(server.addr("tcp-echo"));
    let data = common::pseudo_random_bytes(7, 32 << 20);
    let writing = send_all(&s, data.clone());
    finish_stream(&mut s, writing, Vec::new(), &data);
    let total = data.len() as u64;
    let line = wait_for_stats(&mut server, |l| stat(l, "bytes_out") == total);
    // Only the bytes read before the relay was taken were copied: the
    // first full buffer, and any after a spill.
    assert!(
        stat(&line, "bytes_spliced") >= total / 2,
        "the stream was not spliced: {line}"
    );
    assert_eq!(stat(&line, "pending_bytes"), 0, "{line}");
}

/// A client that stops reading in mid-stream: the relay cannot hold
/// `--out-limit` (it is one pipe), so its bytes go back into the backlog and
/// the connection copies, holding exactly `--out-limit` and not a byte
/// more; when the client reads again, everything arrives in order.
#[test]
fn a_stream_whose_client_stops_reading_goes_back_to_copying_and_loses_nothing() {
    let out_limit = 256 * 1024;
    let mut server = echo_server(&["--out-limit", &out_limit.to_string()]);
    let mut s = connect(server.addr("tcp-echo"));
    // More than the server's backlog and both kernels' buffers can hold.
    let data = common::pseudo_random_bytes(11, 48 << 20);
    let first_part = 8 << 20;
    let writing = send_all(&s, data.clone());
    // Read along for a while, so that the stream takes a relay.
    let got = read_n(&mut s, first_part);
    let line = wait_for_stats(&mut server, |l| stat(l, "bytes_spliced") > 0);
    assert!(stat(&line, "relays_open") >= 1, "{line}");
    // Stop reading: the server fills its backlog to exactly the limit, which
    // a relay (one pipe) alone could not hold.
    let line = wait_for_stats(&mut server, |l| stat(l, "pending_bytes") == out_limit);
    assert!(stat(&line, "pending_peak") <= out_limit, "{line}");
    finish_stream(&mut s, writing, got, &data);
    let line = wait_for_stats(&mut server, |l| stat(l, "bytes_out") == data.len() as u64);
    assert!(stat(&line, "pending_peak") <= out_limit, "{line}");
}

/// More streams at once than there are relays: many relays are open at
/// once but never more than the limit, those without one copy, and every
/// stream comes back whole. Afterwards the server keeps only a few empty
/// relays, not one per stream it served.
#[test]
fn more_streams_than_relays_all_come_back_and_idle_relays_are_closed() {
    let streams = 72; // config::MAX_RELAYS is 64
    let size = 8 << 20;
    let mut server = echo_server(&[]);
    let addr = server.addr("tcp-echo");
    let (done_tx, done_rx) = mpsc::channel();
    let mut go = Vec::new();
    for i in 0..streams {
        let done = done_tx.clone();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        go.push(go_tx);
        thread::spawn(move || {
            let mut s = connect(addr);
            let data = common::pseudo_random_bytes(100 + i, size);
            // All connected first, then all stream at once.
            if go_rx.recv_timeout(WAIT).is_err() {
                return;
            }
            let writing = send_all(&s, data.clone());
            let got = read_to_end(&mut s);
            writing.join().unwrap();
            let _ = done.send(got == data);
        });
    }
    wait_for_stats(&mut server, |l| stat(l, "conns_open") == streams as u64);
    for g in &go {
        let _ = g.send(());
    }
    for _ in 0..streams {
        let whole = done_rx
            .recv_timeout(WAIT * 3)
            .expect("a stream neither finished nor failed in time");
        assert!(whole, "a stream came back changed");
    }
    let total = streams as u64 * size as u64;
    let line = wait_for_stats(&mut server, |l| {
        stat(l, "bytes_out") == total && stat(l, "conns_open") == 0
    });
    // More relays were open at once than are ever kept idle (else the check
    // below proves nothing), and never more than config::MAX_RELAYS.
    let peak = stat(&line, "relays_peak");
    assert!(peak > 8 && peak <= 64, "{line}");
    // config::IDLE_RELAYS_KEPT: the rest were closed as their streams ended.
    assert!(stat(&line, "relays_open") <= 8, "{line}");
}
