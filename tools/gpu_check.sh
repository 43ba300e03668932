#!/usr/bin/env bash
# One prepared GPU check: install the carried wheels when mmengine is missing, run the `cuda`
# tests, then tools/gpu_report.py. Everything lands in OUT (default work_dirs/gpu_check):
# pytest.log, gpu_report.json, gpu_report.md, report.log.
#
#   bash tools/gpu_check.sh [OUT]        # from the repository root, on a GPU machine
#
# Wheels: a git-ignored .whl/ folder in the repository root (docs/benchmarks.md ("GPU report") says how
# to fill it); installed with --no-index --no-deps into /tmp/site, which goes on PYTHONPATH.
# Budget: about 20 s of installs, at most 100 s of tests, 170 s of report (under 5 minutes).
set -u
cd "$(dirname "$0")/.."
OUT=${1:-work_dirs/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ! python3 -c 'import mmengine, mmseg, mmcv' 2>/dev/null; then
    if ls .whl/*.whl >/dev/null 2>&1; then
        echo "installing carried wheels: $(ls .whl | tr '\n' ' ')"
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl || exit 1
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    else
        echo "mmengine / mmseg / mmcv missing and no .whl/ folder to install them from" >&2
    fi
fi
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
timeout 100 python3 -m pytest -q -m cuda tests/test_cuda.py -p no:cacheprovider 2>&1 \
    | tee "$OUT/pytest.log"
tests_rc=${PIPESTATUS[0]}
timeout 200 python3 tools/gpu_report.py --budget 170 --out "$OUT" 2> "$OUT/report.log"
report_rc=$?
tail -5 "$OUT/report.log"
echo "cuda tests exit $tests_rc, report exit $report_rc"
exit $(( tests_rc != 0 || report_rc != 0 ))
