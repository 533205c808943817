"""Failover time of a Tessera cluster: kills the data group's leader (SIGKILL) again and
again and measures, each time, how long until a write through another node succeeds.

Called by benches/cluster-vs-postgres.sh with the nodes' SQL addresses and pid files;
prints one line per kill and then `p50_ms max_ms`. Every wait is bounded.
"""

import os
import signal
import subprocess
import sys
import time

import psycopg

KILL_LIMIT_S = 20.0


def connect(address):
    host, port = address.rsplit(":", 1)
    return psycopg.connect(
        host=host, port=int(port), user="bench", dbname="tessera", autocommit=True,
        connect_timeout=5,
    )


def data_leader(addresses):
    """Index of the data group's leader, as the first answering node reports it."""
    for address in addresses:
        try:
            with connect(address) as conn:
                for row in conn.execute("SHOW CLUSTER").fetchall():
                    node_id, group, role = row[0], row[3], row[4]
                    if group == 1 and role == "leader":
                        return node_id - 1
        except psycopg.Error:
            continue
    return None


def wait_for_write(address, next_id):
    """Writes through `address` until one is acknowledged; returns the next free id."""
    deadline = time.monotonic() + KILL_LIMIT_S
    conn = connect(address)
    while time.monotonic() < deadline:
        try:
            conn.execute("INSERT INTO failover VALUES (%s)", (next_id,))
            return next_id + 1
        except psycopg.errors.SerializationFailure:
            next_id += 1
        except psycopg.errors.StatementCompletionUnknown:
            # Sent to the leader as it died: maybe applied; never reuse the id.
            next_id += 1
            conn = connect(address)
        except psycopg.OperationalError:
            next_id += 1
            time.sleep(0.01)
            conn = connect(address)
    raise SystemExit(f"writes did not resume within {KILL_LIMIT_S} s")


def wait_until_serving(address):
    """Waits until the restarted node answers a linearizable read (it has caught up
    with the leader), then a moment more for its replication to settle."""
    deadline = time.monotonic() + KILL_LIMIT_S
    while time.monotonic() < deadline:
        try:
            with connect(address) as conn:
                conn.execute("SELECT count(*) FROM failover").fetchall()
                time.sleep(1)
                return
        except psycopg.Error:
            time.sleep(0.1)
    raise SystemExit(f"the restarted node at {address} did not serve within {KILL_LIMIT_S} s")


def main():
    kills = int(sys.argv[1])
    # One shell command per line, line i restarting node i (in the background).
    restart_commands = sys.argv[2].splitlines()
    addresses = sys.argv[3].split(",")
    pid_files = sys.argv[4].split(",")
    with connect(addresses[0]) as conn:
        conn.execute("CREATE TABLE failover (id BIGINT PRIMARY KEY)")
    next_id = 0
    times = []
    for kill in range(kills):
        leader = None
        for _ in range(200):
            leader = data_leader(addresses)
            if leader is not None:
                break
            time.sleep(0.05)
        if leader is None:
            raise SystemExit("no data leader")
        survivor = addresses[(leader + 1) % len(addresses)]
        # Warm the survivor's connection path with a write first.
        next_id = wait_for_write(survivor, next_id)
        pid = int(open(pid_files[leader]).read().strip())
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        next_id = wait_for_write(survivor, next_id)
        elapsed_ms = (time.monotonic() - killed) * 1000
        times.append(elapsed_ms)
        print(f"kill {kill + 1}: node {leader + 1}, writes resumed after {elapsed_ms:.0f} ms",
              file=sys.stderr)
        subprocess.run(restart_commands[leader], shell=True, check=True)
        wait_until_serving(addresses[leader])
    times.sort()
    p50 = times[len(times) // 2] if len(times) % 2 else (times[len(times) // 2 - 1] + times[len(times) // 2]) / 2
    print(f"{p50:.0f} {times[-1]:.0f}")


if __name__ == "__main__":
    main()
