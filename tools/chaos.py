"""Run the chaos harness (tests/chaos_harness.py) for N minutes and report its figures.

    .venv/bin/python tools/chaos.py --minutes 30 [--seed S] [--steps 30] [--json out.json]

Runs example after example (each a fresh daemon in a fresh home, a sequence of
``--steps`` random operations and faults, every invariant checked after every
step) until the time is up. A failing example is shrunk by hypothesis and
printed with its seed and the reproducing steps; the run then goes on with the
next seed. Exit status: 0 when no invariant was violated, 1 otherwise.
"""

import argparse
import json
import os
import random
import signal
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="how long to run (default 5)")
    parser.add_argument("--seed", type=int, help="first seed (default: random, printed)")
    parser.add_argument("--steps", type=int, default=30, help="steps per example (default 30)")
    parser.add_argument("--examples", type=int, default=5, help="examples per seed (default 5)")
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args(argv)


def run_one_seed(harness, seed, args):
    from hypothesis import seed as with_seed
    from hypothesis.stateful import run_state_machine_as_test

    machine = with_seed(seed)(type("Chaos%d" % seed, (harness.ChaosMachine,), {}))
    run_state_machine_as_test(machine, settings=harness.chaos_settings(args.examples, args.steps))


def main(argv=None):
    args = parse_args(argv)
    import chaos_harness as harness

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    started = time.monotonic()
    deadline = started + args.minutes * 60
    failures = []
    seeds = 0
    print(
        "chaos: %.1f minutes from seed %d, %d steps an example" % (args.minutes, seed, args.steps)
    )
    # SIGTERM (timeout(1), a CI limit) ends the run with its report, like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while time.monotonic() < deadline:
            seeds += 1
            try:
                run_one_seed(harness, seed, args)
            except Exception as error:  # noqa: BLE001 - a failure is a finding: report, go on
                text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
                failures.append({"seed": seed, "error": text[-6000:]})
                print("chaos: seed %d FAILED\n%s" % (seed, text[-6000:]), flush=True)
            print(
                "chaos: seed %d done, %.1f min: %s"
                % (seed, (time.monotonic() - started) / 60, json.dumps(harness.STATS.summary())),
                flush=True,
            )
            seed += 1
    except KeyboardInterrupt:
        print("chaos: interrupted: reporting what ran", flush=True)
    figures = harness.STATS.summary()
    counts = figures["counts"]
    report = {
        "minutes": round((time.monotonic() - started) / 60, 1),
        "seeds": seeds,
        "examples": counts.get("examples", 0),
        "steps": harness.STATS.steps(),
        "daemon_kills": counts.get("daemon_kills", 0),
        "monitor_kills": counts.get("monitor_kills", 0),
        "model_kills": counts.get("model_kills", 0),
        "requests": counts.get("requests", 0),
        "counts": counts,
        "known_hits": figures["known_hits"],
        "violations": figures["violations"],
        "failed_seeds": failures,
        "full_disk": harness.ChaosMachine.tmpfs_refused or "on"
        if os.geteuid() == 0
        else "not root",
    }
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)
    return 1 if failures or figures["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
