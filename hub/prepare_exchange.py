"""``python -m hub.prepare_exchange``: lay out nbgrader's exchange (hub/exchange.py) where the hub's settings put it,
without starting a hub: for a cluster, where the exchange is a shared volume that no hub process prepares
(hub/k8s/job-exchange.yaml runs it as root in the instructor image).  ``./course hub`` does the same at its start."""
from __future__ import annotations

import sys

from .exchange import ExchangeSetupError, prepare_exchange
from .settings import SettingsError, load


def main() -> int:
    try:
        s = load()
        layout = prepare_exchange(s.exchange, s.course_id, s.os_instructors_group)
    except (SettingsError, ExchangeSetupError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"exchange ready: {layout.course} (group {layout.group})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
