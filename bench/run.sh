#!/bin/sh
# Runs every benchmark under bench/; arguments go to topcost (-h lists them).
exec go run ./bench/topcost "$@"
