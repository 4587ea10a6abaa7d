#!/usr/bin/env bash
# Refuse to release a tag that names another version than the code: `check-tag-version.sh v1.2.3`
# passes only when classifier.__version__ (the one place the version lives) is 1.2.3.
set -euo pipefail

tag="${1:?usage: check-tag-version.sh TAG (for example v1.2.3)}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
version="$(PYTHONPATH="$root/services/classifier/src" python3 -c \
  'import classifier; print(classifier.__version__)')"

if [[ "${tag#v}" != "$version" ]]; then
  echo "::error::tag $tag does not match the version in classifier/__init__.py ($version)" >&2
  exit 1
fi
echo "tag $tag matches version $version"
