#!/usr/bin/env bash
# Builds the fuzzers with clang (libFuzzer + ASan + UBSan) and runs each for
# SECONDS (default 60) from a generated seed corpus: the node decoder, then
# every tree walk over whole trees of untrusted payloads. Exit 0 when no crash.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN=${1:-60}
CXX=clang++ CC=clang cmake -S . -B build/fuzz -DAGGR_FUZZ=ON -DAGGR_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/fuzz --target decode_node_fuzz tree_walk_fuzz make_corpus -j"$(nproc)" >/dev/null
CORPUS=build/fuzz/corpus
TREE_CORPUS=build/fuzz/tree_corpus
mkdir -p "$CORPUS" "$TREE_CORPUS"
build/fuzz/make_corpus "$CORPUS" "$TREE_CORPUS"
build/fuzz/decode_node_fuzz -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -print_final_stats=1 "$CORPUS" 2>&1 |
  tail -n 15
build/fuzz/tree_walk_fuzz -max_total_time="$SECONDS_TO_RUN" -max_len=16384 -print_final_stats=1 "$TREE_CORPUS" 2>&1 |
  tail -n 15
