#!/usr/bin/env bash
# Session 8, device call 4 (fresh machine): the 34 GPU tests that call 1 had not reached at HEAD (31 passed there,
# none failed), the slow whole-backbone cases first.
# (.gpu/s17_remaining_ids.txt is recorded here as call4_remaining_ids.txt: the tests call 1 did not report.)
source benchmarks/scripts/device_call.sh
L=/tmp/l4; setup_fresh_machine $L
MLLA_FAST_STRICT=1 timeout -s INT $(left 530) python3 -m pytest $(cat .gpu/s17_remaining_ids.txt) -n 4 \
  -p no:cacheprovider -rfE -v --durations=15 > $L/gpu_tests_rest.log 2>&1
echo "pytest exit $? at $(elapsed) s" | tee -a $L/gpu_tests_rest.log
grep -E "FAILED|ERROR|passed|failed" $L/gpu_tests_rest.log | tail -15 | cut -c1-300
grep -c PASSED $L/gpu_tests_rest.log
tar czf $OUT/logs4.tgz -C /tmp l4
