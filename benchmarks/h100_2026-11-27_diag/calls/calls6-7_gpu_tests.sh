#!/usr/bin/env bash
# Session 8, device calls 6-7 (fresh machines): the GPU tests that the changes since 254dce5 touch, at HEAD, in two
# halves (ids in .gpu/s18_ids_$1.txt); each failure's report kept as it happens (MLLA_GPU_FAILURES).
source benchmarks/scripts/device_call.sh
python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl > /tmp/setup.log 2>&1
echo "setup at $(elapsed) s; $(git log --oneline -1 2>/dev/null || echo no-git)"
export MLLA_FAST_STRICT=1 MLLA_GPU_FAILURES=$OUT/gpu_failures_$1.log
timeout -s INT $(left 575) python3 -m pytest $(cat .gpu/s18_ids_$1.txt) -n ${2:-5} -p no:cacheprovider -rfE -v \
  --durations=20 > $OUT/gpu_tests_$1.log 2>&1
echo "pytest exit $? at $(elapsed) s" | tee -a $OUT/gpu_tests_$1.log
grep -E "PASSED|FAILED|ERROR" $OUT/gpu_tests_$1.log | grep "::" | sed 's/.*:://' | sort | uniq -c | sort -rn | head -70 | cut -c1-160
grep -c " PASSED" $OUT/gpu_tests_$1.log; tail -3 $OUT/gpu_tests_$1.log
