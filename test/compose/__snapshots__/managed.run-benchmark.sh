#!/bin/sh
# Rendered by inferbench: the managed arm's load points against http://router:8000.
set -eu
echo "inferbench runner: 2 load point(s), arm managed"
echo "== concurrency8"
inferbench profile -m llama-3.1-8b -m qwen2.5-7b -m llama-3.3-70b-awq --model-selection-strategy round_robin --url http://router:8000 --endpoint-type chat --streaming --synthetic-input-tokens-mean 550 --synthetic-input-tokens-stddev 0 --num-dataset-entries 100 --concurrency 8 --output-tokens-mean 150 --output-tokens-stddev 0 --request-count 100 --warmup-request-count 10 --random-seed 42 --no-progress --artifact-dir /results/concurrency8
echo "== request_rate4"
inferbench profile -m llama-3.1-8b -m qwen2.5-7b -m llama-3.3-70b-awq --model-selection-strategy round_robin --url http://router:8000 --endpoint-type chat --streaming --synthetic-input-tokens-mean 550 --synthetic-input-tokens-stddev 0 --num-dataset-entries 100 --request-rate 4 --request-distribution poisson --output-tokens-mean 150 --output-tokens-stddev 0 --request-count 100 --warmup-request-count 10 --random-seed 42 --no-progress --artifact-dir /results/request_rate4
echo "inferbench runner: done"
