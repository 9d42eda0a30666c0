#!/bin/sh
# Regenerates docs/tui.png and docs/lineage.png from demo.jsonl (a recording of demo.py cut
# to its lineage). Needs python3-pil, fonts-dejavu-core and graphviz (Debian).
# With --record (as root), records demo.jsonl again first.
set -eu
# The system Python and tools, whatever a version manager put first on PATH.
export PATH=/usr/bin:/bin
cd "$(dirname "$0")"
tracer=$(realpath ../../target/debug/tracer)
if [ "${1:-}" = "--record" ]; then
    "$tracer" record -o full.jsonl --rules demo_rules.toml --duration 4 &
    recorder=$!
    sleep 1.5
    supervisor=$(sh -c 'python3 demo.py >/dev/null 2>&1 & echo $!')
    wait "$recorder"
    "$tracer" export full.jsonl --format jsonl --pid "$supervisor" --output demo.jsonl
    rm -f full.jsonl
fi
"$tracer" replay demo.jsonl --at=-1s --frame 150x30 > frame.json
python3 render.py frame.json ../tui.png
"$tracer" export demo.jsonl --format dot --output lineage.dot
dot -Tpng -Gdpi=110 lineage.dot -o ../lineage.png
rm -f frame.json lineage.dot
echo "wrote docs/tui.png and docs/lineage.png"
