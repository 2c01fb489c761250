"""Prints a Python expression over the JSON on stdin, bound to `d`: strings as they are,
anything else as JSON. The tests' jq, without needing jq.

Usage: ... | json_query.py 'sorted(r["state"] for r in d)'
"""
import json
import sys

d = json.load(sys.stdin)
v = eval(sys.argv[1], {"d": d})
print(v if isinstance(v, str) else json.dumps(v))
