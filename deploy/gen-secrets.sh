#!/bin/sh
# Creates the password files compose.yaml mounts as secrets, once: an existing
# non-empty file is kept, so re-running never locks you out of a database
# volume initialised with the old password. SECRETS_DIR overrides the target
# directory (default: deploy/secrets beside this script, git-ignored).
set -eu

dir=${SECRETS_DIR:-$(dirname "$0")/secrets}
mkdir -p "$dir"

for name in postgres_password grafana_admin_password; do
	file="$dir/$name.txt"
	if [ -s "$file" ]; then
		echo "kept    $file"
		continue
	fi
	# 32 alphanumerics (~190 bits), no trailing newline, nothing a URL or a
	# shell would need escaped.
	pw=$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)
	if [ ${#pw} -ne 32 ]; then
		echo "gen-secrets: could not read 32 random characters" >&2
		exit 1
	fi
	printf '%s' "$pw" >"$file"
	# Compose bind-mounts file secrets with the host file's mode and ignores
	# uid/gid/mode, so the containers' non-root users (65532, grafana's 472)
	# need world-read. The directory is git-ignored and local to this machine.
	chmod 0644 "$file"
	echo "created $file"
done
