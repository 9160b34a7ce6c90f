"""Entry point of a rank process of :class:`optbench.distributed.pool.RankPool` (not for direct use)."""

import sys

from optbench.distributed.pool import rank_main

if __name__ == "__main__":
    sys.exit(rank_main(sys.argv[1:]))
