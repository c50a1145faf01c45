#!/usr/bin/env bash
# The end of `make demo`: the user's QEMU notes, replayed as numbers on the redox-sim guest.
#
# redox-sim is a small Linux guest that prints what Redox OS prints on its aarch64 console and fails the way the
# notes describe: `-cpu max` crashes depending on the kernel build (icache-fix 80%, dsb-wfi 40%, isb-barriers 0%),
# `-smp` > 1 with max always crashes, `highmem=off` with max crashes half the time, cortex-a72 never does. Each
# boot's fate comes from its seed only, so every run of this script shows the same numbers (the seed bases are
# fixed below; drop --seed-base to draw fresh ones).
#
# `-cpu max` stands in for `-cpu host` under HVF. About 90 boots in all: a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
BOOTLAB=${BOOTLAB:-.venv/bin/bootlab}
CONFIG=guests/bootlab.toml
if [ ! -f "$CONFIG" ]; then
    echo "demo: $CONFIG is missing; build the test guests first: bash guests/build.sh" >&2
    exit 2
fi
# A store of its own, so the demo never mixes with your results (kept afterwards, to explore).
export BOOTLAB_STORE=${BOOTLAB_DEMO_STORE:-$(mktemp -d "${TMPDIR:-/tmp}/bootlab-demo.XXXXXX")}
MAX=max
bl() { echo; echo "\$ bootlab $*"; "$BOOTLAB" "$@" --config "$CONFIG"; }
say() { echo; echo "== $*" | fold -s -w 116; }

say "1/4  The notes' table, measured. The notes say: cortex-a72 works reliably, -smp 4 crashes, highmem=off is \
flaky. Here is the matrix cpu x smp x highmem on the dsb-wfi build, 3 boots per cell, every cell booting the same \
seeds. Each mark comes with its counts and 95% interval: with 3 boots, a ✅ only says 'at least ~44%'."
bl matrix redox-sim --set vars.build=dsb-wfi --axis "cpu=cortex-a72,$MAX" --axis smp=1,4 \
    --axis machine.highmem=on,off -n 3 --seed-base 1 --note "the notes' table"

say "2/4  The notes' claim: '10/10 = 100% success rate (up from 60%)'. The same experiment: 10 boots of each build, \
interleaved (A, B, A, B, ...) so that anything else happening on this machine hits both alike."
bl compare redox-sim --set "cpu=$MAX" --a vars.build=dsb-wfi --b vars.build=isb-barriers -n 10 \
    --seed-base 1 --note "the notes' 10 boots"
say "6/10 against 10/10 looks decisive, but Fisher's exact test gives p = 0.0867: ten boots each cannot yet tell \
60% from 100% at the usual 5% level. bootlab says how many more boots would settle it."

say "3/4  So boot more: 20 of each."
bl compare redox-sim --set "cpu=$MAX" --a vars.build=dsb-wfi --b vars.build=isb-barriers -n 20 \
    --seed-base 5 --note "enough boots"
say "Now the difference holds up (p well under 0.01), with an interval for how big it is."

say "4/4  Everything above is in the store: every boot with its seed and --set values, its console log, the image \
hashes and the QEMU version. \`bootlab show bN\` (with the BOOTLAB_STORE printed at the end) prints the command that \
replays a boot, and the report below has it for each failed boot; add --config $CONFIG to it, where the demo's \
profiles live."
bl history

# the comparison just run (the newest trial is its arm B): its id is c2 in a fresh store, but not in a reused one
LAST=$("$BOOTLAB" history --json --limit 1 --config "$CONFIG" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["part_of"].split("/")[0])')
say "The last comparison as a page to look at: the rates and their difference, when each boot reached each stage \
in both arms (and whether B is slower), every boot, and the console log around each crash. One file that opens \
offline, from disk, to keep or attach to a bug report."
bl report "$LAST" -o "$BOOTLAB_STORE/"
echo
echo "demo store: $BOOTLAB_STORE  (explore it: BOOTLAB_STORE=$BOOTLAB_STORE $BOOTLAB show t1)"
echo "report:     $BOOTLAB_STORE/bootlab-report-$LAST.html  (open it in a web browser)"
