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
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"; then
    failed+=("$name ($pkg)")
  fi
done < <(grep -rHo --include='*_test.go' --exclude-dir=.git --exclude-dir=testdata \
  '^func Fuzz[A-Za-z0-9_]*(' . | sed -e 's|^\./||' -e 's|:func \(Fuzz[A-Za-z0-9_]*\)($|:\1|' | sort)

if ((${#failed[@]})); then
  echo "fuzz targets failed:"; printf '  %s\n' "${failed[@]}"
  exit 1
fi
