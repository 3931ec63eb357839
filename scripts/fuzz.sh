#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for a short while each, so a change that
# breaks a fuzzed property is caught by ./scripts/test.sh, and seeds found earlier (under
# each package's testdata/fuzz/) are replayed.
#
# Targets are found by grepping *_test.go for `func FuzzXxx(`, so a new target needs no
# change here. `go test -fuzz` takes one target per invocation, hence one run per target.
#
#   FUZZTIME=5s (default)         time per target
#   FUZZTIME=10m scripts/fuzz.sh  a longer local run; failing inputs are written to
#                                 <package>/testdata/fuzz/<Target>/ (commit them as seeds)
#   scripts/fuzz.sh Parse         only targets whose name matches the regexp "Parse"
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
fuzztime=${FUZZTIME:-5s}
filter=${1:-.}

echo "== fuzz (${fuzztime} per target)"
failed=()
while IFS=: read -r file name; do
  [[ "$name" =~ $filter ]] || continue
  pkg=./$(dirname "$file")
  echo "-- $name ($pkg)"
  log=$(mktemp)
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$log"; then
    # Go 1.26's fuzz coordinator can fail a target with a bare "context deadline exceeded"
    # when -fuzztime ends while a worker is mid-input on a loaded machine
    # (golang/go#75804, fixed in Go 1.27). A real finding always writes its input
    # ("Failing input written to"); without one, the seeds and the stored corpus are
    # replayed and decide.
    if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written to' "$log" &&
      go test -run "^${name}\$" "$pkg"; then
      echo "   (the fuzz coordinator's end-of-run deadline race, golang/go#75804: corpus replay passed)"
    else
      failed+=("$name ($pkg)")
    fi
  fi
  rm -f "$log"
done < <(grep -rHo --include='*_test.go' --exclude-dir=.git --exclude-dir=testdata \
  '^func Fuzz[A-Za-z0-9_]*(' . | sed -e 's|^\./||' -e 's|:func \(Fuzz[A-Za-z0-9_]*\)($|:\1|' | sort)

if ((${#failed[@]})); then
  echo "fuzz targets failed:"; printf '  %s\n' "${failed[@]}"
  exit 1
fi
