"""``python -m simulator``: the same as ``sidtokens simulator``."""

from simulator.command import main

raise SystemExit(main())
