#!/usr/bin/env bash
# Tollgate at scale: 1 000 users against a million, on SQLite (and PostgreSQL when
# SCALE_POSTGRES_URL names a server to create databases on). See bench/scale.py for what is
# measured and the environment it reads. Not a test: a script that prints figures.
#
#   bench/scale.sh                                          # SQLite
#   eval "$(scripts/test-postgres.sh start)"; SCALE_POSTGRES_URL=$TOLLGATE_TEST_DATABASE_URL bench/scale.sh
set -euo pipefail
exec python3 "$(dirname "${BASH_SOURCE[0]}")/scale.py" "$@"
