//! Daytime (RFC 867), sans-IO: the fourth service, and the worked example of
//! docs/adding-a-service.md. On connect the server sends the current time as
//! one line and closes; whatever the client sends is thrown away.
//!
//! The session is the whole protocol: it is made from the wall-clock time
//! the reactor passes in (it never reads a clock itself, so a test can give
//! it any time it likes), holds its one line inline (no allocation), and
//! says what is left to send. The line is the time in UTC, RFC 3339 style,
//! then a newline: `2026-12-02T07:52:11Z\n`. RFC 867 leaves the format to
//! the server; this one sorts as text and every language parses it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes in a daytime line: `YYYY-MM-DDTHH:MM:SSZ` and `\n`.
pub const LINE_LEN: usize = 21;

/// The last second the four-digit format can say: 9999-12-31T23:59:59Z.
const LAST_SECOND: u64 = 253_402_300_799;

/// One daytime connection: its line, and how much of it the socket took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaytimeSession {
    line: [u8; LINE_LEN],
    sent: usize,
}

impl DaytimeSession {
    /// A session that will send the time `now`.
    pub fn new(now: SystemTime) -> DaytimeSession {
        DaytimeSession {
            line: daytime_line(now),
            sent: 0,
        }
    }

    /// What is left to send.
    pub fn output(&self) -> &[u8] {
        &self.line[self.sent..]
    }

    /// Bytes left to send.
    pub fn pending(&self) -> usize {
        LINE_LEN - self.sent
    }

    /// The socket took `n` bytes of [`output`](DaytimeSession::output).
    pub fn consume_output(&mut self, n: usize) {
        self.sent = (self.sent + n).min(LINE_LEN);
    }

    /// All of the line is out: the server closes (lingering, so that bytes
    /// the client sent and nobody read cannot turn the close into a reset).
    pub fn is_done(&self) -> bool {
        self.sent == LINE_LEN
    }

    /// Forget what is left (the connection is closing anyway).
    pub fn discard(&mut self) {
        self.sent = LINE_LEN;
    }
}

/// `now` as `YYYY-MM-DDTHH:MM:SSZ\n`, in UTC. Times before 1970 say
/// 1970-01-01T00:00:00Z and times after year 9999 say its last second: a
/// clock that far off is wrong, and the line keeps its length.
pub fn daytime_line(now: SystemTime) -> [u8; LINE_LEN] {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(LAST_SECOND);
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    let mut line = *b"0000-00-00T00:00:00Z\n";
    put_digits(&mut line[0..4], year);
    put_digits(&mut line[5..7], month);
    put_digits(&mut line[8..10], day);
    put_digits(&mut line[11..13], hour);
    put_digits(&mut line[14..16], minute);
    put_digits(&mut line[17..19], second);
    line
}

/// Write `value` into `out` as decimal digits, zero-padded to its width.
fn put_digits(out: &mut [u8], mut value: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The (year, month, day) of the proleptic Gregorian calendar that is
/// `days` after 1970-01-01. The calendar repeats every 400 years (146 097
/// days), so count eras, then years in the era with March as the first
/// month (which puts the leap day at the end of the year), then shift back
/// to January. This is the well-known "civil from days" method.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 1970-01-01 is day 719 468 after 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn text(secs: u64) -> String {
        String::from_utf8(daytime_line(at(secs)).to_vec()).unwrap()
    }

    #[test]
    fn the_line_is_rfc3339_utc_and_a_newline() {
        assert_eq!(text(0), "1970-01-01T00:00:00Z\n");
        assert_eq!(text(951_782_400), "2000-02-29T00:00:00Z\n");
        assert_eq!(text(1_796_197_931), "2026-12-02T07:52:11Z\n");
        assert_eq!(text(LAST_SECOND), "9999-12-31T23:59:59Z\n");
        assert_eq!(text(LAST_SECOND + 86_400), "9999-12-31T23:59:59Z\n");
        let before_1970 = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(&daytime_line(before_1970), b"1970-01-01T00:00:00Z\n");
    }

    /// Every day from 1970 to 2400, against a calendar counted one day at a
    /// time: the era arithmetic has no shortcut a table of a few dates
    /// would miss (century years, the 400-year leap year).
    #[test]
    fn every_day_agrees_with_counting_days_one_by_one() {
        let leap = |y: u64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month_len = |y: u64, m: u64| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in 0..157_000 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            d += 1;
            if d > month_len(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn the_session_sends_its_line_once_in_any_chunks() {
        let mut s = DaytimeSession::new(at(951_782_400));
        assert_eq!(s.pending(), LINE_LEN);
        assert!(!s.is_done());
        let mut sent = Vec::new();
        for chunk in [1, 7, 0, 100] {
            let n = chunk.min(s.pending());
            sent.extend_from_slice(&s.output()[..n]);
            s.consume_output(n);
        }
        assert_eq!(sent, b"2000-02-29T00:00:00Z\n");
        assert!(s.is_done());
        assert_eq!(s.output(), b"");
        let mut s = DaytimeSession::new(at(0));
        s.discard();
        assert!(s.is_done() && s.pending() == 0);
    }
}
