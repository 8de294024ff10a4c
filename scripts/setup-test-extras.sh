#!/usr/bin/env bash
# Test-only fixtures that are not Debian packages: placeholder, filled by later issues.
exit 0
