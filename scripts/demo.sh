#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo behind `make demo`: generate a dataset of many groups, train one linear model
# per key into a SQLite store, and show what the store holds.
set -euo pipefail
CLI=${1:-build/release/myriad}
DIR=${2:-demo}
NGROUPS=${3:-100000}
ROWS=${4:-50}
mkdir -p "$DIR"
DATA="$DIR/data.csv"
STORE="$DIR/models.db"

echo "== 1. generate $NGROUPS groups x $ROWS rows x 8 features"
if [ ! -s "$DATA" ] || [ "${MYR_DEMO_REGEN:-0}" = 1 ]; then
  "$CLI" gen --groups "$NGROUPS" --rows "$ROWS" --features 8 --noise 0.3 --seed 1 --out "$DATA"
else
  echo "   reusing $DATA (MYR_DEMO_REGEN=1 to regenerate)"
fi
echo
echo "== 2. train one ridge model per (app, api) key, 20% of each group held out"
rm -f "$STORE" "$STORE-wal" "$STORE-shm"
"$CLI" train "$DATA" --keys app,api --label y --features f0..f7 --model linear \
  --param alpha=1.0 --holdout 0.2 --seed 7 --store "$STORE"
echo
echo "== 3. the store: one row per trained model"
if command -v sqlite3 >/dev/null; then
  echo "   sqlite3 $STORE 'select count(*) from models' -> $(sqlite3 "$STORE" 'select count(*) from models')"
fi
echo
echo "== 4. the 5 keys whose models validate worst (lowest held-out R^2)"
"$CLI" models --store "$STORE" --worst r2 --limit 5
echo
KEY=$("$CLI" models --store "$STORE" --limit 1 --format csv | awk -F, 'NR==2 {print "app="$1",api="$2}')
echo "== 5. one model in detail: myriad models --store $STORE --key $KEY"
"$CLI" models --store "$STORE" --key "$KEY"
