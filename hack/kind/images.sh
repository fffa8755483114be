#!/usr/bin/env bash
# make images IMG_TAG=…: builds simptu/<service>:$IMG_TAG for every service with a Dockerfile.
# The build context is the repository root (npm workspaces); .dockerignore keeps it small.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need "$DOCKER" "https://docs.docker.com/get-docker/"
for entry in "${SERVICES[@]}"; do
  svc="${entry%%:*}" df="${entry#*:}"
  echo "building simptu/$svc:$IMG_TAG from $df"
  "$DOCKER" build -f "$ROOT/$df" -t "simptu/$svc:$IMG_TAG" "$ROOT"
done
