#!/usr/bin/env bash
# Creates, or replaces, the Kibana data view "logcollect": every index and data stream the
# transfer writes, as it declared them in the store's index templates (`logcollect` for
# indices, `logcollect-streams` for data streams), with @timestamp as the time field. Run it
# again after new topics were configured and indexed.
#
# Usage: scripts/kibana-data-view.sh --es URL --kibana URL [--user NAME --password-file FILE]
#                                    [--ca-file FILE] [--dry-run]
#   --es URL            Elasticsearch, to read the templates (e.g. https://es01:9200)
#   --kibana URL        Kibana (e.g. http://localhost:5601)
#   --user, --password-file   basic auth for both (e.g. elastic and a file holding its password)
#   --ca-file FILE      the CA of https:// URLs (Elasticsearch 8's http_ca.crt)
#   --dry-run           print the Kibana request instead of sending it
set -euo pipefail

es="" kibana="" user="" password_file="" ca="" dry=0
die() { echo "kibana-data-view: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case $1 in
        --es) es=${2%/}; shift 2 ;;
        --kibana) kibana=${2%/}; shift 2 ;;
        --user) user=$2; shift 2 ;;
        --password-file) password_file=$2; shift 2 ;;
        --ca-file) ca=$2; shift 2 ;;
        --dry-run) dry=1; shift ;;
        -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
[ -n "$es" ] || die "--es URL is required"
[ -n "$kibana" ] || [ $dry = 1 ] || die "--kibana URL is required"
curl_opts=(-sS --max-time 30)
[ -z "$ca" ] || curl_opts+=(--cacert "$ca")
if [ -n "$user" ]; then
    [ -r "$password_file" ] || die "--user needs a readable --password-file"
    # The password goes to curl through a config on stdin, never on a command line.
    auth() { printf 'user = "%s:%s"\n' "$user" "$(head -n 1 "$password_file")"; }
else
    auth() { :; }
fi

# The index patterns of both templates; a template not there yet adds none.
answer=$(auth | curl "${curl_opts[@]}" -K - "$es/_index_template/logcollect*") ||
    die "$es: cannot read the index templates"
title=$(python3 -c '
import json, sys
answer = json.loads(sys.argv[1])
if "index_templates" not in answer:
    sys.exit("answer without index_templates: " + sys.argv[1][:300])
patterns = sorted({p for t in answer["index_templates"]
                   if t["name"] in ("logcollect", "logcollect-streams")
                   for p in t["index_template"]["index_patterns"]})
print(",".join(patterns))
' "$answer") || die "$es: $title"
[ -n "$title" ] || die "$es: no logcollect index template yet (the transfer puts it once topics are configured)"
body=$(python3 -c '
import json, sys
print(json.dumps({"data_view": {"id": "logcollect", "name": "logcollect", "title": sys.argv[1],
                                "timeFieldName": "@timestamp"}, "override": True}))
' "$title")
if [ $dry = 1 ]; then
    echo "POST ${kibana:-KIBANA}/api/data_views/data_view"
    echo "$body"
    exit 0
fi
status=$(auth | curl "${curl_opts[@]}" -K - -o /dev/stderr -w '%{http_code}' -X POST \
    -H 'kbn-xsrf: true' -H 'Content-Type: application/json' \
    "$kibana/api/data_views/data_view" -d "$body") || die "$kibana: no answer"
[ "$status" = 200 ] || die "$kibana: HTTP $status"
echo "kibana-data-view: data view logcollect = $title"
