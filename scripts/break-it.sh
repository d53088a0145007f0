#!/usr/bin/env bash
# Break-it exercises (docs/exercises.md): each break removes one idea from
# the real reactor or protocols, and names the test that must catch it. For
# each break this script
#   1. runs the named test on the unbroken code (it must pass, and run),
#   2. applies the break (an exact text replacement; if the text is no
#      longer in the file, the exercise is out of date: fail),
#   3. builds (a break that does not compile is a broken exercise: fail),
#   4. runs the named test again: it must FAIL. A break that no test
#      catches fails this script. A break whose test catches it only when
#      the timing is right (a race the test does not force) is run up to
#      `tries` times and counts as caught if any run fails; the list says
#      which, because such a test is a weaker guard than it should be.
# The code is copied to target/break-it/tree and built there with its own
# target directory, so the working tree and its build are never touched.
#
# Usage: scripts/break-it.sh            the fast subset (CI runs it)
#        scripts/break-it.sh --all      every break
#        scripts/break-it.sh NAME...    the breaks named
#        scripts/break-it.sh --list     list the breaks
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

# ----- the breaks -------------------------------------------------------
# name | file | test command (cargo test ARGS) | fast?
# The text to find (OLD) and what replaces it (NEW) are set in `define`.

names=()
declare -A file test fast old new about tries

define() { # name file fast "cargo test args" about [tries]
    names+=("$1")
    file[$1]="$2"
    fast[$1]="$3"
    test[$1]="$4"
    about[$1]="$5"
    tries[$1]="${6:-1}"
}

define sweep-at-once src/reactor/tcp.rs yes \
    "--lib a_stale_event_never_reaches_the_connection_that_reuses_the_slot" \
    "free a closed connection's slot at once instead of at the sweep"
old[sweep-at-once]='    }

    /// Remove the connections closed this turn from the slab.'
new[sweep-at-once]='        self.sweep();
    }

    /// Remove the connections closed this turn from the slab.'

# The test catches this only when the last bytes and the FIN arrive in one
# event, which is usual but not forced: up to three tries.
define fin-guard src/reactor/tcp.rs no \
    "--test binary server::half_close_gets_everything_back_then_close" \
    "take the short-read shortcut even when the peer's FIN was flagged" 3
old[fin-guard]='if n < want && !read_closed {'
new[fin-guard]='if n < want {'

define write-budget-still-ready src/reactor/tcp.rs yes \
    "--test binary chat_server::a_reading_client_gets_every_line_it_is_owed" \
    "forget the still-ready push when the write budget runs out"
old[write-budget-still-ready]='                        trace!("token={key}: write budget spent, output left");
                        self.still_ready.push((key, serial));'
new[write-budget-still-ready]='                        trace!("token={key}: write budget spent, output left");'

define out-limit src/protocol/echo.rs yes \
    "--lib reading_pauses_at_the_bound" \
    "let the echo output queue grow past --out-limit"
old[out-limit]='            self.out_limit.saturating_sub(self.backlog.len())'
new[out-limit]='            usize::MAX'

define idle-clock-on-output src/reactor/tcp.rs no \
    "--test binary chat_server::a_client_that_only_receives_is_still_idle" \
    "restart the idle clock when the server writes, not only when the client sends"
old[idle-clock-on-output]='                    self.stats.bytes_out += written as u64;'
new[idle-clock-on-output]='                    self.stats.bytes_out += written as u64;
                    if written > 0 {
                        conn.last_input = self.now;
                    }'

define udp-port-guard src/protocol/udp_echo.rs no \
    "--lib guarded_ports_are_never_answered" \
    "answer datagrams from the echo, daytime, qotd and chargen ports"
old[udp-port-guard]='        !GUARDED_PORTS.contains(&src.port())'
new[udp-port-guard]='        let _ = src;
        true'

define grace-not-a-timer src/reactor/mod.rs no \
    "--test binary faults::a_client_that_never_reads_cannot_hold_shutdown_past_the_grace" \
    "keep the shutdown grace out of the loop's timers"
old[grace-not-a-timer]='        self.timers.schedule_loop(deadline, LoopTimer::GraceOver);'
new[grace-not-a-timer]='        let _ = LoopTimer::GraceOver;'

define daytime-no-linger src/reactor/tcp.rs no \
    "--test binary daytime::input_sent_to_daytime_is_thrown_away_and_the_close_is_clean" \
    "close a daytime connection as soon as its line is out, without lingering"
old[daytime-no-linger]='                if conn.saw_eof {'
new[daytime-no-linger]='                if conn.saw_eof || matches!(conn.proto, Proto::Daytime(_)) {'

