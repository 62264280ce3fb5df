#!/usr/bin/env bash
# Session 7, call D: where did the fast path's bf16 train step go from 36 ms (1cc6c56) to 65 ms (a39cd2c)?
# Three code trees compile in parallel; then each is timed alone, with ConvNeXt-T as the machine's yardstick.
set -u
t0=$(date +%s)
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/ind PYTHON=python3 MLLA_FAST_STRICT=1
bash .gpu/device_setup.sh > /tmp/setupD.log 2>&1 || { cat /tmp/setupD.log; exit 1; }
tail -1 /tmp/setupD.log; echo "setup at $(( $(date +%s) - t0 )) s"; git log --oneline -1
S=/tmp/sync; L=/tmp/diag; mkdir -p $S $L
F='jit.script_method|^ +warnings.warn|bad tiling|pow_by_natural'
( timeout 545 python3 .gpu/diag.py head $S 2>&1 | grep -v -E "$F" > $L/head.log ) &
( cd .gpu/trees/1cc6c56 && timeout 545 python3 ../../diag.py old1cc $S 2>&1 | grep -v -E "$F" > $L/old1cc.log ) &
( cd .gpu/trees/14a4021 && timeout 545 python3 ../../diag.py mid14a $S 2>&1 | grep -v -E "$F" > $L/mid14a.log ) &
( timeout 545 python3 .gpu/diag.py convnext $S 2>&1 | grep -v -E "$F" > $L/convnext.log ) &
for n in head old1cc mid14a convnext; do
  while [ ! -e $S/ready_$n ] && [ $(( $(date +%s) - t0 )) -lt 470 ]; do sleep 1; done
  echo "$n ready: $([ -e $S/ready_$n ] && echo yes || echo NO) at $(( $(date +%s) - t0 )) s"
done
for n in convnext head old1cc mid14a; do
  [ -e $S/ready_$n ] || continue
  touch $S/turn_$n
  while [ ! -e $S/done_$n ] && [ $(( $(date +%s) - t0 )) -lt 560 ]; do sleep 0.5; done
  grep RESULT $L/$n.log
done
echo "done at $(( $(date +%s) - t0 )) s"
tar czf $OUT/diagD.tgz -C /tmp diag
