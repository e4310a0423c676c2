#!/bin/bash
# Issue 22's whole runs in one lease (bench/same-lease.md, "Whole runs"), started detached by the first call from the
# tree copied to /tmp/t: SDXL's 2,000-step run first (while the next calls stage FlashAttention-4), then FLUX.1 with FA4
# (a cold run that fills the compile cache, then the warm run the 1.15x goal is for), then, optionally, gpu-speed's
# FLUX.1 whole-step-graph row. Rows and logs in /tmp/res; bench/lease/poll.sh sends them back.
#   SDXL_STEPS   SDXL's steps (0: no SDXL run; default 2000)
#   WARM_STEPS   FLUX.1's warm run (default 2000); FLUX_BUDGET its --budget-s (default 1250)
#   SPEED        1: gpu-speed --only flux1 --configs 10,35,45 --attention fa4 after the runs (default 0), SPEED_BUDGET s
export PYTHONUNBUFFERED=1
cd /tmp/t || exit 1
mkdir -p /tmp/res
FA4PATH=/tmp/site:/tmp/fa4site:/tmp/fa4site/nvidia_cutlass_dsl/dsl_packages:worker
echo "job start $(date -u +%FT%T)"
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm,driver_version --format=csv
if [ "${SDXL_STEPS:-2000}" != 0 ]; then
  PYTHONPATH=/tmp/site:worker python3 bench/gpu-wholerun.py --only sdxl --steps "${SDXL_STEPS:-2000}" --warm-host --budget-s 600 \
    --out /tmp/res > /tmp/res/sdxl.out 2>&1
  rc=$?; echo "sdxl done $(date -u +%T) rc=$rc"
fi
while [ ! -f /tmp/stg/all.ready ]; do sleep 2; done
echo "fa4 staged, flux1 start $(date -u +%T)"
PYTHONPATH=$FA4PATH python3 -c "import flash_attn.cute; print('fa4 import ok')"
PYTHONPATH=$FA4PATH python3 bench/gpu-wholerun.py --only flux1 --cold-steps 30 --steps "${WARM_STEPS:-2000}" \
  --budget-s "${FLUX_BUDGET:-1250}" --out /tmp/res > /tmp/res/flux1.out 2>&1
rc=$?; echo "flux1 done $(date -u +%T) rc=$rc"
if [ "${SPEED:-0}" = 1 ]; then
  echo "gpu-speed 10,35,45 start $(date -u +%T)"
  PYTHONPATH=$FA4PATH timeout "${SPEED_BUDGET:-330}" python3 bench/gpu-speed.py --only flux1 --configs 10,35,45 --attention fa4 \
    --steps 30 --md /tmp/res/speed.md > /tmp/res/speed.jsonl 2> /tmp/res/speed.err
  rc=$?; echo "gpu-speed done $(date -u +%T) rc=$rc"
fi
touch /tmp/res/job.done