define relay-no-spill src/reactor/relay.rs no \
    "--test binary relay::a_stream_whose_client_stops_reading_goes_back_to_copying_and_loses_nothing" \
    "leave a stalled stream's bytes in its relay instead of spilling them back to copying"
old[relay-no-spill]='        while session.relayed() > 0 {
            let want = session.relayed().min(self.read_buf.len());'
new[relay-no-spill]='        if session.relayed() > 0 {
            return true;
        }
        while session.relayed() > 0 {
            let want = session.relayed().min(self.read_buf.len());'

# ----- which breaks to run ------------------------------------------------

chosen=()
case "${1:-}" in
    --list)
        for n in "${names[@]}"; do
            printf '%-26s %-4s %s\n    caught by: cargo test %s%s\n' "$n" "${fast[$n]/yes/fast}" "${about[$n]}" "${test[$n]}" \
                "$([ "${tries[$n]}" -gt 1 ] && echo " (up to ${tries[$n]} tries: the test does not force the race)")"
        done
        exit 0 ;;
    --all) chosen=("${names[@]}") ;;
    "") for n in "${names[@]}"; do [ "${fast[$n]}" = yes ] && chosen+=("$n"); done ;;
    *) for n in "$@"; do
           [ -n "${file[$n]+x}" ] || { echo "break-it: no break named $n (see --list)" >&2; exit 2; }
           chosen+=("$n")
       done ;;
esac

# ----- a private copy of the code ---------------------------------------

work="$root/target/break-it"
tree="$work/tree"
# Afresh each run: a file deleted or moved since the last run must not
# linger in the copy (the build directory beside it is kept).
rm -rf "$tree"
mkdir -p "$tree"
# The tracked files as they are now (uncommitted edits included).
git ls-files -z | (cd "$root" && xargs -0 cp --parents -t "$tree")
export CARGO_TARGET_DIR="$work/target"
log="$work/last.log"

run_test() { # name -> 0 if the test passed; output in $log
    local n="$1"
    # Every test has its own deadlines; this bounds a break that hangs one.
    (cd "$tree" && timeout 600 cargo test -q ${test[$n]}) >"$log" 2>&1
}

apply() { # name (on) | name off
    local n="$1" f="$tree/${file[$1]}"
    if [ "${2:-on}" = off ]; then
        cp "$root/${file[$n]}" "$f"
        return
    fi
    OLD="${old[$n]}" NEW="${new[$n]}" perl -0pi -e '
        my $count = () = /\Q$ENV{OLD}\E/g;
        die "the text to break was found $count times, not once\n" unless $count == 1;
        s/\Q$ENV{OLD}\E/$ENV{NEW}/;
    ' "$f"
}

failed=()
start=$SECONDS
for n in "${chosen[@]}"; do
    echo "=== $n: ${about[$n]}"
    echo "    must be caught by: cargo test ${test[$n]}"
    if ! run_test "$n"; then
        tail -n 30 "$log"
        echo "FAILED: $n: the test fails on the unbroken code"
        failed+=("$n"); continue
    fi
    if ! grep -Eq '^test result: ok\. [1-9]' "$log"; then
        echo "FAILED: $n: 'cargo test ${test[$n]}' ran no test (renamed?)"
        failed+=("$n"); continue
    fi
    if ! apply "$n"; then
        echo "FAILED: $n: the exercise is out of date with ${file[$n]}; update scripts/break-it.sh"
        failed+=("$n"); continue
    fi
    read -r -a words <<<"${test[$n]}"
    target=("${words[0]}")
    [ "${words[0]}" = --test ] && target+=("${words[1]}")
    if ! (cd "$tree" && cargo test -q --no-run "${target[@]}") >"$log" 2>&1; then
        tail -n 30 "$log"
        apply "$n" off
        echo "FAILED: $n: the broken code does not compile; fix the exercise"
        failed+=("$n"); continue
    fi
    caught=no
    max_tries="${tries[$n]}"
    for ((try = 1; try <= max_tries; try++)); do
        if ! run_test "$n"; then
            caught=yes
            if [ "$try" -gt 1 ]; then echo "    (caught on try $try of $max_tries)"; fi
            break
        fi
    done
    if [ "$caught" = no ]; then
        apply "$n" off
        echo "FAILED: $n: NOT CAUGHT, the test still passes with the break (${tries[$n]} tries)"
        failed+=("$n"); continue
    fi
    apply "$n" off
    caught_by="$(sed -n '/^failures:$/,/^test result/p' "$log" | grep -E '^    [a-z_:0-9]+$' | tr -d ' ' | paste -sd ' ' -)"
    echo "    caught: ${caught_by:-the test failed} failed with the break"
done

echo "=== ${#chosen[@]} break(s) in $((SECONDS - start))s; ${#failed[@]} not caught or broken${failed[*]:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
