#!/usr/bin/env bash
# Re-record the boots the replay tests play back (tests/unit/test_replay.py): each raw console log with its
# .times index and the live verdict (NAME.verdict.json) it led to. Needs the test guests (bash guests/build.sh).
#   bash tests/replay/record.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
B=.venv/bin/bootlab
rec() { # rec NAME PROFILE [ARGS...]
    local name=$1 profile=$2; shift 2
    $B boot "$profile" --config guests/bootlab.toml --no-store --seed 7 --json --log "tests/replay/$name.log" "$@" \
        > "tests/replay/$name.verdict.json" || true
    echo "recorded $name: $(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v["outcome"], v["title"])' "tests/replay/$name.verdict.json")"
}
rec redox-sim-pass redox-sim
rec redox-sim-kernel-panic redox-sim --set vars.fault=kernel-panic
rec redox-sim-lacks-grant redox-sim --set vars.fault=lacks-grant
rec linux-arm64-panic linux-arm64 --set vars.mode=panic
rec linux-arm64-hang linux-arm64 --set vars.mode=hang --quiet-timeout 4
rec linux-arm64-flood linux-arm64 --set vars.mode=flood --quiet-timeout 5
gzip -9f tests/replay/linux-arm64-flood.log tests/replay/linux-arm64-flood.times  # 640 kB of flood -> 50 kB
rec linux-arm64-slow linux-arm64 --set vars.mode=slow
rec linux-arm64-uefi-login linux-arm64-uefi
# checks after login: commands typed after the shell prompt (what `bootlab classify` must still read as ready)
rec linux-arm64-checks linux-arm64 --check 'kernel=uname -s' --check 'word=echo hello'

# named VMs: logged in up to the shell prompt (the login and password interactions)
vm() { # vm NAME PROFILE
    local home; home=$(mktemp -d)
    BOOTLAB_VM_HOME=$home $B vm launch "rec-$1" "$2" --config guests/bootlab.toml >/dev/null 2>&1
    cp "$home/rec-$1/console.log" "tests/replay/$1.log"
    cp "$home/rec-$1/console.times" "tests/replay/$1.times"
    BOOTLAB_VM_HOME=$home $B vm delete "rec-$1" >/dev/null 2>&1
    rm -rf "$home"
    echo "recorded $1 (vm)"
}
vm redox-sim-shell redox-sim
vm linux-arm64-shell linux-arm64
