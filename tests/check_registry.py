#!/usr/bin/env python3
"""Reads the agent's registry (DATA_DIR/registry.json) for the agent tests.

  check_registry.py offset DATA_DIR PATH
      Prints the acknowledged offset the registry holds for the file now at PATH (by device
      and inode), or "absent" when it holds no entry for that file.
"""
import json
import os
import sys


def main():
    args = sys.argv[1:]
    if len(args) != 3 or args[0] != "offset":
        print(__doc__)
        sys.exit(2)
    st = os.stat(args[2])
    with open(os.path.join(args[1], "registry.json")) as f:
        files = json.load(f)["files"]
    for e in files:
        if (e["dev"], e["ino"]) == (st.st_dev, st.st_ino):
            print(e["offset"])
            return
    print("absent")


if __name__ == "__main__":
    main()
