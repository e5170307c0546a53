# Offline installs from a folder of wheels, shared by scripts/gpu_check.sh and scripts/study_gpu.sh (sourced).
# The folder (SAMORA_WHEELS, default wheels/, git-ignored) is filled on a machine with internet as
# requirements/gpu.txt says. The venv (.venv-gpu) sees the system's site-packages, so a CUDA torch already on
# the machine is used and only what is missing comes from the wheels. The commands are arrays, so each script
# runs (or, in a dry run, prints) them through its own step runner.
WHEELS=${SAMORA_WHEELS:-wheels}
WHEEL_VENV=.venv-gpu
WHEEL_VENV_COMMAND=(python3 -m venv --system-site-packages "$WHEEL_VENV")
WHEEL_PIP_INSTALL=("$WHEEL_VENV/bin/python" -m pip install --quiet --no-index --find-links "$WHEELS")

# require_wheels PYTHON_VARIABLE: without the wheel folder, stop (status 2) and say how to get one,
# or which variable names an interpreter that already has the packages.
require_wheels() {
  [ -d "$WHEELS" ] && return 0
  echo "no wheel folder '$WHEELS': fill it as requirements/gpu.txt says (pip download ...)," \
       "set SAMORA_WHEELS to it, or set $1 to an interpreter that has the packages" >&2
  exit 2
}
