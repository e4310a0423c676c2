#!/bin/bash
# bash /tmp/poll.sh SECONDS: wait for bench/lease/wholerun-job.sh (at most SECONDS), print where it is, and send its
# rows and logs back as $OUT/res.tgz (one file: a call returns at most 8).
end=$((SECONDS + $1))
while [ $SECONDS -lt $end ] && [ ! -f /tmp/res/job.done ]; do sleep 5; done
date -u +%T; cat /tmp/job.out
for f in /tmp/res/*.out; do [ -f "$f" ] && { echo "== $f"; grep -v '"losses"' "$f" | tail -c 1500; }; done
tar -czf "$OUT/res.tgz" -C /tmp/res . 2>/dev/null; ls /tmp/res
