#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Validate deploy/: every manifest of a core Kubernetes kind against the API schema
# (kubernetes-validate --strict), and the whole directory (manifests and Dockerfiles)
# with checkov, offline. Any failure fails the check. Run by make test (test-deploy).
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv-deploy/bin
core=()
for f in deploy/k8s/*.yaml; do
  # SparkApplication is a custom resource: its schema comes with the operator, not with
  # Kubernetes, so kubernetes-validate cannot know it (checkov still reads the file).
  grep -q '^kind: SparkApplication' "$f" || core+=("$f")
done
"$V/kubernetes-validate" --strict --quiet "${core[@]}"
echo "check-deploy: kubernetes-validate: ${#core[@]} manifests valid"
out=$(BC_SKIP_MAPPING=TRUE "$V/checkov" -d deploy --quiet --compact --skip-download \
        --framework kubernetes dockerfile --output cli 2>/dev/null) || {
  echo "$out"
  echo "check-deploy: checkov found failed checks" >&2
  exit 1
}
echo "$out" | grep -E "^(kubernetes|dockerfile) scan results|Passed checks" | paste - - |
  sed 's/^/check-deploy: checkov: /'
