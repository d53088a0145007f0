#!/usr/bin/env bash
# Does the simulation catch what it exists for? For each break below (one
# idea removed from the reactor, the chat hub or the Redis link, by an exact
# text replacement), run the seeds of its simulation (`cargo test --test
# in_process sim::`, or `sim_cluster::` for the cluster's breaks) on the
# broken code and report the first failing seed and how many failed
# (docs/simulation.md has the figures). The unbroken code must fail no seed, else the figures
# mean nothing: that is checked first, for each simulation the selected
# breaks use.
#
# The code is copied to target/sim-breaks/tree and built there with its own
# target directory, so the working tree and its build are never touched.
#
# Usage: scripts/sim-breaks.sh [NAME...]     (default: every break)
#        SOCKLOOP_SIM_SEEDS=N scripts/sim-breaks.sh   (default 1000 seeds)
#        SOCKLOOP_SIM_CLUSTER_SEEDS=N ...   (the cluster's, default 250)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
work="$root/target/sim-breaks"
tree="$work/tree"

declare -A old new about file sim
names=(write-budget read-budget sweep-mid-batch input-resumed udp-budget short-fill-drained restored-notice claim-unproven bus-order)

about[write-budget]="the write budget's still-ready push removed (flush_pending)"
old[write-budget]='                        trace!("token={key}: write budget spent, output left");
                        self.still_ready.push((key, serial));'
new[write-budget]='                        trace!("token={key}: write budget spent, output left");'

about[read-budget]="the read budget's still-ready push removed (conn_read)"
old[read-budget]='                    // Budget spent, not the socket: come back next turn.
                    self.still_ready.push((key, serial));'
new[read-budget]='                    // Budget spent, not the socket: come back next turn.'

about[sweep-mid-batch]="the sweep moved into the middle of the batch (close_conn frees the slot at once)"
old[sweep-mid-batch]='            self.hub.handle_disconnect(client_id(key, serial), leave);
        }
    }'
new[sweep-mid-batch]='            self.hub.handle_disconnect(client_id(key, serial), leave);
        }
        self.sweep();
    }'

about[input-resumed]="the input-resumed still-ready push removed (flush_pending)"
old[input-resumed]='                trace!("token={key}: input resumed");
                conn.last_input = self.now;
                self.still_ready.push((key, serial));'
new[input-resumed]='                trace!("token={key}: input resumed");
                conn.last_input = self.now;'

about[udp-budget]="the datagram budget's still-ready push removed (udp_ready)"
file[udp-budget]=src/reactor/udp.rs
old[udp-budget]='            if !drained {
                self.still_ready.push((key, serial));
            }'
new[udp-budget]='            if !drained {
            }'

about[short-fill-drained]="a relay fill that stopped short taken to mean the socket is drained (conn_read)"
old[short-fill-drained]='                    RelayRead::Moved(n) => {
                        budget -= n;
                        continue;
                    }'
new[short-fill-drained]='                    RelayRead::Moved(n) => {
                        budget -= n;
                        if n < want && !read_closed {
                            break;
                        }
                        continue;
                    }'

about[restored-notice]="the hub does not tell local users \`* cluster link restored\` (handle_link_up)"
sim[restored-notice]=sim_cluster
file[restored-notice]=src/protocol/chat/cluster.rs
old[restored-notice]='                let line = hub.builder.str("* cluster link restored").finish();
                for id in hub.session_ids() {
                    out.send(id, &line);
                }'
new[restored-notice]='                let line = hub.builder.str("* cluster link restored").finish();
                let _ = line;'

about[claim-unproven]="the link grants a name Redis did not (SET NX answered null, the name is taken)"
sim[claim-unproven]=sim_cluster
file[claim-unproven]=src/cluster/link.rs
old[claim-unproven]='                let granted = matches!(&value, Value::Simple(ok) if ok == b"OK");'
new[claim-unproven]='                let granted = !matches!(&value, Value::Error(_));'

about[bus-order]="the link hands on two messages from the bus in the wrong order (each after the one behind it)"
sim[bus-order]=sim_cluster
file[bus-order]=src/cluster/link.rs
old[bus-order]='        self.effects.push_back(Effect::Message(message));'
new[bus-order]='        match self.effects.back() {
            Some(Effect::Message(_)) => {
                let at = self.effects.len() - 1;
                self.effects.insert(at, Effect::Message(message));
            }
            _ => self.effects.push_back(Effect::Message(message)),
        }'

# Run a simulation's seeds in the copy (\$1: the log's name, \$2: sim or
# sim_cluster); print "first failing seed, count".
run_seeds() {
    local log="$work/$1.log" test="${2:-sim}" name=the_reactor_survives_every_seed
    [ "$test" = sim_cluster ] && name=the_cluster_survives_every_seed
    (cd "$tree" && CARGO_TARGET_DIR="$work/target" RUST_BACKTRACE=0 \
        cargo test --quiet --test in_process "$test::$name" -- --nocapture) >"$log" 2>&1 || true
    local failed first summary
    summary="$(grep -E '^[0-9]+ (cluster )?seeds from' "$log" || true)"
    if [ -z "$summary" ]; then
        echo "no summary: the build or the test did not run (see $log)" >&2
        return 1
    fi
    failed="$(echo "$summary" | sed -E 's/.*: ([0-9]+) failed.*/\1/')"
    first="$(grep -m1 -oE '^seed [0-9]+ FAILED' "$log" | grep -oE '[0-9]+' || echo -)"
    echo "$first $failed"
}

copy_tree() {
    rm -rf "$tree"
    mkdir -p "$tree"
    git -C "$root" ls-files -z | (cd "$root" && xargs -0 cp --parents -t "$tree")
}

mkdir -p "$work"
copy_tree
selected=("$@")
[ ${#selected[@]} -eq 0 ] && selected=("${names[@]}")
declare -A used
for name in "${selected[@]}"; do
    [ -n "${about[$name]:-}" ] || { echo "no break named $name" >&2; exit 2; }
    used[${sim[$name]:-sim}]=1
done
for test in "${!used[@]}"; do
    read -r first failed < <(run_seeds "unbroken-$test" "$test")
    echo "unbroken ($test): $failed failed"
    if [ "$failed" != 0 ]; then
        echo "the unbroken code fails seeds of $test (first: $first): fix that first" >&2
        exit 1
    fi
done

for name in "${selected[@]}"; do
    copy_tree
    python3 - "$tree/${file[$name]:-src/reactor/tcp.rs}" "${old[$name]}" "${new[$name]}" <<'PY'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
if text.count(old) != 1:
    sys.exit(f"the break's text is not in {path} exactly once: the break is out of date")
open(path, "w").write(text.replace(old, new))
PY
    read -r first failed < <(run_seeds "$name" "${sim[$name]:-sim}")
    echo "$name: ${about[$name]}: first failing seed $first, $failed failed"
    if [ "$failed" = 0 ]; then
        echo "NOT CAUGHT: $name" >&2
        exit 1
    fi
done
