#!/bin/sh
# Make sure a Java runtime is on this machine: PySpark (DRIFT_ENGINE=spark, the Spark tests)
# starts a JVM. CI machines start clean, so install Debian's headless JRE 17 when `java` is
# missing (PySpark 4 needs Java 17 or 21). Idempotent: nothing happens when java is there.
set -eu

if command -v java >/dev/null 2>&1; then
    exit 0
fi
sh "$(dirname "$0")/apt-install.sh" openjdk-17-jre-headless
command -v java >/dev/null 2>&1
