//! `sockloop serve --daytime`, the fourth service (RFC 867), end to end: the
//! real binary on loopback. The service is the worked example of
//! docs/adding-a-service.md; these are the tests that guide says to write.

use crate::common;

use std::io::Write;
use std::net::Shutdown;
use std::thread;
use std::time::{Duration, SystemTime};

use common::{connect, read_to_end, Server};
use sockloop::protocol::daytime::daytime_line;

/// Every line the server could have sent between `before` and `after`
/// (whole seconds, one either side for rounding).
fn lines_between(before: SystemTime, after: SystemTime) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let mut t = before - Duration::from_secs(1);
    while t <= after + Duration::from_secs(1) {
        lines.push(daytime_line(t).to_vec());
        t += Duration::from_secs(1);
    }
    lines
}

#[test]
fn daytime_sends_the_time_as_one_line_then_closes() {
    let server = Server::start(&["--daytime", "127.0.0.1:0", "--daytime", "[::1]:0"], 2);
    for &(_, addr) in &server.listening {
        let before = SystemTime::now();
        let mut s = connect(addr);
        let got = read_to_end(&mut s);
        let after = SystemTime::now();
        assert!(
            lines_between(before, after).contains(&got),
            "{addr}: {:?} is not the time now",
            String::from_utf8_lossy(&got)
        );
    }
}

/// RFC 867: "any data received is thrown away". A client that talks first
/// still gets its line and then a clean end of stream: the server reads and
/// discards until the client closes (a lingering close), because closing
/// with unread bytes in its receive buffer would send a reset, which can
/// destroy the line before the client reads it.
#[test]
fn input_sent_to_daytime_is_thrown_away_and_the_close_is_clean() {
    let server = Server::start(&["--daytime", "127.0.0.1:0"], 1);
    for round in 0..20 {
        let before = SystemTime::now();
        let mut s = connect(server.addr("daytime"));
        let mut writer = s.try_clone().unwrap();
        // More than the socket buffers hold: the server must read it away
        // for this write to finish.
        let talking = thread::spawn(move || {
            writer.write_all(&vec![b'x'; 4 << 20]).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let got = read_to_end(&mut s);
        talking.join().unwrap();
        assert!(
            lines_between(before, SystemTime::now()).contains(&got),
            "round {round}: {:?} is not the time now",
            String::from_utf8_lossy(&got)
        );
    }
}
