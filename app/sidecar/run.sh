#!/bin/sh
# Stand-in for a metrics/log shipping sidecar.
while true; do cat /srv/shared/config.txt; sleep 30; done
