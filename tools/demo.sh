#!/usr/bin/env bash
# Set up .venv and run the main demo on the embedded corpus (no download).
source "$(dirname "$0")/env.sh"
lowcomm demo "$@"
