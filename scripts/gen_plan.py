#!/usr/bin/env python3
"""Generate a baton action file (JSON) of generated actions for benchmarks.

    scripts/gen_plan.py SHAPE N > plan.json

Shapes:
  independent  N no-ops without dependencies
  chain        N no-ops, each depending on the previous one
  layered      N no-ops in layers of min(ceil(sqrt(N)), 100) actions; every action after the
               first layer depends on 2 actions of the previous layer, chosen pseudo-randomly
               (fixed seed, so the same SHAPE and N always give the same file)
  commands     N independent `system.command` actions running `true` (argv, no shell): real
               processes, so a run saves as they finish (what the store-growth row measures)

Labels are `n000000`, `n000001`, ... (at least six digits); the type is `system.no_op` except in
`commands`.
"""

import json
import math
import random
import sys

SHAPES = ("independent", "chain", "layered", "commands")
SEED = 20261128
DEPS_PER_ACTION = 2
MAX_LAYER_WIDTH = 100


def label(i, digits):
    return "n%0*d" % (digits, i)


def generate(shape, n):
    digits = max(6, len(str(max(n - 1, 0))))
    actions = []
    if shape == "independent":
        for i in range(n):
            actions.append({"label": label(i, digits), "type": "system.no_op"})
    elif shape == "commands":
        for i in range(n):
            actions.append({"label": label(i, digits), "type": "system.command",
                            "params": {"command": ["true"]}})
    elif shape == "chain":
        for i in range(n):
            action = {"label": label(i, digits), "type": "system.no_op"}
            if i > 0:
                action["depends_on"] = [label(i - 1, digits)]
            actions.append(action)
    elif shape == "layered":
        rng = random.Random(SEED)
        width = max(1, min(math.ceil(math.sqrt(n)), MAX_LAYER_WIDTH))
        for i in range(n):
            action = {"label": label(i, digits), "type": "system.no_op"}
            layer = i // width
            if layer > 0:
                start = (layer - 1) * width
                previous = range(start, start + width)
                picks = rng.sample(previous, min(DEPS_PER_ACTION, width))
                action["depends_on"] = [label(p, digits) for p in sorted(picks)]
            actions.append(action)
    else:
        raise ValueError(shape)
    return actions


def main(argv):
    if len(argv) != 3 or argv[1] not in SHAPES:
        sys.stderr.write("usage: gen_plan.py {%s} N\n" % "|".join(SHAPES))
        return 2
    try:
        n = int(argv[2])
    except ValueError:
        n = -1
    if n < 0:
        sys.stderr.write("gen_plan.py: N must be a non-negative integer, got %r\n" % argv[2])
        return 2
    actions = generate(argv[1], n)
    # One action per line: compact, but still readable and diffable.
    out = sys.stdout
    out.write("[\n")
    for i, action in enumerate(actions):
        out.write(json.dumps(action, separators=(",", ":")))
        out.write(",\n" if i + 1 < len(actions) else "\n")
    out.write("]\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
